"""Price explanations: intervals of optimal prices, how many MW a price holds for, who sets it.

A nodal price is the derivative of the optimal cost with respect to demand at a bus-hour.
For a solved DC-OPF this module reports, per (time, bus):

``lmp_min``, ``lmp_max``
    The left and right derivatives of the optimal cost (the interval of optimal prices;
    both equal ``lmp`` where the price is unique).
``valid_up_mw``, ``valid_down_mw``, ``next_event``, ``next_event_down``
    How much more (less) demand at that bus-hour keeps the active set, so that ``lmp`` and
    ``lme`` stay exact, and the constraint or unit whose state changes at that step.
``lmp_slope``
    $/MWh per MW: the price moves linearly inside the range (non-zero with quadratic costs);
    NaN where a side is degenerate (the curvature after a price jump is not computed).
``price_setters`` (time, bus, gen)
    ``w = d p_gen[t] / d demand[bus, t]``; ``lmp = sum_g w_g marginal_cost_g + lmp_coupling``,
    where ``lmp_coupling`` is the part set outside the units of that period (units of other
    periods through storage or ramps, load shedding at VOLL, piecewise-linear segments).

Method
------
The active set of the solved point is classified once (:func:`nodalopt.carbon.lme.active_set`,
shared with the LME).  With the active set fixed, the response ``(dx, dy)`` of the primal
variables and the multipliers to one MW of demand at (n, t) solves the reduced KKT system
(one factorisation per independent block, all bus-hours as right-hand sides, in chunks).
Where that response is consistent and keeps every weakly active constraint feasible, the
price is differentiable and both one-sided derivatives equal ``lmp``.  Elsewhere (a degenerate
side), the one-sided derivative is the value of the tangent-cone LP

    min grad' dx   s.t.  A_eq dx = s R e_nt,  active inequalities and bounds linearised,

solved with HiGHS (``scipy.optimize.linprog``) for that side only; by LP duality it equals the
max (s=+1) or min (s=-1) of ``lambda_nt`` over the optimal dual face.  The valid range is a
ratio test along the direction (the LP's direction on degenerate sides): free variables
reaching a bound, inactive branch flow / angle / ramp limits becoming binding (flows of every
branch in every period, through PTDF columns), and active constraints whose multiplier
reaches zero (KKT directions only).

Consistency guard: the solver's price is an optimal dual, so it must lie in [lmp_min, lmp_max]; where
an LP interval misses it (a misclassified active set, seen along storage state-of-charge plateaus
whose duals are degenerate) every explanation of that bus-hour is NaN and counted in the attribute
``explain_unresolved``.

Limits (not modelled in the ratio test): inactive piecewise-linear segments, inactive
load-shedding caps and a CO2 cap (its dual is held fixed as a carbon price, as the LME does).
Tolerances: a step counts a direction component above ``1e-9`` per MW.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import xarray as xr
from scipy.optimize import linprog

from ..carbon.lme import active_set, kkt_system
from ..dcopf.state import SolvedState
from ..errors import InputError, SolverError

_EPS = 1e-9  # MW per MW: direction components below this do not move anything
_CONSIST = 1e-6  # residual of the KKT direction above which the active set cannot absorb the demand
_CHUNK = 256  # demand columns per batch of right-hand sides
_REFINE = 6  # rounds of active-set repair when the system has no stationary point
_WIDE = 0.5  # MW: a free column this close to a bound, pushed there by its reduced cost, is at it
_PAST = 0.5  # MW past a breakpoint where price_curve re-solves

#: ds -> (weak reference, state, linear costs) for :func:`explain` on a Dataset from :func:`nodalopt.solve`
_CONTEXT: dict[int, tuple[Any, SolvedState, np.ndarray]] = {}

UNITS = {
    "lmp_min": ("$/MWh", "left derivative of the optimal cost w.r.t. demand (lowest optimal price)"),
    "lmp_max": ("$/MWh", "right derivative of the optimal cost w.r.t. demand (highest optimal price)"),
    "valid_up_mw": ("MW", "extra demand at the bus-hour for which the active set (and lmp, lme) stays exact"),
    "valid_down_mw": ("MW", "demand reduction at the bus-hour for which the active set stays exact"),
    "lmp_slope": ("$/MWh per MW", "change of the price per MW of extra demand inside the valid range"),
    "next_event": ("1", "constraint or unit whose state changes at valid_up_mw"),
    "next_event_down": ("1", "constraint or unit whose state changes at valid_down_mw"),
    "price_setters": ("MW/MW", "change of each unit's output in the same period per MW of extra demand"),
    "marginal_cost": ("$/MWh", "marginal cost of each unit at the solution (c1 + 2 c2 p, carbon adders)"),
    "explain_lp": ("1", "True where a side was degenerate and solved by the tangent-cone LP (lmp_slope NaN)"),
    "lmp_coupling": ("$/MWh", "part of the price set outside this period's units (storage, ramps, "
                     "other periods, shedding, piecewise-linear segments)"),
}


def attach_state(ds: xr.Dataset, state: SolvedState, c1: np.ndarray) -> None:
    """Remember the solved point behind ``ds`` (in this process) so that :func:`explain` can use it."""
    key = id(ds)

    def forget(_ref: Any, k: int = key) -> None:
        _CONTEXT.pop(k, None)

    _CONTEXT[key] = (weakref.ref(ds, forget), state, np.asarray(c1, float))


def explain(ds: xr.Dataset) -> xr.Dataset:
    """Price explanations for a result of :func:`nodalopt.solve` (same coordinates).

    Parameters
    ----------
    ds : xarray.Dataset
        A Dataset returned by :func:`nodalopt.solve` or :meth:`nodalopt.DCOPF.solve` in this
        process (the solved point is kept alongside it; a Dataset read back from netCDF has lost it).

    Returns
    -------
    xarray.Dataset
        ``lmp_min``, ``lmp_max``, ``valid_up_mw``, ``valid_down_mw``, ``lmp_slope``,
        ``next_event``, ``next_event_down``, ``lmp_coupling`` (time, bus); ``price_setters``
        (time, bus, gen); ``marginal_cost`` (time, gen).  See the module docstring.
    """
    ctx = _CONTEXT.get(id(ds))
    if ctx is None or ctx[0]() is not ds:
        raise InputError("explain(ds) needs a Dataset returned by nodalopt.solve / DCOPF.solve in this process "
                         "(a Dataset read from a file, or a copy, no longer carries its solved point); "
                         "use nodalopt.solve(..., explain=True).")
    out = explain_state(ctx[1], ctx[2])
    return to_dataset(out, ctx[1], ds)


def with_explanation(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` merged with :func:`explain` (``ds``'s attrs plus ``explain_lp_solves``); the merged
    Dataset can itself be passed to :func:`explain` again."""
    ex = explain(ds)
    out = ds.merge(ex)
    out.attrs.update(ex.attrs)
    ctx = _CONTEXT[id(ds)]
    attach_state(out, ctx[1], ctx[2])
    return out


@dataclass
class Explanation:
    """Arrays on (node, time) (``w``: (G, N, T)); see :func:`explain`."""

    lmp_min: np.ndarray
    lmp_max: np.ndarray
    valid_up: np.ndarray
    valid_down: np.ndarray
    slope: np.ndarray
    event_up: np.ndarray
    event_down: np.ndarray
    w: np.ndarray
    mc: np.ndarray
    coupling: np.ndarray
    n_lp: int
    used_lp: np.ndarray  # (N, T) a side needed the tangent-cone LP
    n_unresolved: int  # bus-hours left NaN (LP interval missed the solver's price)


class _Labels:
    """Names of the columns and rows of the local QP, for ``next_event``."""

    def __init__(self, state: SolvedState, qp: Any) -> None:
        net = state.net
        T = state.p.shape[1]
        n = qp.x.size
        self.col_name = np.full(n, "", dtype=object)
        self.col_node = np.full(n, -1, np.int64)
        self.col_sign = np.zeros(n)
        self.col_t = np.zeros(n, np.int64)
        self.gen_col = np.zeros((0, T), np.int64)
        bus_of_node = np.full(net.n_node, -1, np.int64)
        bus_of_node[net.bus_node] = net.bus_ids
        self.bus_of_node = bus_of_node
        for name, (off, E) in (qp.cols or {}).items():
            idx = off + np.arange(E * T)
            e, t = np.divmod(np.arange(E * T), T)
            self.col_t[idx] = t
            if name == "p":
                self.col_name[idx] = np.char.add("gen:", np.asarray(net.gen_names, str)[e].astype(object))
                self.col_node[idx], self.col_sign[idx] = net.gen_node[e], 1.0
                self.gen_col = idx.reshape(E, T)
            elif name in ("pc", "pd", "e"):
                what = {"pc": "charge", "pd": "discharge", "e": "energy"}[name]
                self.col_name[idx] = np.char.add(np.char.add("storage:", np.asarray(net.st_names, str)[e]),
                                                 f" {what}").astype(object)
                if name != "e":
                    self.col_node[idx], self.col_sign[idx] = net.st_node[e], (-1.0 if name == "pc" else 1.0)
            elif name == "shed":
                nodes = np.asarray(qp.shed_nodes)[e]
                self.col_name[idx] = np.char.add("shed:bus ", bus_of_node[nodes].astype(str)).astype(object)
                self.col_node[idx], self.col_sign[idx] = nodes, 1.0
            elif name == "z":
                self.col_name[idx] = "pwl cost epigraph"
        self.net = net

    def col(self, j: int, upper: bool, release: bool) -> str:
        t = int(self.col_t[j])
        side = "max" if upper else "min"
        if release:
            return f"{self.col_name[j]} leaves its {side} (hour {t})"
        return f"{self.col_name[j]} reaches its {side} (hour {t})"

    def row(self, kind: str, elem: int, t: int, release: bool) -> str:
        if kind == "flow":
            what = f"branch:{self.net.br_names[elem]} limit"
        elif kind in ("angle_max", "angle_min"):
            what = f"branch:{self.net.br_names[elem]} {kind.replace('_', ' ')}"
        elif kind in ("ramp_up", "ramp_down"):
            what = f"gen:{self.net.gen_names[elem]} {kind.replace('_', ' ')}"
        else:
            what = f"{kind} {elem}"
        return f"{what} {'released' if release else 'binds'} (hour {t})"


def _min_step(step: np.ndarray, code_base: int) -> tuple[np.ndarray, np.ndarray]:
    """Column-wise minimum of a (k, C) step matrix and the event code of its argmin."""
    if step.shape[0] == 0:
        return np.full(step.shape[1], np.inf), np.full(step.shape[1], -1, np.int64)
    i = np.argmin(step, axis=0)
    v = step[i, np.arange(step.shape[1])]
    return v, np.where(np.isfinite(v), code_base + i, -1)


def _ratio(dist_pos: np.ndarray, dist_neg: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Step until a quantity moving by ``d`` per MW uses up ``dist_pos`` (upwards) or ``dist_neg``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > _EPS, np.maximum(dist_pos, 0.0)[:, None] / d,
                        np.where(d < -_EPS, np.maximum(dist_neg, 0.0)[:, None] / -d, np.inf))


def explain_state(state: SolvedState, c1: np.ndarray | None = None, *, atol: float = 1e-4, rtol: float = 1e-6,
                  near: float = 2e-3) -> Explanation:
    """Price intervals, valid ranges, slopes and price setters of a solved DC-OPF (see the module doc).

    Parameters
    ----------
    state : SolvedState
        The solved primal-dual point.
    c1 : (G,) or (G, T) array, optional
        Linear costs of the solve in $/MWh (carbon adders and any CO2-cap dual included).
    atol, rtol, near : float
        Activity tolerances, as in :func:`nodalopt.carbon.locational_marginal_emissions`.
    """
    net = state.net
    G, T = state.p.shape
    N = net.n_node
    c1v = np.asarray(net.gen_c1 if c1 is None else c1, dtype=float)
    c1v = np.broadcast_to(c1v[:, None] if c1v.ndim == 1 else c1v, (G, T))
    a = active_set(state, np.zeros(G), c1v, atol=atol, rtol=rtol, near=near, caller="explain")
    qp = a.qp
    n, m = qp.x.size, qp.A.shape[0]
    lab = _Labels(state, qp)
    lam_scale = max(1.0, float(np.nanmax(np.abs(state.lam), initial=0.0)))
    fixed, keep, expect = a.fixed.copy(), a.keep, a.expect_v.copy()
    rows_w, free_w, system = a.rows_w, a.free_w, a.system
    weak_held = False
    with np.errstate(invalid="ignore"):
        d_lb, d_ub = qp.x - qp.lb, qp.ub - qp.x
    tol_st = 1e-6 * lam_scale
    for _ in range(_REFINE):
        # multipliers of the system: stationarity on its free columns
        yw = np.zeros(m)
        for rr, q, lin, blk in system.blocks:
            _, _, yy = blk.solve(-a.grad[free_w[q]][:, None], -a.grad[free_w[lin]][:, None],
                                 np.zeros((rr.size, 1)))
            yw[rows_w[rr]] = yy[:, 0]
        rc = a.grad + qp.A.T @ yw
        if np.abs(rc[free_w]).max(initial=0.0) <= tol_st:
            break
        # No stationary point on this active set.  (1) An interior-point solve leaves a bound with a
        # small multiplier mu about (barrier / mu) off: a free column within _WIDE MW of a bound whose
        # reduced cost pushes it there is at that bound.
        free_mask = np.zeros(n, bool)
        free_mask[free_w] = True
        at_lb = free_mask & ~qp.hard & (d_lb <= _WIDE) & (rc > tol_st)
        at_ub = free_mask & ~qp.hard & (d_ub <= _WIDE) & (rc < -tol_st) & ~at_lb
        cand = at_lb | at_ub  # the strongest first: the others' residual may only be its echo
        strongest = cand & (np.abs(rc) >= 0.5 * np.abs(np.where(cand, rc, 0.0)).max(initial=0.0))
        at_lb, at_ub = at_lb & strongest, at_ub & strongest
        if at_lb.any() or at_ub.any():
            fixed = fixed | at_lb | at_ub
            expect[at_lb], expect[at_ub] = 1.0, -1.0
        elif not weak_held:
            # (2) The weakly active constraints' zero multipliers came from one choice among
            # non-unique duals (e.g. a state-of-charge plateau): hold them instead of releasing them.
            fixed = fixed | (a.weak_col & a.at_bound)
            keep = a.keep | a.weak_row
            weak_held = True
        else:
            break
        rows_w, free_w = np.flatnonzero(keep), np.flatnonzero(~fixed)
        system = kkt_system(qp, rows_w, free_w)
    is_free = np.zeros(n, bool)
    is_free[free_w] = True
    weak_col_rel = a.weak_col & is_free
    weak_row_rel = a.weak_row & ~keep
    grad_lp = a.grad - np.where(is_free, rc, 0.0)  # zero reduced cost on the free columns
    ineq = qp.dirn != 0
    kept_ineq = np.flatnonzero(keep & ineq)
    fixed_soft = np.flatnonzero(fixed & ~qp.hard)
    weak_cols = np.flatnonzero(weak_col_rel)
    weak_rows = np.flatnonzero(weak_row_rel)
    Aw = sp.csr_matrix(qp.A[rows_w])
    Rw = sp.csc_matrix(qp.R[rows_w])
    Rall = sp.csc_matrix(qp.R)
    AfixT = sp.csr_matrix(qp.A[:, fixed_soft].T)
    Aweak = sp.csr_matrix(qp.A[weak_rows])
    Rweak = sp.csc_matrix(qp.R[weak_rows])
    # --------------------------------------------------- ratio-test data
    with np.errstate(invalid="ignore"):
        up_dist = np.where(np.isfinite(qp.ub), qp.ub - qp.x, np.inf)[free_w]
        lo_dist = np.where(np.isfinite(qp.lb), qp.x - qp.lb, np.inf)[free_w]
    # multipliers of the held constraints; a wrong sign (degenerate duals split by the minimum-norm
    # solve, e.g. along a storage plateau) is not trusted as a release event
    m_fix = expect[fixed_soft] * rc[fixed_soft]
    m_fix[m_fix < -1e-6 * lam_scale] = np.inf
    m_row = qp.dirn[kept_ineq] * yw[kept_ineq]
    m_row[m_row < -1e-6 * lam_scale] = np.inf
    # demand columns whose price the released system does not reproduce: its multipliers are not the
    # optimal duals there (see above), so both sides go to the LP
    wrong_price = np.abs(-np.asarray(qp.R.T @ yw).ravel() - state.lam.ravel()) > 1e-6 * lam_scale
    # injections: columns at nodes; PTDF columns of the nodes where injections can move
    inj = np.flatnonzero((lab.col_node >= 0) & is_free)
    inj_nodes, inj_pos = np.unique(lab.col_node[inj], return_inverse=True)
    rate = np.where(np.isfinite(net.br_rate) & (net.br_b != 0), net.br_rate, np.inf)
    amax = np.where(np.isfinite(net.br_angmax) & (net.br_b != 0), net.br_angmax, np.inf)
    amin = np.where(np.isfinite(net.br_angmin) & (net.br_b != 0), net.br_angmin, -np.inf)
    mon_f = np.flatnonzero(np.isfinite(rate))
    mon_a = np.flatnonzero(np.isfinite(amax) | np.isfinite(amin))
    ang = state.theta[net.br_f] - state.theta[net.br_t]

    def node_sens(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow rows of mon_f, angle rows of mon_a) per MW injected at ``nodes``."""
        e = np.zeros((N, nodes.size))
        e[nodes, np.arange(nodes.size)] = 1.0
        th = net.solve_b_red(e[net.nonref_nodes]) if net.nonref_nodes.size else np.zeros((0, nodes.size))
        return np.asarray(net.bf_red[mon_f] @ th), np.asarray(net.incidence_red[mon_a] @ th)

    ptdf_inj, asens_inj = node_sens(inj_nodes)
    # active flow/angle/ramp rows are held by the system: masked in the ratio test
    act_f = np.zeros((net.n_branch, T), bool)
    act_a = np.zeros((net.n_branch, T), bool)
    act_r = np.zeros((2, G, T), bool)
    ak = qp.row_kind if qp.row_kind is not None else np.zeros(m, object)
    r_el = qp.row_elem if qp.row_elem is not None else np.zeros(m, np.int64)
    r_t = qp.row_t if qp.row_t is not None else np.zeros(m, np.int64)
    held = keep | a.weak_row
    for kind, arr in (("flow", act_f), ("angle_max", act_a), ("angle_min", act_a)):
        sel = held & (ak == kind)
        arr[r_el[sel], r_t[sel]] = True
    for i, kind in enumerate(("ramp_up", "ramp_down")):
        sel = held & (ak == kind)
        act_r[i, r_el[sel], r_t[sel]] = True
    ramp = T > 1 and bool(np.isfinite(net.gen_ramp_up).any() or np.isfinite(net.gen_ramp_down).any())
    if ramp:
        dpv = state.p[:, 1:] - state.p[:, :-1]
        rup = np.where(np.isfinite(net.gen_ramp_up), net.gen_ramp_up, np.inf)[:, None] * state.dt
        rdn = np.where(np.isfinite(net.gen_ramp_down), net.gen_ramp_down, np.inf)[:, None] * state.dt
        slack_ru = np.where(act_r[0][:, 1:], np.inf, rup - dpv).ravel()
        slack_rd = np.where(act_r[1][:, 1:], np.inf, rdn + dpv).ravel()

    # event codes: [free col lo/up | fixed col release | row release | flow | angle | ramp]
    nf = free_w.size
    base = {"free": 0, "fix": 2 * nf, "row": 2 * nf + fixed_soft.size}
    base["flow"] = base["row"] + kept_ineq.size
    base["ang"] = base["flow"] + mon_f.size * T
    base["ramp"] = base["ang"] + mon_a.size * T

    def decode(code: int, s: float, dflow_sign: float = 1.0) -> str:
        if code < 0:
            return ""
        if code < base["fix"]:
            j = free_w[code % nf]
            return lab.col(int(j), upper=code < nf, release=False)  # rows 0..nf-1: upper bounds
        if code < base["row"]:
            j = fixed_soft[code - base["fix"]]
            return lab.col(int(j), upper=expect[j] < 0, release=True)
        if code < base["flow"]:
            r = kept_ineq[code - base["row"]]
            return lab.row(str(ak[r]), int(r_el[r]), int(r_t[r]), release=True)
        if code < base["ang"]:
            k, t = divmod(code - base["flow"], T)
            return lab.row("flow", int(mon_f[k]), t, release=False)
        if code < base["ramp"]:
            k, t = divmod(code - base["ang"], T)
            return lab.row("angle_max", int(mon_a[k]), t, release=False)
        k = code - base["ramp"]
        side, rest = divmod(k, G * (T - 1))
        g, t = divmod(rest, T - 1)
        return lab.row("ramp_up" if side == 0 else "ramp_down", g, t + 1, release=False)

    def ratio_test(dx: np.ndarray, dy: np.ndarray | None, cols: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Step (MW) and event code along ``s * (dx, dy)`` for demand columns ``cols`` (node*T + t)."""
        C = cols.size
        dxs = s * dx
        best, code = _min_step(np.vstack([_ratio(up_dist, np.full(nf, np.inf), dxs[free_w]),
                                          _ratio(np.full(nf, np.inf), lo_dist, dxs[free_w])]), base["free"])
        cands = [(best, code)]
        if dy is not None:
            dys = s * dy
            dm_fix = expect[fixed_soft][:, None] * np.asarray(AfixT @ dys)
            cands.append(_min_step(_ratio(np.full(fixed_soft.size, np.inf), m_fix, dm_fix), base["fix"]))
            dm_row = qp.dirn[kept_ineq][:, None] * dys[kept_ineq]
            cands.append(_min_step(_ratio(np.full(kept_ineq.size, np.inf), m_row, dm_row), base["row"]))
        nd, td = np.divmod(cols, T)
        dinj = np.zeros((inj_nodes.size * T, C))  # node-major (inj node, t)
        np.add.at(dinj, inj_pos * T + lab.col_t[inj], lab.col_sign[inj][:, None] * dxs[inj])
        dinj = dinj.reshape(inj_nodes.size, T, C)
        dem_f, dem_a = node_sens(nd)
        stf = np.full((mon_f.size, T, C), np.inf)
        sta = np.full((mon_a.size, T, C), np.inf)
        for t in range(T):
            own = td == t
            moves = np.abs(dinj[:, t]).max(axis=0, initial=0.0) > _EPS
            if not (moves.any() or own.any()):
                continue
            df = ptdf_inj @ dinj[:, t] - np.where(own, s, 0.0)[None, :] * dem_f
            f0, r = state.flow[mon_f, t], rate[mon_f]
            stp = _ratio(r - f0, r + f0, df)
            stp[act_f[mon_f, t]] = np.inf
            stf[:, t] = stp
            if mon_a.size:
                da = asens_inj @ dinj[:, t] - np.where(own, s, 0.0)[None, :] * dem_a
                a0 = ang[mon_a, t]
                stp = _ratio(amax[mon_a] - a0, a0 - amin[mon_a], da)
                stp[act_a[mon_a, t]] = np.inf
                sta[:, t] = stp
        cands.append(_min_step(stf.reshape(-1, C), base["flow"]))
        cands.append(_min_step(sta.reshape(-1, C), base["ang"]))
        if ramp:
            dp = dxs[lab.gen_col.ravel()].reshape(G, T, C)
            dd = (dp[:, 1:] - dp[:, :-1]).reshape(-1, C)
            st_u = _ratio(slack_ru, np.full(slack_ru.size, np.inf), dd)
            st_d = _ratio(np.full(slack_rd.size, np.inf), slack_rd, dd)
            cands.append(_min_step(np.vstack([st_u, st_d]), base["ramp"]))
        steps = np.vstack([c[0] for c in cands])
        codes = np.vstack([c[1] for c in cands])
        k = np.argmin(steps, axis=0)
        return steps[k, np.arange(C)], codes[k, np.arange(C)]

    NT = N * T
    lmp = state.lam.ravel()
    lmp_min, lmp_max = lmp.copy(), lmp.copy()
    valid = np.zeros((2, NT))
    events = np.full((2, NT), -1, np.int64)
    ev_str = np.full((2, NT), "", dtype=object)
    slope = np.zeros(NT)
    w = np.zeros((G, NT))
    coupling = np.zeros(NT)
    mc = a.grad[lab.gen_col] if G else np.zeros((0, T))  # (G, T)
    live = np.zeros(N, bool)
    live[net.gen_node] = True
    live = np.isin(net.node_island, net.node_island[live])
    live_cols = (np.flatnonzero(live)[:, None] * T + np.arange(T)[None, :]).T.ravel()  # period-major
    degenerate: list[tuple[int, float]] = []
    blocks = system.blocks
    for c0 in range(0, live_cols.size, _CHUNK):
        cols = live_cols[c0:c0 + _CHUNK]
        C = cols.size
        dx = np.zeros((n, C))
        dy = np.zeros((m, C))
        Rc = Rw[:, cols].tocsr()
        for rr, q, lin, blk in blocks:
            sub = Rc[rr]
            if sub.nnz == 0:
                continue
            xq, xl, yy = blk.solve(np.zeros((q.size, C)), np.zeros((lin.size, C)), sub.toarray())
            dx[free_w[q]] += xq
            dx[free_w[lin]] += xl
            dy[rows_w[rr]] += yy
        resid = np.abs(np.asarray(Aw @ dx) - Rc.toarray()).max(axis=0, initial=0.0)
        ok = (resid <= _CONSIST) & ~wrong_price[cols]
        ok_side = np.vstack([ok, ok])
        if weak_cols.size:
            wv = expect[weak_cols][:, None] * dx[weak_cols]  # > 0: moves away from its bound
            ok_side[0] &= (wv >= -_EPS).all(axis=0)
            ok_side[1] &= (wv <= _EPS).all(axis=0)
        if weak_rows.size:
            rv = qp.dirn[weak_rows][:, None] * (np.asarray(Aweak @ dx) - Rweak[:, cols].toarray())  # > 0: violates
            ok_side[0] &= (rv <= _EPS).all(axis=0)
            ok_side[1] &= (rv >= -_EPS).all(axis=0)
        sl = -np.asarray(Rall[:, cols].multiply(dy).sum(axis=0)).ravel()
        slope[cols] = sl
        gp = lab.gen_col[:, cols % T] if G else np.zeros((0, C), np.int64)
        w[:, cols] = dx[gp, np.arange(C)[None, :]] if G else 0.0
        coupling[cols] = grad_lp @ dx - (mc[:, cols % T] * w[:, cols]).sum(axis=0)
        for i, s in enumerate((1.0, -1.0)):
            stp, cd = ratio_test(dx, dy, cols, s)
            valid[i, cols] = stp
            events[i, cols] = cd
            degenerate.extend((int(c), s) for c in cols[~ok_side[i]])
    # degenerate sides: the tangent-cone LP gives the one-sided derivative and a direction
    for (j, s) in degenerate:
        dval, dxj = _side_lp(qp, keep | a.weak_row, fixed | a.weak_col, expect, grad_lp,
                             Rall[:, [j]].toarray().ravel(), s)
        if s > 0:
            lmp_max[j] = dval
            w[:, j] = dxj[lab.gen_col[:, j % T]] if G and dxj is not None else np.nan
            coupling[j] = (grad_lp @ dxj - mc[:, j % T] @ dxj[lab.gen_col[:, j % T]]) if dxj is not None else np.nan
        else:
            lmp_min[j] = dval
        slope[j] = np.nan  # curvature on a degenerate side is not computed
        if dxj is None:
            valid[0 if s > 0 else 1, j], events[0 if s > 0 else 1, j] = 0.0, -1
            continue
        stp, cd = ratio_test(s * dxj[:, None], None, np.array([j]), s)
        valid[0 if s > 0 else 1, j], events[0 if s > 0 else 1, j] = stp[0], cd[0]
    # an optimal dual (the solver's lmp) lies in the interval of optimal prices: an LP interval that
    # misses it comes from a misclassified active set (degenerate duals along storage plateaus);
    # nothing is published there
    used_lp = np.zeros(NT, bool)
    used_lp[[j for j, _ in degenerate]] = True
    tol_in = 1e-6 * lam_scale
    unresolved = used_lp & ((lmp < lmp_min - tol_in) | (lmp > lmp_max + tol_in) | np.isnan(lmp_min)
                            | np.isnan(lmp_max))
    for arr1 in (lmp_min, lmp_max, slope, coupling):
        arr1[unresolved] = np.nan
    valid[:, unresolved] = np.nan
    events[:, unresolved] = -1
    w[:, unresolved] = np.nan
    for i in range(2):
        for code in np.unique(events[i]):
            if code >= 0:
                ev_str[i, events[i] == code] = decode(int(code), 1.0)
    dead = ~np.isin(np.arange(NT), live_cols)
    for arr1 in (lmp_min, lmp_max, slope, coupling):
        arr1[dead] = np.nan
    valid[:, dead] = np.nan
    return Explanation(lmp_min=lmp_min.reshape(N, T), lmp_max=lmp_max.reshape(N, T),
                       valid_up=valid[0].reshape(N, T), valid_down=valid[1].reshape(N, T),
                       slope=slope.reshape(N, T), event_up=ev_str[0].reshape(N, T),
                       event_down=ev_str[1].reshape(N, T), w=w.reshape(G, N, T), mc=mc,
                       coupling=coupling.reshape(N, T), n_lp=len(degenerate), used_lp=used_lp.reshape(N, T),
                       n_unresolved=int(unresolved.sum()))


def _side_lp(qp: Any, held_rows: np.ndarray, held_cols: np.ndarray, expect: np.ndarray, grad: np.ndarray,
             r: np.ndarray, s: float) -> tuple[float, np.ndarray | None]:
    """One-sided derivative ``s``: min grad'dx over the tangent cone with A_eq dx = s r (HiGHS).

    Returns the derivative ($/MWh; +inf if the extra demand cannot be served) and the direction
    (per MW of demand in the direction ``s``), or None when there is none.
    """
    n = qp.x.size
    eq = qp.dirn == 0
    act = (qp.dirn != 0) & held_rows
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    bound = held_cols & ~qp.hard
    lo[bound & (expect > 0)] = 0.0
    hi[bound & (expect < 0)] = 0.0
    lo[qp.hard], hi[qp.hard] = 0.0, 0.0
    A = sp.csr_matrix(qp.A)
    A_ub = sp.csr_matrix(sp.diags(qp.dirn[act]) @ A[act]) if act.any() else None
    b_ub = qp.dirn[act] * s * r[act] if act.any() else None
    res = linprog(grad, A_ub=A_ub, b_ub=b_ub, A_eq=A[eq] if eq.any() else None,
                  b_eq=s * r[eq] if eq.any() else None, bounds=np.c_[lo, hi], method="highs")
    if res.status == 2:  # infeasible: the extra (or reduced) demand cannot be met at all
        return (np.inf if s > 0 else -np.inf), None
    if res.status == 3:  # unbounded: the linearised active set misses a constraint (left unresolved)
        return np.nan, None
    if res.status != 0:
        raise SolverError(f"explain: the one-sided price LP ended '{res.message}'; no interval is published.",
                          status="explain_lp")
    return float(res.fun) * s, np.asarray(res.x) * s


def to_dataset(ex: Explanation, state: SolvedState, ds: xr.Dataset | None = None) -> xr.Dataset:
    """Explanation arrays -> Dataset on (time, bus[, gen]) with the coordinates of ``ds``."""
    net = state.net
    bn = net.bus_node

    def da(x: np.ndarray, dims: tuple[str, ...], name: str) -> xr.DataArray:
        unit, desc = UNITS[name]
        return xr.DataArray(x, dims=dims, attrs={"units": unit, "long_name": desc})

    out = xr.Dataset({
        "lmp_min": da(ex.lmp_min[bn].T, ("time", "bus"), "lmp_min"),
        "lmp_max": da(ex.lmp_max[bn].T, ("time", "bus"), "lmp_max"),
        "valid_up_mw": da(ex.valid_up[bn].T, ("time", "bus"), "valid_up_mw"),
        "valid_down_mw": da(ex.valid_down[bn].T, ("time", "bus"), "valid_down_mw"),
        "lmp_slope": da(ex.slope[bn].T, ("time", "bus"), "lmp_slope"),
        "next_event": da(ex.event_up[bn].T.astype(str), ("time", "bus"), "next_event"),
        "next_event_down": da(ex.event_down[bn].T.astype(str), ("time", "bus"), "next_event_down"),
        "lmp_coupling": da(ex.coupling[bn].T, ("time", "bus"), "lmp_coupling"),
        "price_setters": da(ex.w[:, bn, :].transpose(2, 1, 0), ("time", "bus", "gen"), "price_setters"),
        "marginal_cost": da(ex.mc.T, ("time", "gen"), "marginal_cost"),
        "explain_lp": da(ex.used_lp[bn].T, ("time", "bus"), "explain_lp"),
    })
    if ds is not None:
        out = out.assign_coords({k: ds.coords[k] for k in ("time", "bus", "gen") if k in ds.coords})
    out.attrs["explain_lp_solves"] = ex.n_lp
    out.attrs["explain_unresolved"] = ex.n_unresolved
    return out


def price_curve(network: Any, bus: int, max_mw: float, *, max_steps: int = 50, **solve_kw: Any) -> Any:
    """The price a bus sees as a function of extra demand, piece by piece (single period).

    Starting from the solved case, each piece is the explanation of the case with the extra
    demand reached so far: the price ``lmp_max + lmp_slope * dMW`` holds for ``valid_up_mw``;
    then the demand is moved ``_PAST`` (0.5 MW) past the breakpoint and the case re-solved (closer,
    an interior-point solve has not yet settled the new active set: the constraint that starts to
    bind is still 1e-3 MW or so off its bound).

    Parameters
    ----------
    network : pandapowerNet or MatpowerCase
        The case (not modified; extra demand is added to a copy).
    bus : int
        Bus id.
    max_mw : float
        Extra demand to cover, MW.
    max_steps : int
        Most pieces (re-solves).
    **solve_kw
        Passed to :func:`nodalopt.solve` (``hours`` must be 1 or absent).

    Returns
    -------
    pandas.DataFrame
        One row per piece: ``start_mw``, ``end_mw``, ``price_start``, ``price_end`` ($/MWh),
        ``slope`` ($/MWh per MW) and ``event`` (what ends the piece).
    """
    import copy
    import dataclasses

    import pandas as pd

    from ..dcopf.model import solve
    from ..network.matpower import MatpowerCase

    if solve_kw.get("hours", 1) not in (None, 1):
        raise InputError("price_curve covers one period: pass hours=1 (or none).")
    if not (np.isfinite(max_mw) and max_mw > 0):
        raise InputError(f"price_curve: max_mw must be a positive number of MW, got {max_mw!r}.")

    def with_extra(mw: float) -> Any:
        if isinstance(network, MatpowerCase):
            b = network.bus.copy()
            rows = np.flatnonzero(b[:, 0].astype(np.int64) == bus)
            if not rows.size:
                raise InputError(f"price_curve: bus {bus} is not in {network.name}.")
            b[rows[0], 2] += mw
            return dataclasses.replace(network, bus=b)
        if hasattr(network, "load") and hasattr(network, "bus"):
            import pandapower as pp

            if bus not in network.bus.index:
                raise InputError(f"price_curve: bus {bus} is not in the pandapower net.")
            n2 = copy.deepcopy(network)
            pp.create_load(n2, bus, p_mw=mw, name="nodalopt price_curve")
            return n2
        raise InputError("price_curve needs a pandapower net or a MatpowerCase.")

    rows: list[dict[str, Any]] = []
    start = 0.0
    for _ in range(max_steps):
        ds = solve(with_extra(start), explain=True, **solve_kw)
        x = ds.sel(bus=bus).isel(time=0)
        p0, k, up = float(x.lmp_max), float(x.lmp_slope), float(x.valid_up_mw)
        if not np.isfinite(p0):
            raise SolverError(f"price_curve: the explanation at bus {bus} with {start:.4g} MW extra is unresolved "
                              "(see explain_unresolved); the curve stops there.", status="explain_unresolved")
        if not np.isfinite(k):
            k = 0.0
        end = min(start + up, max_mw) if np.isfinite(up) else max_mw
        rows.append(dict(start_mw=start, end_mw=end, price_start=p0, price_end=p0 + k * (end - start), slope=k,
                         event=str(x.next_event.item()) if end < max_mw else ""))
        if end >= max_mw:
            break
        start = end + _PAST
    return pd.DataFrame(rows)
