"""pandapower's own DC-OPF semantics, exactly (issue 12, point 1).

``nodalopt.solve(net)`` must do what ``pandapower.rundcopp(net)`` does for every element kind
and flag its DC OPF reads.  The nets below are rebuilt from pandapower's own OPF test suite
(``pandapower/test/opf``: test_basic, test_costs_pwl / _mixed / _pol, test_opf_cigre,
test_oberrhein, test_curtailment, test_dcline; the AC ``runopp`` calls there become
``rundcopp`` here), then the PGLib cases through ``pandapower.converter.from_mpc`` and the
built-in ``pandapower.networks.case*``.  Reference: ``rundcopp`` (PYPOWER, interior point).
Agreement: objective within 1e-6 relative (of max(1, |objective|) $/h: pandapower's test nets
dispatch 0.02 MW for objectives of 1e-3 $/h), LMPs within 1e-3 $/MWh at the buses
``lmp_unique`` marks, dispatch within 1e-3 MW where it is unique.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import nodalopt
from nodalopt.network import pglib_dir
from nodalopt.network.pandapower import PandapowerDefaultsWarning

OBJ_RTOL, LMP_ATOL, P_ATOL = 1e-6, 1e-3, 1e-3


# ----------------------------------------------------------------------------- reference
def rundcopp(net):
    """``pp.rundcopp`` on a copy (None when it does not converge)."""
    ref = copy.deepcopy(net)
    logging.getLogger("pandapower").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.rundcopp(ref)
    except (pp.OPFNotConverged, ValueError, KeyError, IndexError, UserWarning, FloatingPointError):
        return None
    return ref if ref.OPF_converged else None


def ref_injections(ref) -> dict[str, float]:
    """MW injected by each OPF element in ``ref`` (loads and storage: minus their power)."""
    out: dict[str, float] = {}
    for table, sign in (("ext_grid", 1.0), ("gen", 1.0), ("sgen", 1.0), ("load", -1.0), ("storage", -1.0)):
        res = ref[f"res_{table}"]
        for i in ref[table].index[ref[table].in_service.astype(bool)]:
            out[f"{table}:{i}"] = sign * float(res.p_mw.at[i])
    return out


def solve(net, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PandapowerDefaultsWarning)
        return nodalopt.solve(net, **kw)


def agreement(net, ref=None, **kw) -> dict[str, object]:
    """Compare nodalopt with rundcopp; returns the worst differences (and raises nothing)."""
    ref = ref if ref is not None else rundcopp(net)
    assert ref is not None, "rundcopp must solve the reference net"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PandapowerDefaultsWarning)
        model = nodalopt.DCOPF(net, **kw)
    ds = model.solve()
    arr = model.net
    obj, ref_obj = float(ds.attrs["objective"]), float(ref.res_cost)
    u = ds.lmp_unique.values[0]
    lam = ref.res_bus.lam_p.loc[ds.bus.values].to_numpy()
    lmp_err = float(np.max(np.abs(ds.lmp.values[0][u] - lam[u]), initial=0.0))
    # dispatch where unique: a unit whose marginal cost differs from its bus price sits at a bound
    ref_p = ref_injections(ref)
    p = ds.p_gen.values[0]
    names = [str(g) for g in ds.gen.values]
    lmp_node = np.full(arr.n_node, np.nan)
    lmp_node[arr.bus_node] = ds.lmp.sel(bus=arr.bus_ids).values[0]
    mc = arr.gen_c1 + 2 * arr.gen_c2 * p
    no_pwl = ~np.isin(np.arange(arr.n_gen), arr.pwl_gen)
    # a quadratic unit's dispatch is pinned by its price, but only to stationarity error / (2 c2): below
    # 2 c2 = 0.1 $/MW^2h an interior-point error of 1e-4 $/MWh moves it by more than 1e-3 MW (case300:
    # ext_grid c2 = 0.01, 5.7e-3 MW apart from rundcopp at an objective difference of 3e-7 $/h)
    unique_p = (2 * arr.gen_c2 >= 0.1) | (no_pwl & (arr.gen_c2 == 0) & (np.abs(mc - lmp_node[arr.gen_node]) > 1e-3))
    unique_p |= arr.gen_pmin == arr.gen_pmax
    p_err = max((abs(p[k] - ref_p[names[k]]) for k in np.flatnonzero(unique_p) if names[k] in ref_p),
                default=0.0)
    dc_err = 0.0
    if "p_dcline" in ds:  # unique where the link's value (eff * price_to - price_from - cost) is not 0
        value = arr.dc_eff * lmp_node[arr.dc_t] - lmp_node[arr.dc_f] - arr.dc_c1
        diff = np.abs(ds.p_dcline.values[0] - ref.res_dcline.p_from_mw.loc[
            [int(str(n).split(":")[1]) for n in ds.dcline.values]].to_numpy())
        dc_err = float(np.max(diff[np.abs(value) > 1e-3], initial=0.0))
    return dict(obj=obj, ref_obj=ref_obj, obj_rel=abs(obj - ref_obj) / max(1.0, abs(ref_obj)), lmp_err=lmp_err,
                p_err=p_err, dc_err=dc_err, n_unique=int(u.sum()), ds=ds, ref=ref)


def assert_agrees(net, ref=None, dispatch: bool = True, **kw):
    a = agreement(net, ref, **kw)
    assert a["obj_rel"] <= OBJ_RTOL, f"objective {a['obj']} vs rundcopp {a['ref_obj']}"
    assert a["lmp_err"] <= LMP_ATOL, f"LMPs differ by {a['lmp_err']} $/MWh"
    assert a["n_unique"] > 0
    if dispatch:
        assert a["p_err"] <= P_ATOL, f"dispatch differs by {a['p_err']} MW"
        assert a["dc_err"] <= P_ATOL, f"dcline flow differs by {a['dc_err']} MW"
    return a


# -------------------------------------------------- nets of pandapower/test/opf (rebuilt)
def _two_bus(line_loading: float = 100 * 690):
    net = pp.create_empty_network()
    pp.create_bus(net, max_vm_pu=1.05, min_vm_pu=0.95, vn_kv=10.)
    pp.create_bus(net, max_vm_pu=1.05, min_vm_pu=0.95, vn_kv=.4)
    pp.create_line_from_parameters(net, 0, 1, 50, name="line2", r_ohm_per_km=0.876, c_nf_per_km=260.0,
                                   max_i_ka=0.123, x_ohm_per_km=0.1159876, max_loading_percent=line_loading)
    return net


def basic_simplest_grid():  # test_basic.simplest_grid: ext_grid without limits and without cost
    net = _two_bus(100)
    pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.005,
                  min_q_mvar=-0.005)
    pp.create_ext_grid(net, 0)
    pp.create_load(net, 1, p_mw=0.02, controllable=False)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=0.1)
    return net


def basic_simplest_dispatch():
    net = _two_bus()
    pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.150, max_q_mvar=0.05,
                  min_q_mvar=-0.05)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=100)
    pp.create_ext_grid(net, 0)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=101)
    pp.create_load(net, 1, p_mw=0.02, controllable=False)
    return net


def basic_3w_trafo():  # test_basic.net_3w_trafo_opf: fixed gens, fixed sgen, no cost rows at all
    net = pp.create_empty_network()
    b1, b2, b3, b4, b5 = (pp.create_bus(net, vn_kv=v) for v in (220., 110., 110., 110., 110.))
    pp.create_bus(net, vn_kv=110., in_service=False)
    pp.create_transformer3w_from_parameters(
        net, b1, b2, b5, vn_hv_kv=220, vn_mv_kv=110, vn_lv_kv=110, vk_hv_percent=10., vk_mv_percent=10.,
        vk_lv_percent=10., vkr_hv_percent=0.5, vkr_mv_percent=0.5, vkr_lv_percent=0.5, pfe_kw=100,
        i0_percent=0.1, shift_mv_degree=0, shift_lv_degree=0, sn_hv_mva=100, sn_mv_mva=50, sn_lv_mva=50)
    for f, t, km in ((b2, b3, 70.), (b3, b4, 50.), (b4, b2, 40.), (b4, b5, 30.)):
        pp.create_line(net, f, t, length_km=km, std_type="149-AL1/24-ST1A 110.0")
    pp.create_load(net, b2, p_mw=60, controllable=False)
    pp.create_load(net, b3, p_mw=70, controllable=False)
    pp.create_sgen(net, b3, p_mw=10, controllable=False)
    # min_p_mw=0 in pandapower's AC test; the fixed gens and sgen (170 MW) exceed the 130 MW load, so the
    # DC OPF is infeasible (rundcopp and nodalopt alike) unless the ext_grid can absorb the surplus
    pp.create_ext_grid(net, b1, min_p_mw=-1000, max_p_mw=1000, max_q_mvar=0.01, min_q_mvar=0)
    pp.create_gen(net, b3, p_mw=80, min_p_mw=0, max_p_mw=80, vm_pu=1.01)
    pp.create_gen(net, b4, p_mw=80, min_p_mw=0, max_p_mw=80, vm_pu=1.01)
    net.gen["controllable"] = False
    return net


def _simple_opf_test_net():
    net = _two_bus(100)
    pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.05,
                  min_q_mvar=-.005)
    pp.create_ext_grid(net, 0)
    pp.create_load(net, 1, p_mw=0.020, controllable=False)
    return net


def basic_dcopf_poly():
    net = _simple_opf_test_net()
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=100)
    return net


def basic_dcopf_pwl():
    net = _simple_opf_test_net()
    pp.create_pwl_cost(net, 0, "gen", [[0, 100, 100], [100, 200, 100]])
    pp.create_pwl_cost(net, 0, "ext_grid", [[0, 100, 0], [100, 200, 0]])
    return net


def basic_varying_max_line_loading():  # two rated lines behind a transformer
    net = pp.create_empty_network()
    for v in (10., .4, .4, .4):
        pp.create_bus(net, max_vm_pu=1.5, min_vm_pu=0.5, vn_kv=v)
    # shift_degree=150 in pandapower's test: rundcopp does not converge with it (nodalopt solves it)
    pp.create_transformer_from_parameters(
        net, 0, 1, vk_percent=3.75, tap_max=2, vn_lv_kv=0.4, shift_degree=0, tap_neutral=0, vn_hv_kv=10.0,
        vkr_percent=2.8125, tap_pos=0, tap_side="hv", tap_min=-2, tap_step_percent=2.5, i0_percent=0.68751,
        sn_mva=0.016, pfe_kw=0.11, max_loading_percent=800, tap_changer_type="Ratio")
    pp.create_sgen(net, 3, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_sgen(net, 2, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 1, "sgen", cp1_eur_per_mw=10)
    pp.create_ext_grid(net, 0)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=.1)
    pp.create_line_from_parameters(net, 1, 2, 1, name="line1", r_ohm_per_km=0.876, c_nf_per_km=260.0,
                                   max_i_ka=0.200, x_ohm_per_km=0.1159876, max_loading_percent=20)
    pp.create_line_from_parameters(net, 1, 3, 1, name="line2", r_ohm_per_km=0.876, c_nf_per_km=260.0,
                                   max_i_ka=0.100, x_ohm_per_km=0.1159876, max_loading_percent=10)
    return net


def _storage_net():
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.1, min_vm_pu=0.9)
    b2 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.1, min_vm_pu=0.9)
    pp.create_line(net, b1, b2, length_km=5, std_type="NAYY 4x50 SE", max_loading_percent=100)
    pp.create_ext_grid(net, b2)
    pp.create_load(net, b1, p_mw=0.0075, controllable=False)
    pp.create_sgen(net, b1, p_mw=0.025, controllable=True, min_p_mw=0.01, max_p_mw=0.025, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_storage(net, b1, p_mw=-.0025, max_e_mwh=50, controllable=True, max_p_mw=0, min_p_mw=-0.025,
                      max_q_mvar=0.025, min_q_mvar=-0.025)  # soc_percent: pandapower's default NaN
    pp.create_sgen(net, b1, p_mw=0.025, controllable=True, min_p_mw=0, max_p_mw=0.025, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_load(net, b1, p_mw=0.025, controllable=True, max_p_mw=0.025, min_p_mw=0, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=3)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=2)
    pp.create_poly_cost(net, 0, "storage", cp1_eur_per_mw=-1)
    pp.create_poly_cost(net, 1, "sgen", cp1_eur_per_mw=1)
    pp.create_poly_cost(net, 1, "load", cp1_eur_per_mw=-3)
    return net


def basic_storage_as_generator():  # test_storage_opf, first stage: storage discharging (p_mw < 0)
    net = _storage_net()
    net.storage.loc[0, "p_mw"] = -0.025
    net.sgen.loc[1, "in_service"] = False
    net.load.loc[1, "in_service"] = False
    return net


def basic_storage_as_load():  # test_storage_opf, third stage: storage charging, cost like the sgen's
    net = _storage_net()
    net.storage.loc[0, ["p_mw", "max_p_mw", "min_p_mw"]] = 0.025, 0.025, 0.0
    net.poly_cost.loc[2, "cp1_eur_per_mw"] = net.poly_cost.cp1_eur_per_mw.iloc[4]
    net.sgen.loc[1, "in_service"] = False
    net.load.loc[1, "in_service"] = False
    return net


def basic_in_service_controllables():
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.1, min_vm_pu=0.9)
    b2 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.1, min_vm_pu=0.9)
    pp.create_line(net, b1, b2, length_km=5, std_type="NAYY 4x50 SE", max_loading_percent=100)
    pp.create_ext_grid(net, b2)
    pp.create_load(net, b1, p_mw=7.5, controllable=True, max_p_mw=0.010, min_p_mw=0, max_q_mvar=2.5,
                   min_q_mvar=-2.5)
    pp.create_sgen(net, b1, p_mw=0.025, controllable=True, min_p_mw=0.01, max_p_mw=0.025, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_sgen(net, b1, p_mw=0.025, controllable=True, min_p_mw=0, max_p_mw=0.025, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_load(net, b1, p_mw=0.025, controllable=True, max_p_mw=0.0025, min_p_mw=0, max_q_mvar=2.5,
                   min_q_mvar=-2.5)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=3)
    pp.create_poly_cost(net, 0, "load", cp1_eur_per_mw=-1)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=2)
    pp.create_poly_cost(net, 1, "sgen", cp1_eur_per_mw=1)
    pp.create_poly_cost(net, 1, "load", cp1_eur_per_mw=-1)
    net.sgen.loc[1, "in_service"] = False
    net.load.loc[1, "in_service"] = False
    return net


def basic_no_controllables():  # a fixed gen with a cost row; a cost row on a fixed load (ignored)
    net = _simple_opf_test_net()
    net.gen["controllable"] = False
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=-2)
    pp.create_poly_cost(net, 0, "load", cp1_eur_per_mw=1)
    net.gen.loc[:, "p_mw"] = 0.149
    return net


def basic_no_controllables_vs_pf():  # cost rows on a non-controllable load and sgen (ignored)
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.3, min_vm_pu=0.9)
    b2 = pp.create_bus(net, vn_kv=0.4, max_vm_pu=1.3, min_vm_pu=0.9)
    pp.create_line(net, b1, b2, length_km=5, std_type="NAYY 4x50 SE", max_loading_percent=100)
    pp.create_ext_grid(net, b2)
    pp.create_load(net, b1, p_mw=.0075, controllable=False)
    pp.create_sgen(net, b1, p_mw=0.025, controllable=False, min_p_mw=0.01, max_p_mw=0.025, max_q_mvar=0.025,
                   min_q_mvar=-0.025)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=3)
    pp.create_poly_cost(net, 0, "load", cp1_eur_per_mw=-3)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=2)
    return net


def _four_bus_net():
    net = pn.simple_four_bus_system()
    net.sgen = net.sgen.drop(index=1)
    net.load = net.load.drop(index=1)
    return net


def basic_three_slacks():  # ext_grid limits of 1 MW are enforced although controllable=False
    net = _four_bus_net()
    pp.create_ext_grid(net, 1, vm_pu=1.01, max_p_mw=1., min_p_mw=-1., min_q_mvar=-1, max_q_mvar=1.)
    pp.create_ext_grid(net, 3, vm_pu=1.02, max_p_mw=1., min_p_mw=-1., min_q_mvar=-1, max_q_mvar=1.)
    return net


def basic_only_gen_slack():
    net = _four_bus_net()
    net.ext_grid = net.ext_grid.drop(index=net.ext_grid.index)
    pp.create_gen(net, 0, p_mw=0., vm_pu=1., max_p_mw=1., min_p_mw=-1., min_q_mvar=-1, max_q_mvar=1., slack=True)
    pp.create_gen(net, 1, p_mw=0.02, vm_pu=1.01, max_p_mw=1., min_p_mw=-1., min_q_mvar=-1, max_q_mvar=1.,
                  controllable=False)
    pp.create_gen(net, 3, p_mw=0.01, vm_pu=1.02, max_p_mw=1., min_p_mw=-1., min_q_mvar=-1, max_q_mvar=1.)
    return net


def basic_gen_p_vm_fixed():  # controllable=False: p_mw enforced, limits ignored
    net = _four_bus_net()
    pp.create_gen(net, 1, p_mw=0.02, vm_pu=1.01, controllable=False, min_vm_pu=.95, max_vm_pu=1.05,
                  min_p_mw=0., max_p_mw=1.)
    return net


def basic_gen_p_vm_limits():
    net = _four_bus_net()
    pp.create_gen(net, 1, p_mw=0.02, vm_pu=1.01, controllable=True, min_vm_pu=.99, max_vm_pu=1.005,
                  min_p_mw=0., max_p_mw=1.)
    return net


def _pwl_two_bus(element: str, points, **kw):
    net = _two_bus()
    if element == "gen":
        pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.05, max_p_mw=0.15, max_q_mvar=0.05,
                      min_q_mvar=-0.05)
    elif element == "sgen":
        pp.create_sgen(net, 1, p_mw=0.1, controllable=True, min_p_mw=kw.get("min_p", 0.05),
                       max_p_mw=kw.get("max_p", 0.15), max_q_mvar=0.05, min_q_mvar=-0.05)
    if element == "load":
        pp.create_load(net, 1, p_mw=0.1, controllable=True, max_p_mw=0.15, min_p_mw=0.050, max_q_mvar=0,
                       min_q_mvar=0)
    else:
        pp.create_load(net, 1, p_mw=kw.get("load", 0.02), controllable=False)
    pp.create_ext_grid(net, 0)
    if element == "ext_grid":
        net.ext_grid.loc[0, ["min_p_mw", "max_p_mw"]] = kw.get("eg_limits", (np.nan, np.nan))
    pp.create_pwl_cost(net, 0, element, points)
    return net


def pwl_gen():
    return _pwl_two_bus("gen", [[0, 75, 1.5], [75, 150, 1.5]])


def pwl_get_costs():
    return _pwl_two_bus("gen", [[0, 150, 2]])


def pwl_sgen():
    return _pwl_two_bus("sgen", [[0, 150, 2]])


def pwl_load():  # a controllable load with a piecewise-linear cost (negated on its injection)
    return _pwl_two_bus("load", [[0, 75, 1.5], [75, 150, 1.5]])


def pwl_ext_grid_uneven_slopes():
    return _pwl_two_bus("ext_grid", [(0, 0.075, 1), (0.075, 150, 2)], load=0.1)


def pwl_sgen_very_unsteady_slopes():
    return _pwl_two_bus("sgen", [[0, 0.75, -1], [0.75, 1500, 2]], min_p=0, max_p=1.5)


def pwl_eg():
    net = _two_bus()
    pp.create_ext_grid(net, 0, min_p_mw=0, max_p_mw=0.050)
    pp.create_gen(net, 1, p_mw=0.01, min_p_mw=0, max_p_mw=0.050, controllable=True)
    pp.create_load(net, 1, p_mw=0.02, controllable=False)
    pp.create_pwl_cost(net, 0, "ext_grid", [[0, 50, -10]])
    return net


def _mixed_net():
    net = _two_bus()
    pp.create_gen(net, 1, p_mw=-0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=.05,
                  min_q_mvar=-.05)
    pp.create_ext_grid(net, 0)
    pp.create_load(net, 1, p_mw=0.02, controllable=False, max_q_mvar=.05, max_p_mw=0.1, min_p_mw=0.0050,
                   min_q_mvar=-.05)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=1)
    return net


def mixed_linear():
    return _mixed_net()


def mixed_quadratic_c0():
    net = _mixed_net()
    net.poly_cost.loc[0, ["cp1_eur_per_mw", "cp2_eur_per_mw2", "cp0_eur"]] = 0.0, 1.0, 1.0
    return net


def mixed_controllable_load():  # a controllable load without a cost row
    net = mixed_quadratic_c0()
    net.load.loc[0, "controllable"] = True
    return net


def mixed_pwl_drops_cp0():  # a pwl row exists: the gen's cp0_eur is dropped
    net = _mixed_net()
    net.poly_cost.loc[0, ["cp1_eur_per_mw", "cp0_eur"]] = 1000.0, 1.0
    pp.create_pwl_cost(net, 0, "ext_grid", [[-1000, 0, -2000], [0, 1000, 2000]], power_type="p")
    return net


def pol_gen_quadratic():
    net = _two_bus()
    pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.05,
                  min_q_mvar=-0.05)
    pp.create_ext_grid(net, 0)
    pp.create_load(net, 1, p_mw=0.02, controllable=False)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=0, cp2_eur_per_mw2=1)
    return net


def pol_all_elements():
    net = _two_bus()
    pp.create_gen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.05,
                  min_q_mvar=-0.05)
    pp.create_sgen(net, 1, p_mw=0.1, controllable=True, min_p_mw=0.005, max_p_mw=0.15, max_q_mvar=0.05,
                   min_q_mvar=-0.05)
    pp.create_ext_grid(net, 0)
    pp.create_load(net, 1, p_mw=0.02, controllable=False)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=0, cp2_eur_per_mw2=1)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=1)
    return net


def _cigre():
    from pandapower.networks.cigre_networks import create_cigre_network_mv

    net = create_cigre_network_mv(with_der="pv_wind")
    net.line["max_loading_percent"] = 200
    net.trafo["max_loading_percent"] = 100
    net.sgen["max_p_mw"] = net.sgen.sn_mva
    net.sgen["min_p_mw"] = 0
    net.sgen["controllable"] = True
    net.load["controllable"] = False
    return net


def cigre_no_costs():  # test_opf_cigre: no cost rows at all -> 1 per MW for every generator
    net = _cigre()
    net.sgen.loc[net.sgen.bus.isin([4, 6, 8, 9]), "in_service"] = False
    return net


def cigre_some_sgens_not_controllable():  # their cost rows are ignored, their p_mw held
    net = _cigre()
    net.sgen.loc[net.sgen.bus.isin([4, 6, 8, 9]), "controllable"] = False
    for i in net.sgen.index:
        pp.create_poly_cost(net, i, "sgen", cp1_eur_per_mw=100)
    return net


def oberrhein():
    net = pn.mv_oberrhein()
    net.line["max_loading_percent"] = 200
    net.trafo["max_loading_percent"] = 100
    net.sgen["min_p_mw"] = -net.sgen.sn_mva
    net.sgen["max_p_mw"] = 0
    net.sgen["controllable"] = True
    net.load["controllable"] = False
    return net


def curtailment():
    net = pp.create_empty_network()
    b1, b2, b3, b4 = (pp.create_bus(net, vn_kv=v) for v in (220., 110., 110., 110.))
    pp.create_transformer(net, b1, b2, std_type="100 MVA 220/110 kV")
    for f, t, km in ((b2, b3, 70.), (b3, b4, 50.), (b4, b2, 40.)):
        pp.create_line(net, f, t, length_km=km, std_type="149-AL1/24-ST1A 110.0")
    for b, p in ((b2, 60), (b3, 70), (b4, 10)):
        pp.create_load(net, b, p_mw=p, controllable=False)
    pp.create_ext_grid(net, b1)
    pp.create_gen(net, b3, p_mw=80., max_p_mw=80., min_p_mw=0., vm_pu=1.01, controllable=True)
    pp.create_gen(net, b4, p_mw=0.1, max_p_mw=100., min_p_mw=0., vm_pu=1.01, controllable=True)
    net.trafo["max_loading_percent"] = 50.
    net.line["max_loading_percent"] = 50.
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=0.02)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=0.0)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=0.3)
    return net


def _dcline_net():
    # test_dcline.dcline_net, with max_p_mw 2000 instead of 1e9 at the ext_grids: with 1e9 rundcopp
    # does not converge once costs are given (nodalopt gives the same result with either)
    net = pp.create_empty_network()
    b5, b3, b2, b4, b1 = (pp.create_bus(net, 380) for _ in range(5))
    pp.create_ext_grid(net, b1, 1.02, min_p_mw=0., max_p_mw=2000)
    pp.create_line(net, b1, b2, 30, "490-AL1/64-ST1A 380.0")
    pp.create_dcline(net, name="dc line", from_bus=b2, to_bus=b3, p_mw=200, loss_percent=1.0, loss_mw=0.5,
                     vm_from_pu=1.01, vm_to_pu=1.012, max_p_mw=1000, in_service=True, index=4)
    pp.create_line(net, b3, b4, 20, "490-AL1/64-ST1A 380.0")
    pp.create_load(net, bus=b4, p_mw=800, controllable=False)
    pp.create_line(net, b4, b5, 20, "490-AL1/64-ST1A 380.0")
    pp.create_ext_grid(net, b5, 1.02, min_p_mw=0., max_p_mw=2000)
    net.line["max_loading_percent"] = 1000
    return net


def dcline_dispatch2():  # the cheap ext_grid sits behind the DC link
    net = _dcline_net()
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=80)
    pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=100)
    return net


def dcline_dispatch3():  # a cost on the link itself; the far ext_grid expensive
    net = _dcline_net()
    pp.create_poly_cost(net, 4, "dcline", cp1_eur_per_mw=1.5)
    pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=2000)
    return net


def dcline_congested():  # the link at its limit: prices on both sides differ
    net = dcline_dispatch2()
    net.dcline.loc[4, "max_p_mw"] = 300
    return net


def dcline_no_costs():  # no cost rows: both ends of the link cost 1 per MW of injection
    return _dcline_net()


PP_TEST_NETS: dict[str, Callable[[], object]] = {f.__name__: f for f in (
    basic_simplest_grid, basic_simplest_dispatch, basic_3w_trafo, basic_dcopf_poly, basic_dcopf_pwl,
    basic_varying_max_line_loading, basic_storage_as_generator, basic_storage_as_load,
    basic_in_service_controllables, basic_no_controllables, basic_no_controllables_vs_pf, basic_three_slacks,
    basic_only_gen_slack, basic_gen_p_vm_fixed, basic_gen_p_vm_limits, pwl_gen, pwl_get_costs, pwl_sgen,
    pwl_load, pwl_ext_grid_uneven_slopes, pwl_sgen_very_unsteady_slopes, pwl_eg, mixed_linear,
    mixed_quadratic_c0, mixed_controllable_load, mixed_pwl_drops_cp0, pol_gen_quadratic, pol_all_elements,
    cigre_no_costs, cigre_some_sgens_not_controllable, oberrhein, curtailment, dcline_dispatch2,
    dcline_dispatch3, dcline_congested, dcline_no_costs)}


@pytest.mark.parametrize("name", list(PP_TEST_NETS))
def test_pandapower_opf_test_nets_match_rundcopp(name):
    net = PP_TEST_NETS[name]()
    assert_agrees(net)


def dcline_reverse():  # p_mw < 0: pandapower lets the link carry power from to_bus to from_bus only
    net = _dcline_net()
    net.dcline.loc[4, "p_mw"] = -200.0
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=100)
    pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=80)
    pp.create_load(net, 2, p_mw=300, controllable=False)  # bus b2, at the link's from end
    return net


def dcline_in_meshed_island():  # a link in parallel with a congested AC path: prices decompose
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(3)]
    for f, t in ((0, 1), (1, 2), (0, 2)):
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                       max_i_ka=0.6, max_loading_percent=100)
    pp.create_ext_grid(net, b[0], min_p_mw=0, max_p_mw=500)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=0, max_p_mw=300, controllable=True)
    pp.create_load(net, b[2], p_mw=250, controllable=False)
    pp.create_dcline(net, b[0], b[2], p_mw=10, loss_percent=2.0, loss_mw=1.0, vm_from_pu=1, vm_to_pu=1,
                     max_p_mw=40)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=30)
    pp.create_poly_cost(net, 0, "dcline", cp1_eur_per_mw=0.5)
    return net


MORE_NETS = {f.__name__: f for f in (dcline_reverse, dcline_in_meshed_island)}


@pytest.mark.parametrize("name", list(MORE_NETS))
def test_more_dcline_nets_match_rundcopp(name):
    assert_agrees(MORE_NETS[name]())


# ------------------------------------------------------------------ the points, one by one
def _pjm():
    d = pglib_dir()
    if d is None or not (d / "pglib_opf_case5_pjm.m").is_file():
        pytest.skip("../shared/pglib is absent")
    from pandapower.converter.matpower.from_mpc import from_mpc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_mpc(str(d / "pglib_opf_case5_pjm.m"), f_hz=60)


def test_pjm_ext_grid_limits_are_enforced_like_rundcopp():
    """The converter's slack is an ext_grid with controllable=False and 0..200 MW: rundcopp keeps it
    at 0 MW (nodalopt used to run it at -131.25 MW, objective 17,472.38)."""
    net = _pjm()
    assert not bool(net.ext_grid.controllable.iloc[0]) and net.ext_grid.min_p_mw.iloc[0] == 0
    a = assert_agrees(net)
    ds = a["ds"]
    np.testing.assert_allclose(ds.lmp.values[0], [16.977, 26.384, 30.000, 39.943, 10.000], atol=1e-3)
    assert ds.attrs["objective"] == pytest.approx(17479.90, abs=5e-3)
    assert float(ds.p_gen.sel(gen="ext_grid:0").values[0]) >= -1e-6


def test_defaults_are_reported_and_strict_refuses_them():
    net = basic_simplest_grid()  # ext_grid: no limits, no cost row
    with pytest.warns(PandapowerDefaultsWarning, match=r"ext_grid:0"):
        ds = nodalopt.solve(net)
    rep = ds.attrs["pandapower_defaults"]
    assert "no cost row, cost 0" in rep and "'min_p_mw' missing or NaN" in rep and "ext_grid:0" in rep
    with pytest.raises(nodalopt.InputError, match=r"strict=True.*no cost row.*ext_grid:0"):
        nodalopt.solve(net, strict=True)
    assert "pandapower_defaults" not in solve(basic_simplest_dispatch()).attrs or \
        "no cost row" not in solve(basic_simplest_dispatch()).attrs["pandapower_defaults"]


def test_no_cost_rows_at_all_cost_one_per_mw():
    ds = solve(cigre_no_costs())
    assert "every generator costs 1 per MW" in ds.attrs["pandapower_defaults"]
    u = ds.lmp_unique.values[0]
    np.testing.assert_allclose(ds.lmp.values[0][u], 1.0, atol=1e-6)


def test_cp0_is_dropped_once_a_pwl_cost_exists():
    ds = solve(mixed_pwl_drops_cp0())
    assert "cp0_eur dropped" in ds.attrs["pandapower_defaults"]
    assert ds.attrs["objective"] == pytest.approx(20.0, abs=1e-5)  # 1000 $/MWh x 0.02 MW, no +1


def test_non_controllable_sgen_is_held_at_its_set_point():
    net = basic_no_controllables_vs_pf()  # sgen 0.025 MW, controllable=False, a cost row of 2 $/MWh
    ds = solve(net)
    assert float(ds.p_gen.sel(gen="sgen:0").values[0]) == pytest.approx(0.025, abs=1e-9)
    assert "cost rows ignored" in ds.attrs["pandapower_defaults"]
    # nodalopt's richer model, asked for by name: curtailable, with its cost row (2 $/MWh, above the
    # ext_grid's 1 $/MWh here)
    net.poly_cost.loc[net.poly_cost.et == "ext_grid", "cp1_eur_per_mw"] = 1.0
    assert float(solve(net).p_gen.sel(gen="sgen:0").values[0]) == pytest.approx(0.025, abs=1e-6)
    ds = solve(net, curtail_sgen=True)
    assert float(ds.p_gen.sel(gen="sgen:0").values[0]) == pytest.approx(0.0, abs=1e-6)


def test_non_controllable_sgen_follows_its_profile():
    net = basic_no_controllables_vs_pf()
    ds = solve(net, profiles={("sgen", "p_mw"): np.array([1.0, 0.5])})
    np.testing.assert_allclose(ds.p_gen.sel(gen="sgen:0").values, [0.025, 0.0125], atol=1e-6)


def test_storage_single_period_and_horizon():
    net = basic_storage_as_generator()  # soc_percent NaN, as pp.create_storage leaves it
    assert np.isnan(net.storage.soc_percent.iloc[0])
    ds = solve(net)  # one period: dispatched within its power limits, as rundcopp
    assert float(ds.p_gen.sel(gen="storage:0").values[0]) == pytest.approx(0.025, abs=1e-6)
    with pytest.raises(nodalopt.InputError, match=r"soc_percent.*storage:0.*multi-period"):
        solve(net, hours=2)
    net.storage.loc[0, "soc_percent"] = 50.0
    ds = solve(net, hours=2, demo_profiles=False)  # a horizon: energy tracked, back to 50 % at the end
    assert "storage:0" in [str(s) for s in ds.storage.values]
    assert "storage:0" not in [str(g) for g in ds.gen.values]


def test_dcline_losses_follow_rundcopp():
    """pandapower's OPF ties the link's ends by (1 + loss_percent/100) p_to = p_from - loss_mw."""
    a = assert_agrees(dcline_dispatch2())
    ds, ref = a["ds"], a["ref"]
    assert float(ds.p_dcline.values[0, 0]) == pytest.approx(808.5, abs=1e-4)
    assert float(ds.p_dcline_to.values[0, 0]) == pytest.approx(800.0, abs=1e-4)
    assert float(ds.dcline_loss.values[0, 0]) == pytest.approx(8.5, abs=1e-4)
    assert float(ds.p_dcline_to.values[0, 0]) == pytest.approx(-float(ref.res_dcline.p_to_mw.iloc[0]), abs=1e-3)


def test_dcline_over_uncoupled_periods():
    net = dcline_dispatch2()
    one = solve(net)
    ds = solve(net, profiles={("load", "p_mw"): np.array([1.0, 0.5, 1.0])})
    assert ds.attrs["periods_solved_separately"] == 1
    np.testing.assert_allclose(ds.p_dcline.values[:, 0], [808.5, 0.5 + 1.01 * 400, 808.5], atol=1e-4)
    np.testing.assert_allclose(ds.lmp.values[0], one.lmp.values[0], atol=1e-6)


@pytest.mark.parametrize("name", ["dcline_congested", "dcline_in_meshed_island"])
def test_dcline_prices_decompose(name):
    net = {**PP_TEST_NETS, **MORE_NETS}[name]()
    ds = solve(net)
    assert ds.attrs["decomposition_residual"] <= 1e-6
    np.testing.assert_allclose(ds.lmp.values, ds.lmp_energy.values + ds.lmp_congestion.values, atol=1e-6)
    arr = nodalopt.compile_network(net, storage="power")
    lam = ds.lmp.sel(bus=arr.bus_ids).values[0]
    node_price = np.zeros(arr.n_node)
    node_price[arr.bus_node] = lam
    # the congested link is worth its price spread: eff * price_to - price_from - cost >= 0
    value = arr.dc_eff * node_price[arr.dc_t] - node_price[arr.dc_f] - arr.dc_c1
    at_max = np.isclose(ds.p_dcline.values[0], arr.dc_pmax, atol=1e-4)
    assert at_max.all() and (value > 1e-3).all()


def test_carbon_accounting_with_a_dcline_is_refused_not_wrong():
    net = dcline_in_meshed_island()
    net.ext_grid["co2_t_per_mwh"] = 0.9
    net.gen["co2_t_per_mwh"] = 0.3
    with pytest.raises(nodalopt.InputError, match=r"carbon accounting does not follow DC links.*dcline:0"):
        solve(net, carbon_price=10.0)


def test_concave_or_mixed_costs_are_refused():
    net = mixed_controllable_load()
    pp.create_poly_cost(net, 0, "load", cp1_eur_per_mw=0, cp2_eur_per_mw2=1.0)  # negated: concave
    with pytest.raises(nodalopt.InputError, match=r"load:0.*concave"):
        solve(net)
    net = pol_gen_quadratic()
    pp.create_pwl_cost(net, 0, "ext_grid", [[0, 1, 5]])
    with pytest.raises(nodalopt.InputError,
                       match=r"cannot mix piecewise-linear and quadratic|Quadratic costs can be mixed with piecewise"):
        solve(net)


# ------------------------------------- PGLib through pandapower's converter, built-in cases
#: PGLib cases up to 3,000 buses that rundcopp does not solve ("Optimal Power Flow did not converge" or a
#: division by zero in makeBdc on a zero-reactance branch); measured with pandapower 3.5.6
PGLIB_RUNDCOPP_FAILS = {"pglib_opf_case500_goc", "pglib_opf_case1803_snem", "pglib_opf_case1888_rte",
                        "pglib_opf_case1951_rte", "pglib_opf_case2383wp_k", "pglib_opf_case2742_goc",
                        "pglib_opf_case2746wop_k", "pglib_opf_case2848_rte", "pglib_opf_case2853_sdet",
                        "pglib_opf_case2868_rte"}
#: built-in pandapower cases rundcopp does not solve (PEGASE / RTE cases as shipped are infeasible or do
#: not converge, see PEER-NOTES)
BUILTIN_RUNDCOPP_FAILS = {"case4gs", "case89pegase", "case145", "case1354pegase", "case1888rte", "case2848rte",
                          "case2869pegase", "case3120sp", "case6470rte", "case6495rte", "case6515rte",
                          "case9241pegase"}
SLOW_BUSES = 500  # larger cases run under @pytest.mark.slow


def _pglib_cases() -> list:
    d = pglib_dir()
    if d is None:
        return []
    from conftest import pglib_baseline

    out = []
    for name, (buses, _) in sorted(pglib_baseline(d).items(), key=lambda kv: kv[1][0]):
        if buses > 3000 or not (d / f"{name}.m").is_file():
            continue
        marks = [pytest.mark.slow] if buses >= SLOW_BUSES else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.pglib
@pytest.mark.parametrize("name", _pglib_cases())
def test_pglib_via_from_mpc_matches_rundcopp(name):
    if name in PGLIB_RUNDCOPP_FAILS:
        pytest.skip("rundcopp does not solve this case")
    from pandapower.converter.matpower.from_mpc import from_mpc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_mpc(str(Path(pglib_dir()) / f"{name}.m"), f_hz=60)
    assert_agrees(net)


def _builtin_cases() -> list:
    out = []
    for name in sorted(n for n in dir(pn) if n.startswith("case") and callable(getattr(pn, n))):
        big = any(s in name for s in ("1354", "1888", "2848", "2869", "3120", "6470", "6495", "6515", "9241"))
        out.append(pytest.param(name, id=name, marks=[pytest.mark.slow] if big else []))
    return out


@pytest.mark.parametrize("name", _builtin_cases())
def test_builtin_cases_match_rundcopp(name):
    if name in BUILTIN_RUNDCOPP_FAILS:
        pytest.skip("rundcopp does not solve this case as shipped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = getattr(pn, name)()
    assert_agrees(net)
