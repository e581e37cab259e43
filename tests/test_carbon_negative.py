"""Carbon accounting with negative injections (issue 12, point 2).

A unit emits only when it generates: its emissions are ``ef * max(p, 0)``.  Power it
absorbs (an ext_grid exporting to the upstream grid, storage charging, a controllable
load, a unit allowed below 0 MW) is consumption at its bus's carbon intensity.  Checked
here, on an absorbing ext_grid (PGLib PJM 5-bus through pandapower's converter), a
24-hour case with charging storage and an exporting ext_grid, and a net with a
price-responsive load and a unit that may run negative:

* emissions are never negative and add up to ``sum ef * max(p, 0)`` computed here;
* carbon is conserved: ``sum(consumption * carbon_intensity) == sum(emissions)`` in every
  period (1e-6 relative), with consumption rebuilt here from demand, charging and the
  negative injections;
* the LME equals finite differences of ``sum ef * max(p, 0)`` (re-solved) at unique buses;
* a carbon price or CO2 cap acts on ``max(p, 0)``: the result equals that of the
  equivalent net in which the absorbing unit is split into a non-emitting absorbing half
  and an emitting generating half (a linear model nobody here special-cased).
"""

from __future__ import annotations

import functools

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from helpers import rating_to_i_ka

import nodalopt

#: PJM 5-bus factors in MATPOWER generator order (Alta, Park City, Solitude, Sundance, Brighton)
PJM_EF = {"gen:0": 0.95, "sgen:0": 0.95, "gen:1": 0.40, "ext_grid:0": 0.75, "gen:2": 0.0}
TIGHT = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 1000}


def pjm_absorbing(pglib_dir) -> object:
    """PGLib case5_pjm through ``pandapower.converter``; the ext_grid (Sundance, bus 4, 40 $/MWh) made
    controllable with ``min_p_mw = -200`` so it absorbs (about -131 MW) under either reading of
    pandapower's ext_grid limits."""
    from pandapower.converter.matpower.from_mpc import from_mpc

    net = from_mpc(str(pglib_dir / "pglib_opf_case5_pjm.m"))
    net.ext_grid["controllable"] = True
    net.ext_grid["min_p_mw"] = -200.0
    net.name = "pjm_absorbing"
    return net


def one(da) -> float:
    """The single value of a DataArray (a period of a single-period result)."""
    return float(np.asarray(da).item())


def ef_vector(ds, ef: dict[str, float]) -> np.ndarray:
    return np.array([ef[str(g)] for g in ds.gen.values])


def consumed(ds, net) -> np.ndarray:
    """(T, bus) MW consumed, rebuilt from the Dataset and the net: demand served + storage charging +
    power absorbed by injectors with negative output (every bus is its own node in these nets)."""
    c = np.maximum(ds.demand.values, 0.0)
    bus_of = {f"{t}:{i}": int(b) for t in ("gen", "sgen", "ext_grid", "load") for i, b in net[t].bus.items()}
    cols = {int(b): k for k, b in enumerate(ds.bus.values)}
    for j, g in enumerate(ds.gen.values):
        c[:, cols[bus_of[str(g)]]] += np.maximum(-ds.p_gen.values[:, j], 0.0)
    if "p_storage" in ds:
        for j, b in enumerate(net.storage.bus):
            c[:, cols[int(b)]] += np.maximum(-ds.p_storage.values[:, j], 0.0)
    return c


def check_conservation(ds, net, ef: dict[str, float]) -> None:
    e = ef_vector(ds, ef)
    direct = np.maximum(ds.p_gen.values, 0.0) * e[None, :]  # (T, G) tCO2/h
    assert (ds.emissions.values >= 0).all()
    np.testing.assert_allclose(ds.emissions.values, direct, atol=1e-9)
    c = consumed(ds, net)
    np.testing.assert_allclose(ds.consumption.values, c, atol=1e-6)
    lhs = (c * ds.carbon_intensity.values).sum(axis=1)
    np.testing.assert_allclose(lhs, direct.sum(axis=1), rtol=1e-6)
    assert ds.attrs["total_emissions_t"] == pytest.approx(direct.sum() * ds.attrs["period_hours"], rel=1e-9)


def fd_lme(model: nodalopt.DCOPF, prof: dict, ef: np.ndarray, load_col: object, hour: int,
           eps: float = 1e-2) -> float:
    """(E(d + eps) - E(d)) / eps with E = sum ef * max(p, 0), re-solved; ``load_col`` is a load index."""
    def emissions(p: dict) -> float:
        ds = model.solve(p)
        return float((np.maximum(ds.p_gen.values, 0.0) @ ef).sum()) * model.dt

    e0 = emissions(prof)
    bumped = prof[("load", "p_mw")].copy()
    bumped.iloc[hour, bumped.columns.get_loc(load_col)] += eps
    return (emissions({**prof, ("load", "p_mw"): bumped}) - e0) / (eps * model.dt)


# ------------------------------------------------------------ absorbing ext_grid
def test_absorbing_ext_grid_emits_nothing_and_carbon_is_conserved(pglib):
    net = pjm_absorbing(pglib)
    ds = nodalopt.solve(net, emission_factors=PJM_EF)
    p = dict(zip(map(str, ds.gen.values), ds.p_gen.values[0], strict=True))
    assert p["ext_grid:0"] < -100.0  # absorbing
    check_conservation(ds, net, PJM_EF)
    # 0.95 * 40 + 0.95 * 170 + 0.40 * 520 + 0 (Brighton) = 407.5 t/h; before: 309.1 (-98.4 from the ext_grid)
    assert float(ds.emissions.sum()) == pytest.approx(407.5, rel=1e-6)
    assert one(ds.emissions.sel(gen="ext_grid:0")) == 0.0


def test_absorbing_ext_grid_lme_matches_finite_differences(pglib):
    net = pjm_absorbing(pglib)
    ef = dict(PJM_EF)
    ef["gen:2"] = 0.3  # Brighton (marginal at bus 4) emits, so the LME is not trivially 0
    model = nodalopt.DCOPF(net, emission_factors=ef, solver_options=TIGHT)
    prof = {("load", "p_mw"): pd.DataFrame([net.load.p_mw.to_numpy()], columns=net.load.index)}
    ds = model.solve(prof)
    assert one(ds.p_gen.sel(gen="ext_grid:0")) < -100.0
    e = ef_vector(ds, ef)
    checked = 0
    for li, bus in net.load.bus.items():
        if not bool(one(ds.lme_unique.sel(bus=bus))):
            continue
        for eps in (1e-2, -1e-2):
            assert fd_lme(model, prof, e, li, 0, eps) == pytest.approx(one(ds.lme.sel(bus=bus)), abs=1e-5)
        checked += 1
    assert checked == 3
    # the marginal ext_grid absorbs: its emissions do not move with demand (0.3 = Brighton only)
    assert np.abs(ds.lme.values).max() > 0.1


@pytest.mark.parametrize("kind", ["carbon_price", "co2_cap"])
def test_carbon_price_and_cap_act_on_positive_output_only(pglib, kind):
    """Reference: the ext_grid split into a non-emitting absorbing half [-200, 0] and an emitting
    generating gen [0, 200] at the same bus, same cost (a linear model: max(p, 0) is explicit)."""
    net = pjm_absorbing(pglib)
    split = pjm_absorbing(pglib)
    split.ext_grid["max_p_mw"] = 0.0
    g = pp.create_gen(split, int(split.ext_grid.bus.iloc[0]), p_mw=0.0, min_p_mw=0.0, max_p_mw=200.0,
                      controllable=True)
    pp.create_poly_cost(split, g, "gen", cp1_eur_per_mw=40.0)
    ef_split = {**PJM_EF, "ext_grid:0": 0.0, f"gen:{g}": 0.75}
    kw = {"carbon_price": 20.0} if kind == "carbon_price" else {"co2_cap": 300.0}
    ds = nodalopt.solve(net, emission_factors=PJM_EF, **kw)
    ref = nodalopt.solve(split, emission_factors=ef_split, **kw)
    assert ds.attrs["objective"] == pytest.approx(ref.attrs["objective"], rel=1e-7)
    np.testing.assert_allclose(ds.lmp.values, ref.lmp.values, atol=1e-4)
    assert float(ds.emissions.sum()) == pytest.approx(float(ref.emissions.sum()), rel=1e-6)
    p_ext = one(ds.p_gen.sel(gen="ext_grid:0"))
    assert p_ext == pytest.approx(one(ref.p_gen.sel(gen="ext_grid:0")) + one(ref.p_gen.sel(gen=f"gen:{g}")),
                                  abs=1e-3)
    check_conservation(ds, net, PJM_EF)
    if kind == "co2_cap":
        assert ds.attrs["total_emissions_t"] == pytest.approx(300.0, rel=1e-6)
        assert ds.attrs["co2_cap_price"] == pytest.approx(ref.attrs["co2_cap_price"], rel=1e-5)
    else:  # the ext_grid sits at 0 MW, on the kink of its cost (40 $/MWh absorbing, 55 generating):
        assert abs(p_ext) < 1e-4  # held there, so the LME is unique
        assert ds.lme_unique.values.all()
        e_ref = ef_vector(ref, ef_split)
        model = nodalopt.DCOPF(split, emission_factors=ef_split, carbon_price=20.0)
        prof = {("load", "p_mw"): pd.DataFrame([split.load.p_mw.to_numpy()], columns=split.load.index)}
        for li, bus in split.load.bus.items():
            assert fd_lme(model, prof, e_ref, li, 0) == pytest.approx(one(ds.lme.sel(bus=bus)), abs=1e-4)


def test_profile_that_makes_an_emitter_negative_is_refused():
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(2)]
    pp.create_line_from_parameters(net, b[0], b[1], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                   max_i_ka=1.0)
    pp.create_ext_grid(net, b[0], min_p_mw=0.0, max_p_mw=200.0, controllable=True)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=30.0)
    pp.create_load(net, b[1], p_mw=50.0)
    m = nodalopt.DCOPF(net, carbon_price=10.0, emission_factors=[0.5])
    with pytest.raises(nodalopt.InputError, match="ext_grid:0"):
        m.solve({("ext_grid", "min_p_mw"): pd.DataFrame([[-20.0]], columns=net.ext_grid.index)})


# ------------------------------------------------------- storage charging, 24 h
STORAGE_EF = {"ext_grid:0": 0.8, "gen:0": 0.37, "sgen:0": 0.0}


def storage_export_net() -> tuple[object, dict]:
    """4 meshed buses, one 90 MW line that congests; an ext_grid at bus 0 that imports or exports
    (-150..300 MW, quadratic cost), a CCGT at bus 1, a wind farm at bus 3 with a night-time surplus,
    a battery at bus 2 that charges on it; a load at every bus."""
    net = pp.create_empty_network(name="storage_export")
    b = [pp.create_bus(net, 110) for _ in range(4)]
    for f, t, lim in ((0, 1, 1e4), (1, 2, 1e4), (2, 3, 1e4), (3, 0, 1e4), (0, 2, 90.0)):
        pp.create_line_from_parameters(net, b[f], b[t], 10 + 3 * f + t, r_ohm_per_km=0.01, x_ohm_per_km=0.4,
                                       c_nf_per_km=0, max_i_ka=rating_to_i_ka(lim, 110), max_loading_percent=100)
    pp.create_ext_grid(net, b[0], min_p_mw=-150.0, max_p_mw=300.0, controllable=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=10.0, max_p_mw=220.0, controllable=True)
    pp.create_sgen(net, b[3], p_mw=250.0, controllable=True, min_p_mw=0.0, max_p_mw=250.0)
    pp.create_poly_cost(net, 0, "sgen", cp1_eur_per_mw=0.0)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=35.0, cp2_eur_per_mw2=0.06)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=30.0, cp2_eur_per_mw2=0.04)
    for bb, p in ((0, 10.0), (1, 80.0), (2, 90.0), (3, 20.0)):
        pp.create_load(net, b[bb], p_mw=p)
    pp.create_storage(net, b[2], p_mw=0, max_e_mwh=120, soc_percent=30, min_p_mw=-40, max_p_mw=40,
                      controllable=True)
    net.storage["charge_efficiency"] = 0.9
    net.storage["discharge_efficiency"] = 0.9
    hours = np.arange(24)
    shape = 0.7 + 0.4 * np.sin((hours - 8) / 24 * 2 * np.pi)
    loads = pd.DataFrame(np.outer(shape, net.load.p_mw.to_numpy()), columns=net.load.index)
    wind = pd.DataFrame(250 * (0.55 + 0.4 * np.cos(hours / 24 * 2 * np.pi))[:, None], columns=net.sgen.index)
    return net, {("load", "p_mw"): loads, ("sgen", "max_p_mw"): wind}


@functools.lru_cache(maxsize=1)
def storage_model() -> tuple[nodalopt.DCOPF, dict, object]:
    net, prof = storage_export_net()
    return nodalopt.DCOPF(net, hours=24, emission_factors=STORAGE_EF, solver_options=TIGHT), prof, net


def test_charging_storage_and_exporting_ext_grid_24h():
    m, prof, net = storage_model()
    ds = m.solve(prof)
    p_ext = ds.p_gen.sel(gen="ext_grid:0").values
    charge = np.maximum(-ds.p_storage.values[:, 0], 0.0)
    assert (p_ext < -1.0).sum() >= 3 and (p_ext > 1.0).sum() >= 3  # exports at night, imports by day
    assert (charge > 1.0).sum() >= 3 and ((p_ext < -1.0) & (charge > 1.0)).any()
    check_conservation(ds, net, STORAGE_EF)
    # the LME against finite differences at unique node-hours, including exporting hours
    e = ef_vector(ds, STORAGE_EF)
    hours = np.r_[np.flatnonzero(p_ext < -1.0)[:3], np.flatnonzero(p_ext > 1.0)[:3]]
    checked = 0
    for li, bus in net.load.bus.items():
        for t in hours:
            if not bool(one(ds.lme_unique.isel(time=t).sel(bus=bus))):
                continue
            fd = fd_lme(m, prof, e, li, int(t))
            assert fd == pytest.approx(one(ds.lme.isel(time=t).sel(bus=bus)), abs=1e-3), (bus, t)
            checked += 1
    assert checked >= 12


# ------------------------------------------ price-responsive load, negative unit
def flexible_net() -> object:
    """Triangle, one congested line; a controllable load (bids 45 $/MWh) at bus 2 and a unit at bus 1
    that may run from -50 to 100 MW (a pumped-storage-like generator with a carbon factor)."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(3)]
    for f, t, lim in ((0, 1, 60.0), (1, 2, 1e4), (0, 2, 1e4)):
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                       max_i_ka=rating_to_i_ka(lim, 110), max_loading_percent=100)
    pp.create_gen(net, b[0], p_mw=0, min_p_mw=0, max_p_mw=300, controllable=True, slack=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=-50.0, max_p_mw=100.0, controllable=True)
    for bus, mw in ((1, 40.0), (2, 60.0), (0, 10.0)):
        pp.create_load(net, b[bus], p_mw=mw)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20.0, cp2_eur_per_mw2=0.05)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=50.0, cp2_eur_per_mw2=0.2)
    li = pp.create_load(net, b[2], p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=80.0)
    # pandapower negates a load's cost on the injection: a convex (decreasing) bid has a negative cp2
    pp.create_poly_cost(net, li, "load", cp1_eur_per_mw=-45.0, cp2_eur_per_mw2=-0.1)
    return net


FLEX_EF = {"gen:0": 0.9, "gen:1": 0.5, "load:3": 0.0}


@pytest.mark.parametrize("negative_load", [False, True], ids=["plain", "negative_fixed_load"])
def test_price_responsive_load_and_negative_unit(negative_load):
    """``negative_load``: a -70 MW fixed load (fixed generation) at bus 1, where the unit absorbs: the
    node both consumes and has a zero-emission source."""
    net = flexible_net()
    if negative_load:
        pp.create_load(net, 1, p_mw=-70.0)
    fixed = net.load.index[~net.load.controllable.astype(bool)]
    prof = {("load", "p_mw"): pd.DataFrame([net.load.p_mw[fixed].to_numpy()], columns=fixed)}
    m = nodalopt.DCOPF(net, emission_factors=FLEX_EF, solver_options=TIGHT)
    ds = m.solve(prof)
    p = dict(zip(map(str, ds.gen.values), ds.p_gen.values[0], strict=True))
    assert p["gen:1"] < -1.0 and p["load:3"] < -1.0  # the unit absorbs, the flexible load consumes
    check_conservation(ds, net, FLEX_EF)
    e = ef_vector(ds, FLEX_EF)
    assert ds.lme_unique.values.all()
    for li in fixed:
        bus = int(net.load.bus[li])
        for eps in (1e-2, -1e-2):
            assert fd_lme(m, prof, e, li, 0, eps) == pytest.approx(one(ds.lme.sel(bus=bus)), abs=1e-4)
