"""Carbon kernels: emission factors, carbon emission flow, locational marginal emissions (LME).

LMEs are checked against finite differences: re-solve with +eps MW of demand at
one node and hour and divide the change in total emissions by eps MWh.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from helpers import rating_to_i_ka

import nodalopt
from nodalopt.carbon import (
    carbon_emission_flow,
    factor_table,
    factors_from_fuel,
    locational_marginal_emissions,
    synthetic_factors,
)
from nodalopt.dcopf.state import SolvedState
from nodalopt.network import compile_network
from nodalopt.network.arrays import DISPATCHABLE, RENEWABLE

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- helpers
def state_from_model(m: nodalopt.DCOPF, ds: object = None) -> SolvedState:
    """The solved primal-dual point of the last ``m.solve`` (read from the cvxpy objects)."""
    b, net, T, dt = m._built, m.net, m.T, m.dt
    v = b.vars
    val = lambda x: np.asarray(x.value, dtype=float)  # noqa: E731
    theta = np.zeros((net.n_node, T))
    theta[net.nonref_nodes] = val(v.theta)
    flow = np.asarray(net.bf @ theta) + net.shift_flow[:, None]
    lam = np.asarray(b.balance.dual_value, dtype=float).reshape(net.n_node, T) / dt
    mu = np.zeros((net.n_branch, T))
    if b.flow_rows.size:
        up, lo = (np.asarray(c.dual_value, dtype=float).reshape(-1, T) for c in b.flow_cons)
        mu[b.flow_rows] = (up - lo) / dt
    pmin = np.full((net.n_gen, T), -np.inf)
    pmax = np.full((net.n_gen, T), np.inf)
    if b.par.pmin is not None:
        pmin[b.par.lo_idx] = b.par.pmin.value
    if b.par.pmax is not None:
        pmax[b.par.hi_idx] = b.par.pmax.value
    demand = np.repeat(net.node_fixed_demand[:, None], T, 1)
    if net.n_load:
        demand = demand + net.node_matrix(net.load_node) @ b.par.load.value
    return SolvedState(
        net=net, dt=dt, p=val(v.p), pmin=pmin, pmax=pmax, theta=theta, flow=flow, lam=lam, mu=mu,
        nu=np.zeros((net.n_branch, T)), demand=demand,
        shed=val(v.shed) if v.shed is not None else np.zeros((net.n_node, T)),
        pc=val(v.pc) if v.pc is not None else None, pd=val(v.pd) if v.pd is not None else None,
        e=val(v.e) if v.e is not None else None, voll=m.voll)


def lme_finite_difference(model_factory, node: int, hour: int, eps: float, ef: np.ndarray) -> float:
    """Reference LME (tCO2/MWh): re-solve with +eps MW of demand at ``node`` in ``hour``.

    ``model_factory()`` returns ``(DCOPF, profiles)`` with a ``("load", "p_mw")`` DataFrame
    (time x load index); the first load at ``node`` carries the extra demand.
    """
    m, prof = model_factory()
    load_df = prof[("load", "p_mw")]
    li = int(np.flatnonzero(m.net.load_node == node)[0])
    m.solve(prof)
    e0 = float(ef @ np.asarray(m._built.vars.p.value).sum(axis=1)) * m.dt
    bumped = load_df.copy()
    bumped.iloc[hour, li] += eps
    m.solve({**prof, ("load", "p_mw"): bumped})
    e1 = float(ef @ np.asarray(m._built.vars.p.value).sum(axis=1)) * m.dt
    return (e1 - e0) / (eps * m.dt)


def one_period_profiles(net: object) -> dict:
    return {("load", "p_mw"): pd.DataFrame([net.load.p_mw.to_numpy()], columns=net.load.index)}


STORAGE_EF = np.array([0.85, 0.37, 0.58, 0.0])  # coal (ext_grid), CCGT, OCGT, wind


def storage_net(T: int = 24, carbon_price: float = 0.0) -> tuple[object, dict]:
    """4 buses, meshed, one congested line; linear coal with ramp limits, quadratic CCGT with
    ramps and a minimum output, linear OCGT, wind, a storage unit with losses; every bus has a load.
    ``carbon_price`` ($/t) is added to the linear costs with :data:`STORAGE_EF`."""
    net = pp.create_empty_network(name="four_bus_storage")
    b = [pp.create_bus(net, 110) for _ in range(4)]
    for f, t, lim in ((0, 1, 1e4), (1, 2, 1e4), (2, 3, 1e4), (3, 0, 1e4), (0, 2, 120.0)):
        pp.create_line_from_parameters(net, b[f], b[t], 10 + 3 * f + t, r_ohm_per_km=0.01, x_ohm_per_km=0.4,
                                       c_nf_per_km=0, max_i_ka=rating_to_i_ka(lim, 110), max_loading_percent=100)
    pp.create_ext_grid(net, b[0], min_p_mw=0, max_p_mw=260, controllable=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=20, max_p_mw=220, controllable=True)
    pp.create_gen(net, b[2], p_mw=0, min_p_mw=0, max_p_mw=150, controllable=True)
    pp.create_sgen(net, b[3], p_mw=120)
    net.ext_grid["ramp_up_mw_per_h"] = 30.0
    net.ext_grid["ramp_down_mw_per_h"] = 30.0
    net.gen["ramp_up_mw_per_h"] = [60.0, np.nan]
    net.gen["ramp_down_mw_per_h"] = [60.0, np.nan]
    adder = carbon_price * STORAGE_EF
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=18.0 + adder[0])
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=30.0 + adder[1], cp2_eur_per_mw2=0.04)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=65.0 + adder[2])
    for bb, p in ((0, 5.0), (1, 150.0), (2, 200.0), (3, 110.0)):
        pp.create_load(net, b[bb], p_mw=p)
    pp.create_storage(net, b[2], p_mw=0, max_e_mwh=150, soc_percent=40, min_p_mw=-40, max_p_mw=40,
                      controllable=True)
    net.storage["charge_efficiency"] = 0.92
    net.storage["discharge_efficiency"] = 0.92
    hours = np.arange(T)
    rng = np.random.default_rng(3)
    shape = 0.75 + 0.3 * np.sin((hours - 8) / 24 * 2 * np.pi) + rng.uniform(-0.05, 0.05, T)
    loads = pd.DataFrame(np.outer(shape, net.load.p_mw.to_numpy()), columns=net.load.index)
    wind = pd.DataFrame(120 * (0.5 + 0.4 * np.cos(hours / 24 * 2 * np.pi + 1.0))[:, None], columns=net.sgen.index)
    return net, {("load", "p_mw"): loads, ("sgen", "p_mw"): wind}


#: tighter than nodalopt's defaults: at 1e-9 Clarabel leaves one ramp-coupled unit 1e-4 MW off its
#: bound, which blurs the finite-difference reference by ~2e-3 tCO2/MWh near that kink
TIGHT = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 1000}


@functools.lru_cache(maxsize=1)
def storage_model() -> tuple[nodalopt.DCOPF, dict]:
    net, prof = storage_net(24)
    return nodalopt.DCOPF(net, hours=24, solver_options=TIGHT), prof


@functools.lru_cache(maxsize=1)
def case118_model() -> tuple[nodalopt.DCOPF, dict]:
    net = nodalopt.load_case("case118_200mva")
    return nodalopt.DCOPF(net), one_period_profiles(net)


def solved(factory) -> tuple[nodalopt.DCOPF, SolvedState]:
    m, prof = factory()
    ds = m.solve(prof)
    return m, state_from_model(m, ds)


# ----------------------------------------------------------------- factors
def test_factor_csv_copies_identical_and_sourced():
    a = (ROOT / "data" / "emission_factors.csv").read_bytes()
    b = (ROOT / "nodalopt" / "data" / "emission_factors.csv").read_bytes()
    assert a == b
    assert b"IPCC" in a and b"Table 2.2" in a and b"efficienc" in a


def test_factor_table_values():
    t = factor_table()
    assert set(t) >= {"coal", "lignite", "gas_ccgt", "gas_ocgt", "oil", "biomass", "nuclear", "hydro", "wind",
                      "solar"}
    # IPCC default fuel factor (kg/TJ) * 3.6e-3 TJ/MWh / efficiency
    assert t["coal"] == pytest.approx(94.6 * 0.0036 / 0.40, abs=1e-4)
    assert t["gas_ccgt"] == pytest.approx(56.1 * 0.0036 / 0.55, abs=1e-4)
    assert t["lignite"] > t["coal"] > t["oil"] > t["gas_ocgt"] > t["gas_ccgt"] > 0
    assert t["biomass"] == t["nuclear"] == t["hydro"] == t["wind"] == t["solar"] == 0.0


def test_factors_from_fuel_aliases_and_errors():
    t = factor_table()
    got = factors_from_fuel(np.array(["Gas", "hard coal", "PV", "lignite", "gas-ocgt"]), "net.gen 'fuel'")
    np.testing.assert_allclose(got, [t["gas_ccgt"], t["coal"], 0.0, t["lignite"], t["gas_ocgt"]])
    with pytest.raises(nodalopt.InputError, match=r"net\.gen 'fuel'.*unobtainium.*gas_ccgt"):
        factors_from_fuel(np.array(["coal", "unobtainium"]), "net.gen 'fuel'")


def test_synthetic_factors_rank_rule():
    t = factor_table()
    c1 = np.array([10.0, 20, 30, 40, 50, 60, 0.0, 20.0, 5.0])
    kinds = np.array([DISPATCHABLE] * 6 + [RENEWABLE, DISPATCHABLE, 2])
    ef = synthetic_factors(c1, kinds)
    np.testing.assert_allclose(ef, [t["coal"], t["coal"], t["gas_ccgt"], t["gas_ccgt"], t["gas_ocgt"],
                                    t["gas_ocgt"], 0.0, t["coal"], 0.0])
    np.testing.assert_array_equal(ef, synthetic_factors(c1, kinds))  # deterministic


# ----------------------------------------------------------- emission flow
def chain_net() -> object:
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(4)]
    for f, t in ((0, 1), (2, 1), (1, 3)):  # line 2-1 is drawn against the power flow
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                       max_i_ka=1.0)
    pp.create_ext_grid(net, b[0], min_p_mw=0, max_p_mw=500)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=0, max_p_mw=500)
    pp.create_sgen(net, b[3], p_mw=40)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20)
    pp.create_load(net, b[1], p_mw=70)
    pp.create_load(net, b[2], p_mw=120)
    return net


def _flows(arr, pairs: dict[tuple[int, int], float]) -> np.ndarray:
    """Branch flows (n_branch, 1) from {(from node, to node): MW of power moving that way}."""
    out = np.zeros((arr.n_branch, 1))
    for (a, b), mw in pairs.items():
        k = np.flatnonzero(((arr.br_f == a) & (arr.br_t == b)) | ((arr.br_f == b) & (arr.br_t == a)))[0]
        out[k, 0] = mw if arr.br_f[k] == a else -mw
    return out


def test_emission_flow_radial_chain_by_hand():
    arr = compile_network(chain_net())
    node = lambda bus: int(arr.bus_node[bus])  # noqa: E731
    n0, n1, n2, n3 = (node(i) for i in range(4))
    # coal 100 MW at bus 0 (1.0 t/MWh), gas 50 MW at bus 1 (0.4), wind 40 MW at bus 3 (0)
    p = np.array([[100.0], [50.0], [40.0]])
    ef = np.array([1.0, 0.4, 0.0])
    flow = _flows(arr, {(n0, n1): 100.0, (n1, n2): 120.0, (n3, n1): 40.0})
    w, fc = carbon_emission_flow(arr, flow, p, ef, None)
    mix = (100 * 1.0 + 50 * 0.4) / 190  # bus 1 mixes 100 coal + 50 gas + 40 wind
    np.testing.assert_allclose(w[[n0, n1, n2, n3], 0], [1.0, mix, mix, 0.0], atol=1e-12)
    # branch carbon: upstream intensity x flow, signed like the flow
    np.testing.assert_allclose(fc, _flows(arr, {(n0, n1): 100.0, (n1, n2): 120.0 * mix, (n3, n1): 0.0}),
                               atol=1e-12)
    # a negative injection is consumption: bus 3 now draws 10 MW from bus 1 and takes its mix
    flow = _flows(arr, {(n0, n1): 100.0, (n1, n2): 120.0, (n1, n3): 10.0})
    w, fc = carbon_emission_flow(arr, flow, np.array([[100.0], [50.0], [-10.0]]), ef, None)
    np.testing.assert_allclose(w[[n0, n1, n2, n3], 0], [1.0, 0.8, 0.8, 0.8], atol=1e-12)
    consumed = np.array([0.0, 150 - 120 - 10, 120, 10])  # loads at buses 1, 2 and the negative unit
    assert consumed @ w[[n0, n1, n2, n3], 0] == pytest.approx(100 * 1.0 + 50 * 0.4, rel=1e-12)


def _consumption(state: SolvedState) -> np.ndarray:
    """Power consumed at each node (N, T): demand - shed + storage charging + negative injections."""
    net = state.net
    c = state.demand - state.shed + net.node_matrix(net.gen_node) @ np.maximum(-state.p, 0.0)
    if state.pc is not None:
        c = c + net.node_matrix(net.st_node) @ state.pc
    return c


@pytest.mark.parametrize("factory", [storage_model, case118_model], ids=["storage_24h", "case118"])
def test_emission_flow_conserves_carbon(factory):
    m, st = solved(factory)
    net = m.net
    ef = STORAGE_EF if factory is storage_model else synthetic_factors(net.gen_c1, net.gen_kind)
    w, fc = carbon_emission_flow(net, st.flow, st.p, ef, st.pd)
    emitted = ef @ np.maximum(st.p, 0.0)  # (T,)
    consumed = (_consumption(st) * w).sum(axis=0)
    np.testing.assert_allclose(consumed, emitted, rtol=1e-6)
    # nodal carbon balance: generation + carbon in = carbon out + consumption x intensity
    gen_c = np.asarray(net.node_matrix(net.gen_node) @ (ef[:, None] * np.maximum(st.p, 0.0)))
    net_out = np.asarray(net.incidence.T @ fc)  # carbon leaving each node on branches
    np.testing.assert_allclose(gen_c - net_out, _consumption(st) * w, atol=1e-6 * max(1.0, emitted.max()))
    assert (w >= -1e-12).all() and (w <= ef.max() + 1e-9).all()
    if factory is storage_model:  # bus 3 hosts the wind farm only: zero carbon when nothing flows in
        n3 = int(net.bus_node[3])
        into = np.where(net.br_t[:, None] == n3, st.flow, 0.0) - np.where(net.br_f[:, None] == n3, st.flow, 0.0)
        fed_by_wind_only = np.maximum(into, 0.0).sum(axis=0) <= 1e-9
        assert fed_by_wind_only.any() and np.all(w[n3, fed_by_wind_only] == 0.0)
        assert np.all(w[n3, ~fed_by_wind_only] > 0.0)


# ---------------------------------------------------------------- LME
def test_lme_matches_finite_differences_storage_24h():
    m, st = solved(storage_model)
    lme, unique = locational_marginal_emissions(st, STORAGE_EF, c1=m._built.par.c1.value)
    assert lme.shape == unique.shape == (m.net.n_node, 24)
    # the case exercises what the LME must see through: congestion, ramps, storage at bounds
    assert (np.abs(st.flow) >= m.net.br_rate[:, None] - 1e-3).any()
    assert (np.abs(np.diff(st.p[0])) >= 30.0 - 1e-3).any()
    assert (st.e <= 1e-3).any() and (st.e >= 150 - 1e-3).any()
    assert unique.all()
    fd = np.array([[lme_finite_difference(storage_model, n, t, 1e-2, STORAGE_EF) for t in range(24)]
                   for n in range(m.net.n_node)])
    err = np.abs(fd - lme)
    assert err.max() < 1e-3, f"max |LME - FD| = {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"
    # LMEs differ across hours (storage and ramps couple them), so the test is not trivial
    assert np.ptp(lme) > 0.1


def test_lme_matches_finite_differences_case118():
    m, st = solved(case118_model)
    ef = np.random.default_rng(118).uniform(0.0, 1.0, m.net.n_gen)
    lme, unique = locational_marginal_emissions(st, ef, c1=m._built.par.c1.value)
    nodes = np.unique(m.net.load_node)[::6]
    checked = 0
    for n in nodes:
        if not unique[n, 0]:
            continue
        fd = lme_finite_difference(case118_model, int(n), 0, 1e-2, ef)
        assert abs(fd - lme[n, 0]) < 1e-3, (n, fd, lme[n, 0])
        checked += 1
    assert checked >= 12
    # bus 8 sits between two binding branches in series: its LME is one-sided
    n8 = int(m.net.bus_node[np.flatnonzero(m.net.bus_ids == 8)[0]])
    assert not unique[n8, 0] and unique.sum() == unique.size - 1


def two_unit_net(load: float, cA: float, cB: float, c2A: float = 0.0, c2B: float = 0.0,
                 pmaxA: float = 100.0) -> object:
    net = pp.create_empty_network()
    b0, b1 = pp.create_bus(net, 110), pp.create_bus(net, 110)
    pp.create_line_from_parameters(net, b0, b1, 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                   max_i_ka=rating_to_i_ka(1e4, 110), max_loading_percent=100)
    pp.create_gen(net, b0, p_mw=0, min_p_mw=0, max_p_mw=pmaxA, controllable=True, slack=True)
    pp.create_gen(net, b0, p_mw=0, min_p_mw=0, max_p_mw=300, controllable=True)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=cA, cp2_eur_per_mw2=c2A)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=cB, cp2_eur_per_mw2=c2B)
    pp.create_load(net, b1, p_mw=load)
    return net


@pytest.mark.parametrize("case, args, expect_unique", [
    ("regular", (150.0, 10.0, 20.0), True),
    ("unit at pmax with zero reduced cost (LP)", (100.0, 10.0, 20.0), False),
    ("equal linear costs, different factors", (150.0, 20.0, 20.0), False),
    ("quadratic unit exactly at pmax, zero multiplier", (70.0, 10.0, 0.0, 0.1, 0.5, 50.0), False),
])
def test_lme_degenerate_cases_are_flagged(case, args, expect_unique):
    net = two_unit_net(*args)
    m = nodalopt.DCOPF(net)
    prof = one_period_profiles(net)
    st = state_from_model(m, m.solve(prof))
    ef = np.array([1.0, 0.2])
    lme, unique = locational_marginal_emissions(st, ef, c1=m._built.par.c1.value)
    assert unique.all() == expect_unique and unique.any() == expect_unique, case
    factory = lambda: (m, prof)  # noqa: E731
    node = int(m.net.load_node[0])
    up = lme_finite_difference(factory, node, 0, 1e-2, ef)
    down = lme_finite_difference(factory, node, 0, -1e-2, ef)
    if expect_unique:
        assert up == pytest.approx(lme[node, 0], abs=1e-4) and down == pytest.approx(lme[node, 0], abs=1e-4)
    elif "equal" not in case:  # a kink: the one-sided derivatives differ
        assert abs(up - down) > 0.1


def three_bus_misc(kind: str) -> object:
    """Triangle with a congested line 0-1.  ``pwl``: unit 0 has a piecewise-linear cost and sits on a
    breakpoint, unit 1 (flat 28 $/MWh) is marginal.  ``flex``: quadratic units and a controllable load;
    ``shed``: as ``flex`` with too little generation (load shedding at VOLL)."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(3)]
    for f, t, lim in ((0, 1, 80.0), (1, 2, 1e4), (0, 2, 1e4)):
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                       max_i_ka=rating_to_i_ka(lim, 110), max_loading_percent=100)
    pp.create_gen(net, b[0], p_mw=0, min_p_mw=0, max_p_mw=110 if kind == "shed" else 200, controllable=True,
                  slack=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=0, max_p_mw=150 if kind == "pwl" else 40, controllable=True)
    for bus, mw in ((1, 90.0), (2, 75.0), (0, 10.0)):
        pp.create_load(net, b[bus], p_mw=mw)
    if kind == "pwl":  # pandapower does not mix pwl and polynomial costs
        pp.create_pwl_cost(net, 0, "gen", [[0, 60, 10.0], [60, 130, 22.0], [130, 200, 35.0]])
        pp.create_pwl_cost(net, 1, "gen", [[0, 150, 28.0]])
    else:
        pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20.0, cp2_eur_per_mw2=0.05)
        pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=28.0, cp2_eur_per_mw2=0.02)
        li = pp.create_load(net, b[2], p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=40.0)
        pp.create_poly_cost(net, li, "load", cp1_eur_per_mw=-45.0)
    return net


@pytest.mark.parametrize("kind, expect", [("pwl", 0.4), ("flex", 0.9), ("shed", 0.0)])
def test_lme_pwl_costs_flexible_load_and_shedding(kind, expect):
    net = three_bus_misc(kind)
    m = nodalopt.DCOPF(net, voll=500.0 if kind == "shed" else None)
    fixed = net.load.index[:3]
    prof = {("load", "p_mw"): pd.DataFrame([net.load.p_mw[fixed].to_numpy()], columns=fixed)}
    st = state_from_model(m, m.solve(prof))
    ef = np.array([0.9, 0.4, 0.0])[:m.net.n_gen]
    lme, unique = locational_marginal_emissions(st, ef, c1=m._built.par.c1.value)
    assert unique.all()
    np.testing.assert_allclose(lme, expect, atol=1e-9)
    factory = lambda: (m, prof)  # noqa: E731
    for n in range(m.net.n_node):
        for eps in (1e-2, -1e-2):
            assert lme_finite_difference(factory, n, 0, eps, ef) == pytest.approx(lme[n, 0], abs=1e-4)
    if kind == "shed":
        assert st.shed.sum() > 1.0


def test_lme_with_binding_co2_cap():
    """A CO2 cap binding at E* with dual pi gives the same dispatch as a carbon price pi.  Solve with
    the price in the costs, then describe it to the LME as base costs + a binding cap row: the cap's
    multiplier is recomputed (= pi), emissions are pinned and the LME is 0 where unique."""
    price = 40.0
    net, prof = storage_net(24, carbon_price=price)
    m = nodalopt.DCOPF(net, hours=24)
    st = state_from_model(m, m.solve(prof))
    c1_eff = m._built.par.c1.value
    lme_price, u_price = locational_marginal_emissions(st, STORAGE_EF, c1=c1_eff)
    assert u_price.any() and np.abs(lme_price[u_price]).max() > 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stationary with the cap row: no warning about c1
        lme, unique = locational_marginal_emissions(st, STORAGE_EF, c1=c1_eff - price * STORAGE_EF[:, None],
                                                    co2_cap=True)
    assert unique.mean() > 0.5
    np.testing.assert_allclose(lme[unique], 0.0, atol=1e-9)
    # given as the cap level: binding at the solved emissions, not binding above them
    e_star = float(STORAGE_EF @ st.p.sum(axis=1)) * st.dt
    lme_c, u_c = locational_marginal_emissions(st, STORAGE_EF, c1=c1_eff - price * STORAGE_EF[:, None],
                                               co2_cap=e_star)
    np.testing.assert_array_equal(u_c, unique)
    lme_free, _ = locational_marginal_emissions(st, STORAGE_EF, c1=c1_eff, co2_cap=1.01 * e_star)
    np.testing.assert_allclose(lme_free, lme_price)
    # a cap at the solved emissions with a zero multiplier is weakly active: every LME is one-sided
    _, u_weak = locational_marginal_emissions(st, STORAGE_EF, c1=c1_eff, co2_cap=e_star)
    assert not u_weak.any()


def test_lme_rejects_bad_factors():
    m, st = solved(storage_model)
    with pytest.raises(nodalopt.InputError):
        locational_marginal_emissions(st, np.ones(2))
