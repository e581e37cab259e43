"""Element coverage against pandapower rundcopp: 3-winding transformers, impedances,
xwards, shunts, bus-bus switches, sgens, parallel lines, out-of-service elements,
piecewise-linear costs, controllable loads."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
from helpers import three_bus

import nodalopt


def multivoltage():
    net = pn.example_multivoltage()  # trafo3w, impedance, xward, shunt, 88 switches, sgens
    net.ext_grid["controllable"] = True
    net.ext_grid["min_p_mw"], net.ext_grid["max_p_mw"] = -1000.0, 1000.0
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=50, cp2_eur_per_mw2=0.01)
    net.gen["controllable"] = True
    net.gen["min_p_mw"], net.gen["max_p_mw"] = 0.0, 100.0
    for g in net.gen.index:
        pp.create_poly_cost(net, g, "gen", cp1_eur_per_mw=30 + g, cp2_eur_per_mw2=0.05)
    net.sgen["controllable"] = False
    net.load["controllable"] = False
    for t in ("line", "trafo", "trafo3w"):
        net[t]["max_loading_percent"] = 100.0
    return net


def _compare(net, atol=1e-3):
    ds = nodalopt.solve(net)
    ref = copy.deepcopy(net)
    pp.rundcopp(ref)
    assert ref.OPF_converged
    lam = ref.res_bus.lam_p.loc[ds.bus.values].to_numpy()
    u = ds.lmp_unique.values[0]
    np.testing.assert_allclose(ds.lmp.values[0][u], lam[u], atol=atol)
    assert ds.attrs["objective"] == pytest.approx(ref.res_cost, rel=1e-6)
    return ds, ref


def test_multivoltage_network_matches_rundcopp():
    net = multivoltage()
    ds, ref = _compare(net)
    lines = [b for b in ds.branch.values if b.startswith("line:")]
    np.testing.assert_allclose(ds.flow.sel(branch=lines).values[0],
                               ref.res_line.p_from_mw.loc[[int(b.split(":")[1]) for b in lines]], atol=1e-4)
    assert any(b.startswith("trafo3w:") for b in ds.branch.values)
    assert "impedance:0" in ds.branch.values
    # buses fused by closed bus-bus switches share one price
    sw = net.switch[(net.switch.et == "b") & net.switch.closed]
    a, b = sw.bus.to_numpy(), sw.element.to_numpy()
    np.testing.assert_allclose(ds.lmp.sel(bus=a).values, ds.lmp.sel(bus=b).values, atol=1e-9)


def test_multivoltage_congested_matches_rundcopp():
    net = multivoltage()
    ds0 = nodalopt.solve(net)
    flow = abs(float(ds0.flow.sel(branch="line:3").values[0]))  # meshed 110 kV line near the gen
    ln = net.line.loc[3]
    full = ln.max_i_ka * np.sqrt(3) * net.bus.vn_kv.at[ln.from_bus] * ln.df * ln.parallel
    net.line.at[3, "max_loading_percent"] = 100 * 0.8 * flow / full
    ds, _ = _compare(net)
    assert "line:3" in ds.attrs["binding_branches"]
    assert ds.attrs["binding_branches"]
    assert np.ptp(ds.lmp.values) > 0.5


def test_parallel_and_out_of_service_lines():
    net = three_bus(limit_13=160)
    # a second, identical 0-2 line doubles the corridor: no congestion at 300 MW
    pp.create_line_from_parameters(net, 0, 2, 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                   max_i_ka=net.line.max_i_ka.at[2], max_loading_percent=100)
    ds = nodalopt.solve(net)
    np.testing.assert_allclose(ds.lmp.values[0], [10, 10, 10], atol=1e-6)
    net.line.at[3, "in_service"] = False
    ds = nodalopt.solve(net)
    np.testing.assert_allclose(ds.lmp.values[0], [10, 20, 30], atol=1e-6)
    assert "line:3" not in ds.branch.values


def test_open_line_switch_takes_line_out():
    net = three_bus(limit_13=1e4)
    pp.create_switch(net, 0, 2, et="l", closed=False)  # opens line 2 at bus 0
    ds = nodalopt.solve(net)
    assert "line:2" not in ds.branch.values or abs(float(ds.flow.sel(branch="line:2").values[0])) < 1e-9


def test_piecewise_linear_cost_matches_rundcopp():
    net = three_bus(limit_13=1e4)
    net.poly_cost = net.poly_cost[net.poly_cost.et != "gen"]
    # convex: 15 $/MWh up to 100 MW, 25 $/MWh to 500 MW
    pp.create_pwl_cost(net, 0, "gen", [[0, 100, 15], [100, 500, 25]])
    net.ext_grid.at[0, "max_p_mw"] = 250.0
    ds = nodalopt.solve(net)
    # ext_grid (10 $/MWh) at its 250 MW limit, gen on its first segment supplies 50 MW
    np.testing.assert_allclose(ds.p_gen.values[0], [250, 50], atol=1e-4)
    np.testing.assert_allclose(ds.lmp.values[0], [15, 15, 15], atol=1e-5)
    assert ds.attrs["objective"] == pytest.approx(250 * 10 + 50 * 15, rel=1e-7)
    _compare(net)


def test_non_convex_pwl_is_refused():
    net = three_bus()
    net.poly_cost = net.poly_cost[net.poly_cost.et != "gen"]
    pp.create_pwl_cost(net, 0, "gen", [[0, 100, 25], [100, 500, 15]])
    with pytest.raises(nodalopt.InputError, match=r"not convex"):
        nodalopt.solve(net)


def test_controllable_load_is_price_responsive():
    net = three_bus(limit_13=1e4)
    # a flexible 100 MW load at bus 2 worth 25 $/MWh: served while the price is below 25
    pp.create_load(net, 2, p_mw=0, min_p_mw=0, max_p_mw=100, controllable=True)
    pp.create_poly_cost(net, 1, "load", cp1_eur_per_mw=-25)
    ds = nodalopt.solve(net)
    assert float(ds.p_gen.sel(gen="load:1").values[0]) == pytest.approx(-100, abs=1e-4)
    assert float(ds.demand.sel(bus=2).values[0]) == pytest.approx(300, abs=1e-6)  # fixed part
    _compare(net)


def test_renewable_is_curtailed_only_when_worthless():
    net = three_bus(limit_13=1e4)
    pp.create_sgen(net, 2, p_mw=400.0)  # uncontrollable: with curtail_sgen, available up to p_mw, zero cost
    ds = nodalopt.solve(net, curtail_sgen=True)  # issue 12: pandapower's own meaning (fixed) is the default
    assert float(ds.p_gen.sel(gen="sgen:0").values[0]) == pytest.approx(300, abs=1e-3)
    assert float(ds.curtailment.sel(gen="sgen:0").values[0]) == pytest.approx(100, abs=1e-3)
    np.testing.assert_allclose(ds.lmp.values[0], 0.0, atol=1e-5)


def test_two_islands_each_with_its_own_reference():
    net = three_bus(limit_13=1e4)
    # a second island: its own ext_grid at 50 $/MWh serving 20 MW
    a, b = pp.create_bus(net, 20), pp.create_bus(net, 20)
    pp.create_line_from_parameters(net, a, b, 1, 0.1, 0.3, 0, 1.0)
    pp.create_ext_grid(net, a, min_p_mw=0, max_p_mw=100, controllable=True)
    pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=50)
    pp.create_load(net, b, p_mw=20)
    ds = nodalopt.solve(net)
    np.testing.assert_allclose(ds.lmp.sel(bus=[0, 1, 2]).values[0], 10, atol=1e-6)
    np.testing.assert_allclose(ds.lmp.sel(bus=[a, b]).values[0], 50, atol=1e-6)
    np.testing.assert_allclose(ds.lmp_energy.sel(bus=[a, b]).values[0], 50, atol=1e-6)


def test_any_installed_solver_by_name():
    import cvxpy as cp

    if "HIGHS" not in cp.installed_solvers():
        pytest.skip("HiGHS not installed")
    net = three_bus(limit_13=160)
    ds = nodalopt.solve(net, solver="highs")
    assert ds.attrs["solver"] == "HIGHS"
    np.testing.assert_allclose(ds.lmp.values[0], [10, 20, 30], atol=1e-6)
