"""Small networks with hand-computed answers, and independent optimality checks."""

from __future__ import annotations

import math

import numpy as np
import pandapower as pp
import xarray as xr

from nodalopt.network.arrays import NetworkArrays


def rating_to_i_ka(mw: float, vn_kv: float) -> float:
    return mw / (math.sqrt(3) * vn_kv)


def two_bus(limit_mw: float = 60.0) -> pp.pandapowerNet:
    """Cheap gen (10 $/MWh, 100 MW) at bus 0, dear gen (30 $/MWh) at bus 1 with 150 MW load."""
    net = pp.create_empty_network(name="two_bus")
    b0, b1 = pp.create_bus(net, 110), pp.create_bus(net, 110)
    pp.create_line_from_parameters(net, b0, b1, 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                   max_i_ka=rating_to_i_ka(limit_mw, 110), max_loading_percent=100)
    pp.create_ext_grid(net, b0, min_p_mw=0, max_p_mw=100, controllable=True)
    pp.create_gen(net, b1, p_mw=0, min_p_mw=0, max_p_mw=200, controllable=True)
    pp.create_load(net, b1, p_mw=150)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=30)
    return net


def three_bus(limit_13: float = 160.0) -> pp.pandapowerNet:
    """Triangle with equal reactances: gen 10 $/MWh at bus 0, gen 20 $/MWh at bus 1, 300 MW at bus 2.

    Line 0-2 limited to ``limit_13`` MW.  By hand: flow_02 = g0/3 + 100, so with
    160 MW the cheap unit is held at 180 MW, the dear one runs 120 MW, and
    LMPs are 10, 20, 30 $/MWh (bus 2 needs -1 MW at bus 0 and +2 MW at bus 1).
    """
    net = pp.create_empty_network(name="three_bus")
    b = [pp.create_bus(net, 110) for _ in range(3)]
    for f, t, lim in ((0, 1, 1e4), (1, 2, 1e4), (0, 2, limit_13)):
        pp.create_line_from_parameters(net, b[f], b[t], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4,
                                       c_nf_per_km=0, max_i_ka=rating_to_i_ka(lim, 110),
                                       max_loading_percent=100)
    pp.create_ext_grid(net, b[0], min_p_mw=0, max_p_mw=500, controllable=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=0, max_p_mw=500, controllable=True)
    pp.create_load(net, b[2], p_mw=300)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20)
    return net


def lagrangian_dual(net: NetworkArrays, ds: xr.Dataset) -> float:
    """Dual function value at the *published* prices, for a problem without
    ramps, storage, pwl costs or angle limits.

    g(lambda, mu) = dt * sum_t [ sum_g min_{pmin<=p<=pmax} (c(p) - lambda_g p)
                    + sum_n lambda_n d_n - sum_l |mu_l| F_l - sum_l mu_l s_l ]
    It equals the optimal cost only if the prices are the true duals (strong duality).
    """
    dt = float(ds.attrs["period_hours"])
    lam_bus = ds.lmp.values  # (T, bus)
    # prices at every model node: buses give their node's price; others have no injection
    lam_node = np.zeros((lam_bus.shape[0], net.n_node))
    lam_node[:, net.bus_node] = lam_bus
    T = lam_bus.shape[0]
    total = 0.0
    lo = np.repeat(net.gen_pmin[None, :], T, 0)
    hi = ds.p_available.values
    lam_g = lam_node[:, net.gen_node]
    c1, c2 = net.gen_c1[None, :], net.gen_c2[None, :]
    # minimiser of c2 p^2 + (c1 - lam) p on [lo, hi]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_star = np.where(c2 > 0, (lam_g - c1) / (2 * c2), np.where(lam_g > c1, hi, lo))
    p_star = np.clip(p_star, lo, hi)
    total += np.sum(c2 * p_star**2 + (c1 - lam_g) * p_star) + net.gen_c0.sum() * T
    demand = ds.demand.values  # served demand per bus (no shedding here)
    total += np.sum(lam_bus * demand)
    node_extra = net.shift_injection  # phase-shift injections sit in the balance like demand
    total += np.sum(lam_node * node_extra[None, :])
    mu = ds.branch_mu.values
    rate = np.where(np.isfinite(net.br_rate), net.br_rate, 0.0)
    total -= np.sum(np.abs(mu) * rate[None, :])
    total += np.sum(mu * net.shift_flow[None, :])
    return dt * total


def pypsa_or_skip():
    """PyPSA with HiGHS (the ``peers`` extra), quiet; skips the test when either is missing."""
    import logging

    import pytest

    pypsa = pytest.importorskip("pypsa")
    pytest.importorskip("highspy")
    logging.getLogger("pypsa").setLevel(logging.ERROR)
    logging.getLogger("linopy").setLevel(logging.ERROR)
    return pypsa
