"""Peer tools solving the same DC-OPF: PyPSA (+HiGHS) and pandapower ``rundcopp``.

PyPSA's ``import_from_pandapower_net`` drops or distorts data (see
``../shared/PEER-NOTES.md``), so :func:`pypsa_from_arrays` rebuilds the PyPSA
network from nodalopt's compiled :class:`~nodalopt.network.arrays.NetworkArrays`
such that both tools solve *the same* optimization problem:

* one PyPSA bus per model node (``v_nom = 1`` kV, so ohms equal per unit on a
  1 MVA base);
* one PyPSA line per branch with ``x = 1 / (base_mva * br_b)``: PyPSA's linear
  power flow then gives ``flow = (theta_f - theta_t) / x = base_mva * br_b *
  (theta_f - theta_t)``, nodalopt's flow in MW; ``s_nom = br_rate`` (unrated
  branches get ``s_nom = inf``: infinite bounds on PyPSA's flow variable);
  branches with ``br_b == 0`` carry no DC flow and are left out (an angle
  limit on such a branch is not mapped); symmetric angle-difference limits
  ``|theta_f - theta_t| <= a`` become a flow limit ``base_mva * |b| * a``
  (the same constraint);
* generators with ``p_nom`` = largest |bound| over the horizon and
  ``p_min_pu``/``p_max_pu`` time series, ``marginal_cost = c1``,
  ``marginal_cost_quadratic = c2`` (PyPSA's objective is ``w * (c1 p + c2
  p^2)``, nodalopt's ``dt * (c1 p + c2 p^2)``: both with ``w = dt``), ramp
  limits as a fraction of ``p_nom`` per snapshot (``ramp * dt / p_nom``; no
  ramp constraint into the first snapshot in either tool);
* storage units with ``p_nom = max(charge, discharge)``, ``p_min_pu =
  -charge/p_nom``, ``p_max_pu = discharge/p_nom``, ``max_hours = e_max /
  p_nom``, efficiencies, ``state_of_charge_initial``, the final state fixed
  with ``state_of_charge_set`` in the last snapshot, and ``e_min`` added as an
  extra constraint;
* fixed loads as ``p_set`` series, fixed node demand (shunts, wards) as extra
  loads.

* phase shifters (``br_shift != 0``; PyPSA's optimization ignores
  ``phase_shift``): the constant part of the flow, ``-base_mva * b * shift``,
  becomes a fixed demand at the from node and a fixed injection at the to
  node, and the thermal limit on the true flow becomes an asymmetric extra
  constraint on PyPSA's line flow.

Constant costs ``c0`` are not part of PyPSA's objective; :func:`pypsa_solve`
adds them back.  Piecewise-linear costs raise ``NotImplementedError``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nodalopt.network.arrays import NetworkArrays

#: p_nom for injectors without a finite bound (e.g. an ext_grid without limits)
BIG_MW = 1.0e5


def _quiet() -> None:
    for name in ("pypsa", "linopy", "highspy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def pypsa_from_arrays(net: NetworkArrays, load_p: np.ndarray, gen_pmin: np.ndarray,
                      gen_pmax: np.ndarray, dt_hours: float = 1.0,
                      snapshots: Any = None) -> Any:
    """Build a PyPSA network that states the same DC-OPF as nodalopt.

    Parameters
    ----------
    net : NetworkArrays
        The compiled network (``nodalopt.compile_network``).
    load_p : array (L, T)
        Fixed load per load element and period, MW.
    gen_pmin, gen_pmax : array (G, T)
        Injector bounds per period, MW (may be infinite; replaced by ``BIG_MW``).
    dt_hours : float
        Period length in hours (snapshot weightings).
    snapshots : index-like, optional
        Snapshot labels (default ``0..T-1``).

    Returns
    -------
    pypsa.Network
        ``n.meta["nodalopt"]`` holds what :func:`pypsa_solve` needs (objective
        constant, storage minimum energy, node names).
    """
    import pypsa

    _quiet()
    if net.pwl_gen.size:
        raise NotImplementedError("piecewise-linear costs are not mapped to PyPSA.")
    load_p = np.asarray(load_p, float).reshape(net.n_load, -1)
    T = load_p.shape[1] if net.n_load else np.asarray(gen_pmax).reshape(net.n_gen, -1).shape[1]
    gen_pmin = np.asarray(gen_pmin, float).reshape(net.n_gen, T)
    gen_pmax = np.asarray(gen_pmax, float).reshape(net.n_gen, T)
    sns = pd.Index(range(T)) if snapshots is None else pd.Index(snapshots)
    if len(sns) != T:
        raise ValueError(f"{len(sns)} snapshots for {T} periods.")

    n = pypsa.Network()
    n.set_snapshots(sns)
    n.snapshot_weightings.loc[:, :] = dt_hours
    nodes = np.array([f"n{i}" for i in range(net.n_node)])
    n.add("Carrier", "AC")
    n.add("Bus", nodes.tolist(), v_nom=1.0, carrier="AC")

    # ------------------------------------------------------------ branches
    b = net.br_b
    keep = b != 0
    rate = net.br_rate.copy()
    ang = np.isfinite(net.br_angmin) | np.isfinite(net.br_angmax)
    if ang.any():
        amin, amax = net.br_angmin[ang], net.br_angmax[ang]
        if not np.allclose(-amin, amax):
            raise NotImplementedError("asymmetric angle-difference limits are not mapped to PyPSA.")
        rate[ang] = np.minimum(rate[ang], net.base_mva * np.abs(b[ang]) * amax)
    idx = np.flatnonzero(keep)
    names = np.array([f"br{i}" for i in idx])
    # phase shifters: flow = base*b*(dtheta - shift) = flow' + sf with sf = -base*b*shift
    # constant; PyPSA's KVL has no shift, so its line carries flow' and the constant
    # part becomes a demand sf at the from node and -sf at the to node; the limit
    # |flow' + sf| <= rate is added as an extra (asymmetric) constraint.
    sf = (-net.base_mva * b * net.br_shift)[idx]
    shifted = sf != 0
    rated = np.isfinite(rate[idx])
    plain = rated & ~shifted
    n.add("Line", names.tolist(), bus0=nodes[net.br_f[idx]], bus1=nodes[net.br_t[idx]],
          x=1.0 / (net.base_mva * b[idx]), r=0.0, carrier="AC",
          s_nom=np.where(plain, rate[idx], UNLIMITED), s_nom_extendable=False)
    shift_demand = np.zeros(net.n_node)
    np.add.at(shift_demand, net.br_f[idx][shifted], sf[shifted])
    np.add.at(shift_demand, net.br_t[idx][shifted], -sf[shifted])
    sr = shifted & rated

    # ----------------------------------------------------------- injectors
    G = net.n_gen
    if G:
        lo = np.where(np.isfinite(gen_pmin), gen_pmin, -BIG_MW)
        hi = np.where(np.isfinite(gen_pmax), gen_pmax, BIG_MW)
        p_nom = np.maximum(np.abs(lo).max(axis=1), np.abs(hi).max(axis=1))
        p_nom = np.where(p_nom > 0, p_nom, 1.0)
        gnames = np.array([f"g{i}" for i in range(G)])
        ru = np.where(np.isfinite(net.gen_ramp_up), net.gen_ramp_up * dt_hours / p_nom, np.nan)
        rd = np.where(np.isfinite(net.gen_ramp_down), net.gen_ramp_down * dt_hours / p_nom, np.nan)
        n.add("Generator", gnames.tolist(), bus=nodes[net.gen_node], p_nom=p_nom, carrier="AC",
              p_min_pu=pd.DataFrame((lo / p_nom[:, None]).T, index=sns, columns=gnames),
              p_max_pu=pd.DataFrame((hi / p_nom[:, None]).T, index=sns, columns=gnames),
              marginal_cost=net.gen_c1, marginal_cost_quadratic=net.gen_c2,
              ramp_limit_up=ru, ramp_limit_down=rd)

    # --------------------------------------------------------------- loads
    if net.n_load:
        lnames = np.array([f"l{i}" for i in range(net.n_load)])
        n.add("Load", lnames.tolist(), bus=nodes[net.load_node], carrier="AC",
              p_set=pd.DataFrame(load_p.T, index=sns, columns=lnames))
    fixed = net.node_fixed_demand + shift_demand
    fx = np.flatnonzero(fixed != 0)
    if fx.size:
        n.add("Load", [f"fixed{i}" for i in fx], bus=nodes[fx], carrier="AC",
              p_set=fixed[fx])

    # ------------------------------------------------------------- storage
    S = net.n_storage
    e_min = np.zeros(0)
    if S:
        snames = np.array([f"s{i}" for i in range(S)])
        pn = np.maximum(net.st_p_charge, net.st_p_discharge)
        pn = np.where(pn > 0, pn, 1.0)
        soc_set = np.full((T, S), np.nan)
        soc_set[-1] = net.st_e_final
        n.add("StorageUnit", snames.tolist(), bus=nodes[net.st_node], carrier="AC", p_nom=pn,
              p_min_pu=-net.st_p_charge / pn, p_max_pu=net.st_p_discharge / pn,
              max_hours=net.st_e_max / pn, efficiency_store=net.st_eta_charge,
              efficiency_dispatch=net.st_eta_discharge, state_of_charge_initial=net.st_e_init,
              cyclic_state_of_charge=False,
              state_of_charge_set=pd.DataFrame(soc_set, index=sns, columns=snames))
        e_min = np.asarray(net.st_e_min, float)
    n.meta["nodalopt"] = {
        "objective_constant": float(net.gen_c0.sum()) * T * dt_hours,
        "st_e_min": e_min.tolist(),
        "n_node": int(net.n_node),
        "shift_names": names[sr].tolist(),
        "shift_hi": (rate[idx][sr] - sf[sr]).tolist(),
        "shift_lo": (-rate[idx][sr] - sf[sr]).tolist(),
    }
    return n


#: HiGHS options used by :func:`pypsa_solve`.  HiGHS' QP (active-set) solver
#: rejects its own optimum on the PEGASE cases with quadratic costs ("QP solver
#: claims optimality, but with ... primal infeasibilities" on PyPSA's Kirchhoff
#: rows, which PyPSA scales by 1e5; model status "Solve error").  The largest
#: residual was ~5e-7 with highspy 1.15 and is 1.4e-6 on case9241pegase with
#: highspy 1.16 (objective then equal to nodalopt's within 1e-10).  A primal
#: feasibility tolerance of 1e-5 instead of HiGHS' 1e-7 accepts that optimum
#: (on a row multiplied by 1e5, a residual of 1e-5 is 1e-10 in the row's units).
HIGHS_DEFAULTS: dict[str, Any] = {"primal_feasibility_tolerance": 1e-5}

#: s_nom of branches without a rating: infinite bounds on the flow variable, so
#: no artificial limit is introduced.
UNLIMITED = np.inf


@dataclass
class PypsaResult:
    status: str
    condition: str
    objective: float  # $ over the horizon, including c0
    lmp: np.ndarray  # (T, n_node) $/MWh
    build_s: float  # pypsa_from_arrays is timed by the caller; this is linopy model creation
    solve_s: float  # linopy -> HiGHS -> solution (m.solve)
    post_s: float  # assigning solution and duals (+ PyPSA post-processing if requested)


def _extra(n: Any, sns: Any) -> None:
    """Constraints PyPSA has no attribute for: storage minimum energy, shifted-branch limits."""
    import xarray as xr

    meta = n.meta.get("nodalopt", {})
    m = n.model
    e_min = np.asarray(meta.get("st_e_min", []), float)
    if e_min.size and (e_min > 0).any():
        soc = m["StorageUnit-state_of_charge"]
        bound = xr.DataArray(e_min, coords={"name": [f"s{i}" for i in range(e_min.size)]}, dims="name")
        m.add_constraints(soc >= bound, name="StorageUnit-e_min")
    names = meta.get("shift_names", [])
    if names:
        s = m["Line-s"].sel(name=names)
        hi = xr.DataArray(np.asarray(meta["shift_hi"]), coords={"name": names}, dims="name")
        lo = xr.DataArray(np.asarray(meta["shift_lo"]), coords={"name": names}, dims="name")
        m.add_constraints(s <= hi, name="Line-shifted-upper")
        m.add_constraints(s >= lo, name="Line-shifted-lower")


def pypsa_solve(n: Any, solver_options: dict[str, Any] | None = None,
                post_processing: bool = True) -> PypsaResult:
    """Optimize with HiGHS and read nodal prices.

    ``post_processing=True`` is exactly ``n.optimize(solver_name="highs")``.
    ``False`` runs the same steps without PyPSA's post-processing (voltage
    angles from a dense pseudo-inverse of B, O(n^3), which dominates PyPSA's
    time on large cases and is not needed for prices); the marginal prices are
    divided by the snapshot weightings exactly as the post-processing does.
    """
    _quiet()
    opts: dict[str, Any] = {"log_to_console": False, **HIGHS_DEFAULTS}
    opts.update(solver_options or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _pypsa_solve(n, opts, post_processing)


def _pypsa_solve(n: Any, opts: dict[str, Any], post_processing: bool) -> PypsaResult:
    t0 = time.perf_counter()
    if post_processing:
        status, cond = n.optimize(solver_name="highs", extra_functionality=_extra,
                                  include_objective_constant=False, **opts)
        t1 = t2 = time.perf_counter()
    else:
        sns = n.snapshots
        n.consistency_check(strict=["unknown_buses"])
        m = n.optimize.create_model(sns, consistency_check=False, include_objective_constant=False)
        _extra(n, sns)
        t1 = time.perf_counter()
        status, cond = m.solve(solver_name="highs", **opts)
        t2 = time.perf_counter()
        if status == "ok":
            n.optimize.assign_solution()
            n.optimize.assign_duals(False)
            w = n.snapshot_weightings.objective.loc[sns]
            n.buses_t.marginal_price.loc[sns] = n.buses_t.marginal_price.loc[sns].divide(w, axis=0)
    lmp = pypsa_lmps(n) if status == "ok" else np.full((len(n.snapshots), len(n.buses)), np.nan)
    t3 = time.perf_counter()
    obj = float(n.model.objective.value) + n.meta["nodalopt"]["objective_constant"] \
        if status == "ok" else float("nan")
    if post_processing:
        return PypsaResult(status, str(cond), obj, lmp, 0.0, t1 - t0, t3 - t1)
    return PypsaResult(status, str(cond), obj, lmp, t1 - t0, t2 - t1, t3 - t2)


def pypsa_lmps(n: Any) -> np.ndarray:
    """Nodal prices (T, n_node) in $/MWh from an optimized network (bus ``n{i}`` = node i)."""
    N = int(n.meta["nodalopt"]["n_node"])
    mp = n.buses_t.marginal_price.reindex(columns=[f"n{i}" for i in range(N)])
    return mp.to_numpy(dtype=float)


def pandapower_rundcopp(net: Any, **kwargs: Any) -> tuple[pd.Series, float]:
    """Run pandapower's ``rundcopp`` on ``net``; returns (LMP by bus index in $/MWh, seconds).

    Raises pandapower's ``OPFNotConverged`` when it fails.
    """
    import pandapower as pp

    t0 = time.perf_counter()
    pp.rundcopp(net, **kwargs)
    lam = net.res_bus.lam_p.copy()
    return lam, time.perf_counter() - t0
