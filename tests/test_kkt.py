"""Optimality checks that do not trust the solver: strong duality at the published
prices, complementary slackness, generator stationarity, and finite differences."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest
from helpers import lagrangian_dual, three_bus
from test_rundcopp import congest

import nodalopt


@pytest.fixture(scope="module")
def case118_congested():
    net = nodalopt.load_case("case118")
    congest(net, 4, 0.8)
    return net


def _cases(pglib_available: bool):
    yield "three_bus", three_bus()
    net = nodalopt.load_case("case118")
    congest(net, 4, 0.8)
    yield "case118", net
    net = nodalopt.load_case("case30")
    congest(net, 3, 0.9)
    yield "case30", net


@pytest.mark.parametrize("name", ["three_bus", "case118", "case30"])
def test_strong_duality_and_complementarity(name):
    net = dict(_cases(True))[name]
    arrays = nodalopt.compile_network(net)
    ds = nodalopt.solve(arrays)
    obj = ds.attrs["objective"]
    # 1. strong duality: the dual function at the published prices equals the optimal cost
    assert lagrangian_dual(arrays, ds) == pytest.approx(obj, rel=1e-6)
    # 2. complementary slackness on branch limits, with the right sign
    mu, flow = ds.branch_mu.values, ds.flow.values
    rate = np.broadcast_to(arrays.br_rate, flow.shape)
    slack = np.where(np.isfinite(rate), rate - np.abs(flow), np.inf)
    assert np.all(slack >= -1e-5)  # primal feasibility
    rated = np.isfinite(rate)
    assert np.all(np.abs(mu[rated]) * slack[rated] <= 1e-5)  # complementarity: mu * slack = 0
    assert np.all(mu[~rated] == 0)
    binding = np.abs(mu) > 1e-4
    assert binding.any()
    assert np.all(slack[binding] <= 1e-4)
    assert np.all(np.sign(mu[binding]) == np.sign(flow[binding]))
    # 3. generator stationarity: interior units are priced at their marginal cost
    p = ds.p_gen.values[0]
    lam = np.zeros(arrays.n_node)
    lam[arrays.bus_node] = ds.lmp.values[0]
    mc = arrays.gen_c1 + 2 * arrays.gen_c2 * p
    lam_g = lam[arrays.gen_node]
    tol = 1e-3  # $/MWh; interior-point dispatch of flat quadratic units is accurate to ~1e-2 MW
    at_max = p >= arrays.gen_pmax - 1e-3
    at_min = p <= arrays.gen_pmin + 1e-3
    inner = ~at_max & ~at_min
    np.testing.assert_allclose(lam_g[inner], mc[inner], atol=tol)
    assert np.all(lam_g[at_max] >= mc[at_max] - tol)
    assert np.all(lam_g[at_min & ~at_max] <= mc[at_min & ~at_max] + tol)
    # 4. components add up (the runtime check, repeated here)
    np.testing.assert_allclose(ds.lmp, ds.lmp_energy + ds.lmp_congestion, atol=1e-6)


def _objective_with_extra_load(net, bus: int, mw: float) -> float:
    n = copy.deepcopy(net)
    pp.create_load(n, bus, p_mw=mw)
    return nodalopt.solve(n).attrs["objective"]


def test_finite_differences_and_degenerate_bus(case118_congested):
    net = case118_congested
    ds = nodalopt.solve(net)
    eps = 0.5
    obj0 = ds.attrs["objective"]
    for bus in (8, 10, 37, 60, 95):
        up = _objective_with_extra_load(net, bus, eps)
        dn = _objective_with_extra_load(net, bus, -eps)
        right, left = (up - obj0) / eps, (obj0 - dn) / eps
        price = float(ds.lmp.sel(bus=bus).values[0])
        if bool(ds.lmp_unique.sel(bus=bus).values[0]):
            assert (up - dn) / (2 * eps) == pytest.approx(price, abs=0.02)
        else:
            # a degenerate bus: the one-sided derivatives differ and bracket the published price
            assert right - left > 0.05
            assert left - 0.02 <= price <= right + 0.02
    assert not bool(ds.lmp_unique.sel(bus=8).values[0])
