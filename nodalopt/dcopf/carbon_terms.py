"""Carbon in the dispatch: emission factors, carbon price adders and the CO2 cap family."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np

from ..errors import InputError
from ..network.arrays import NetworkArrays


def resolve_factors(net: NetworkArrays, emission_factors: Any, required: bool) -> np.ndarray | None:
    """Emission factor per injector (tCO2/MWh).

    ``emission_factors``: ``"network"`` (the ``co2_t_per_mwh`` column, else the ``fuel``
    column through ``data/emission_factors.csv``), ``"synthetic"`` (a documented,
    deterministic assignment by cost rank, see :func:`nodalopt.carbon.synthetic_factors`),
    or an array / mapping ``{gen name: factor}``.  Returns None when factors are
    unknown and not ``required``.
    """
    G = net.n_gen
    if isinstance(emission_factors, str):
        if emission_factors == "synthetic":
            from .. import carbon  # factor tables live with the carbon kernels

            return np.asarray(carbon.synthetic_factors(net.gen_c1, net.gen_kind), dtype=float)
        if emission_factors != "network":
            raise InputError(f"emission_factors={emission_factors!r}: use 'network', 'synthetic', an array "
                             "or a mapping {generator name: tCO2/MWh}.")
        ef = net.co2_factors.copy()
        fuel = np.asarray(net.gen_fuel, dtype=object) if net.gen_fuel.size == G else np.full(G, "", object)
        use_fuel = np.isnan(ef) & (fuel != "")
        if use_fuel.any():
            from .. import carbon

            try:
                ef[use_fuel] = carbon.factors_from_fuel(fuel[use_fuel].astype(str), "fuel column")
            except InputError:
                if not required:  # an unknown fuel only matters when carbon is asked for
                    return None
                raise
    elif isinstance(emission_factors, dict):
        ef = np.full(G, np.nan)
        index = net.names_index["gen"]
        unknown = [k for k in emission_factors if str(k) not in index]
        if unknown:
            raise InputError(f"emission_factors names unknown generators {unknown[:5]}; names look like "
                             f"{list(index)[:3]}.")
        for k, val in emission_factors.items():
            ef[index[str(k)]] = float(val)
    else:
        ef = np.asarray(emission_factors, dtype=float).ravel()
        if ef.size != G:
            raise InputError(f"emission_factors has {ef.size} values for {G} generators.")
    missing = np.isnan(ef)
    if missing.any():
        if not required:
            return None
        names = np.asarray(net.gen_names)[missing][:8].tolist()
        raise InputError(f"no emission factor for {names} (+{int(missing.sum()) - len(names)} more): add a "
                         "'co2_t_per_mwh' or 'fuel' column to the generator tables, pass "
                         "emission_factors={name: tCO2/MWh}, or emission_factors='synthetic'.")
    if (ef < 0).any() or not np.isfinite(ef).all():
        raise InputError("emission factors must be finite and non-negative.")
    return ef


def lowest_emissions(model: Any, series: Any) -> float | None:
    """The lowest total emissions (tCO2 over the horizon) of any feasible dispatch of ``model``.

    Solves ``min dt * sum_t sum_g ef_g max(p_gt, 0)`` subject to the model's own constraints
    (network, generator limits, storage, ramps; the CO2 cap left out) for the periods in
    ``series``.  Returns None when that problem does not solve to optimality.
    """
    if model.ef is None:
        return None
    b = model._build(shed=False, elastic=False, T=model.T)
    model._set_parameters(b, series)
    cap = b.cap
    cons = [c for c in b.problem.constraints if c is not cap]
    emis = model.dt * cp.sum(emissions_expr(b.vars.p, model.ef, model.ef > 0))
    prob = cp.Problem(cp.Minimize(emis), cons)
    try:
        prob.solve(solver=model.solver, ignore_dpp=True)
    except cp.error.SolverError:
        return None
    if prob.status != cp.OPTIMAL or prob.value is None:
        return None
    return float(prob.value)


def carbon_price_series(carbon_price: Any, T: int) -> np.ndarray | None:
    """Carbon price per period in $/tCO2 (scalar or one value per period)."""
    if carbon_price is None:
        return None
    arr = np.asarray(carbon_price, dtype=float)
    if arr.ndim == 0:
        arr = np.full(T, float(arr))
    if arr.shape != (T,) or not np.isfinite(arr).all() or (arr < 0).any():
        raise InputError(f"carbon_price must be a non-negative number or {T} values ($/tCO2); got {carbon_price!r}.")
    return arr


def can_absorb(net: NetworkArrays, ef: np.ndarray) -> np.ndarray:
    """(G,) bool: emitting injectors whose output may be negative (``min_p_mw`` < 0 or unbounded below).

    A unit emits only when it generates: its emissions are ``ef * max(p, 0)``.  For these units
    the carbon price and the CO2 cap act on ``max(p, 0)`` (a convex term with one auxiliary
    variable per unit and period); for all others ``max(p, 0) = p`` and they stay linear.
    """
    return (np.asarray(ef) > 0) & ~(net.gen_pmin >= 0)


def check_absorb(pmin: np.ndarray, ef: np.ndarray, absorb: np.ndarray, names: np.ndarray) -> None:
    """Refuse period limits that let an emitting unit outside ``absorb`` go negative.

    The model was built with a linear carbon term for those units (their base ``min_p_mw``
    is >= 0); a profile that lowers the limit below 0 would credit absorbed power with
    negative emissions.
    """
    bad = (np.asarray(ef) > 0) & ~absorb & (np.asarray(pmin) < 0).any(axis=1)
    if bad.any():
        raise InputError(f"min_p_mw profile below 0 for emitting units {names[bad][:5].tolist()} whose base "
                         "min_p_mw is >= 0: with a carbon price or CO2 cap, give them a negative base "
                         "min_p_mw so that the model counts only their positive output as emissions.")


def emissions_expr(p: cp.Expression, ef: np.ndarray, absorb: np.ndarray) -> cp.Expression:
    """(T,) tCO2/h: ``sum_g ef_g max(p_gt, 0)``; ``max`` only for the ``absorb`` units."""
    lin = np.where(absorb, 0.0, ef)
    expr: cp.Expression = lin @ p
    idx = np.flatnonzero(absorb)
    if idx.size:
        expr = expr + ef[idx] @ cp.pos(p[idx])
    return expr


def co2_cap(p: cp.Expression, ef: np.ndarray, dt: float, cap: float,
            absorb: np.ndarray | None = None) -> cp.Constraint:
    """dt * sum_t sum_g ef_g max(p_gt, 0) <= cap (tCO2 over the horizon); its dual is $/tCO2."""
    mask = np.zeros(ef.size, bool) if absorb is None else absorb
    return dt * cp.sum(emissions_expr(p, ef, mask)) <= cap


def absorb_carbon_cost(p: cp.Expression, ef: np.ndarray, absorb: np.ndarray, price: np.ndarray,
                       dt: float) -> cp.Expression | None:
    """$ over the horizon: the carbon price on the positive output of the ``absorb`` units.

    The other units carry the price in their linear cost ``c1`` (see ``DCOPF._c1``).
    """
    idx = np.flatnonzero(absorb)
    if not idx.size or not (price > 0).any():
        return None
    w = ef[idx][:, None] * price[None, :]
    return dt * cp.sum(cp.multiply(w, cp.pos(p[idx])))


def consumption(net: NetworkArrays, state: Any) -> np.ndarray:
    """(N, T) MW consumed at each node at its carbon intensity.

    Demand served (a net negative fixed demand is a zero-emission source, not consumption),
    storage charging and power absorbed by injectors with negative output (an ext_grid
    importing from the grid, a controllable load).  ``sum(consumption * intensity)`` equals the
    system emissions ``sum(ef * max(p, 0))`` in every period.
    """
    c = np.maximum(np.asarray(state.demand) - np.asarray(state.shed), 0.0)
    c = c + np.asarray(net.node_matrix(net.gen_node) @ np.maximum(-np.asarray(state.p), 0.0))
    if state.pc is not None and net.n_storage:
        c = c + np.asarray(net.node_matrix(net.st_node) @ np.asarray(state.pc))
    return c


def add_carbon(ds: Any, state: Any, ef: np.ndarray, price: np.ndarray, cap_price: float | None,
               c1: np.ndarray) -> Any:
    """Add emission tensors and the carbon price component to a result Dataset.

    ``price`` is the effective carbon price per period ($/tCO2: the given carbon
    price plus the CO2-cap dual); ``c1`` the linear costs used in the solve (G, T).
    ``lmp_carbon = price * lme``; the energy and congestion components are re-expressed net of carbon so that
    ``lmp = lmp_energy + lmp_congestion + lmp_carbon`` still holds.
    """
    import xarray as xr

    from .. import carbon

    net = state.net
    bn = net.bus_node
    emissions = ef[:, None] * np.maximum(state.p, 0.0)  # tCO2/h: a unit emits only when it generates
    ds["emissions"] = xr.DataArray(emissions.T, dims=("time", "gen"), attrs={
        "units": "tCO2/h", "long_name": "direct emissions of each unit (emission factor x positive output)"})
    dis = state.pd if state.pd is not None else None
    intensity, flow_c = carbon.carbon_emission_flow(net, state.flow, state.p, ef, dis,
                                                    demand=np.asarray(state.demand) - np.asarray(state.shed))
    ds["carbon_intensity"] = xr.DataArray(intensity[bn].T, dims=("time", "bus"), attrs={
        "units": "tCO2/MWh", "long_name": "average carbon intensity of the power consumed at the bus "
        "(carbon emission flow, proportional sharing)"})
    consumed = consumption(net, state)
    ds["consumption"] = xr.DataArray(consumed[bn].T, dims=("time", "bus"), attrs={
        "units": "MW", "long_name": "power consumed at the bus at its carbon intensity: demand served, storage "
        "charging and power absorbed by injectors with negative output"})
    ds["flow_carbon"] = xr.DataArray(flow_c.T, dims=("time", "branch"), attrs={
        "units": "tCO2/h", "long_name": "carbon emission flow carried by the branch"})
    # with a binding CO2 cap, emissions are pinned at the cap (true derivative 0); the LME reported
    # is that of the equivalent carbon-price dispatch (same dispatch, cap dual as carbon price)
    # (units that may absorb carry the price on max(p, 0) only, outside ``c1``: their marginal cost at
    # the solved point includes it where they generate)
    # (1e-4 MW: the LME's activity tolerance; a unit within it of 0 sits on the kink)
    absorb = can_absorb(net, ef)
    c1_eq = c1 + ef[:, None] * np.where(absorb[:, None] & (np.asarray(state.p) > 1e-4), price[None, :],
                                        np.where(absorb[:, None], 0.0, cap_price or 0.0))
    kink = np.where(absorb[:, None], ef[:, None] * price[None, :], 0.0)
    if np.any(ef):
        lme, unique = carbon.locational_marginal_emissions(state, ef, c1=c1_eq, kink_cost=kink)
    else:  # no unit emits (e.g. carriers without co2_emissions, PyPSA's default 0): every rate is exactly 0
        lme, unique = np.zeros((net.n_node, emissions.shape[1])), np.ones((net.n_node, emissions.shape[1]), bool)
    ds["lme"] = xr.DataArray(lme[bn].T, dims=("time", "bus"), attrs={
        "units": "tCO2/MWh", "long_name": "locational marginal emissions: change in system emissions per "
        "extra MWh of demand at the bus"})
    ds["lme_unique"] = xr.DataArray(unique[bn].T, dims=("time", "bus"), attrs={
        "units": "1", "long_name": "False where the marginal emission rate is not unique (degenerate)"})
    # carbon component and the remaining parts, netted so that the sum is unchanged
    carbon_c = price[None, :] * lme  # (N, T)
    ref_nodes = net.ref_of_node
    energy = ds.lmp_energy.values - carbon_c[ref_nodes[bn]].T
    congestion = ds.lmp_congestion.values - (carbon_c[bn] - carbon_c[ref_nodes[bn]]).T
    ds["lmp_energy"] = ds.lmp_energy.copy(data=energy)
    ds["lmp_congestion"] = ds.lmp_congestion.copy(data=congestion)
    ds["lmp_carbon"] = xr.DataArray(carbon_c[bn].T, dims=("time", "bus"), attrs={
        "units": "$/MWh", "long_name": "carbon component: carbon price x locational marginal emissions"})
    resid = float(np.nanmax(np.abs(ds.lmp.values - energy - congestion - carbon_c[bn].T), initial=0.0))
    if resid > 1e-6 * max(1.0, float(np.nanmax(np.abs(ds.lmp.values), initial=1.0))):
        from ..errors import SolverError

        raise SolverError(f"LMP components with carbon do not add up (max residual {resid:.3g} $/MWh).",
                          status="inaccurate_duals")
    ds["carbon_price"] = xr.DataArray(price, dims=("time",), attrs={
        "units": "$/tCO2", "long_name": "effective carbon price (given price + CO2-cap dual)"})
    ds.attrs["total_emissions_t"] = float(emissions.sum() * state.dt)
    if cap_price is not None:
        ds.attrs["co2_cap_price"] = cap_price
    return ds
