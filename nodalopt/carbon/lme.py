"""Locational marginal emissions (LME) by implicit differentiation of the DC-OPF optimum.

``lme[n, t]`` is the change in system emissions ``dt * sum_t' sum_g ef_g max(p_gt', 0)`` per
extra MWh of demand at node ``n`` in period ``t`` (tCO2/MWh), with the optimal
active set held fixed.  Because the whole horizon is one optimisation, the
response includes storage re-scheduling, ramp-coupled units and every other
intertemporal effect.

Method
------
With the active set fixed, the optimum solves the equality-constrained QP

    min 1/2 x'Hx + c'x   s.t.  A x = b(d),

over the *free* variables ``x`` (variables at an active bound are removed;
``H = diag(2 c2)``).  The rows of ``A`` are: one energy balance per island and
period, the active flow (and angle) limits written through PTDFs on the nodal
injections, active ramp limits, storage energy dynamics, active piecewise-linear
cost segments, active load-shedding caps and, optionally, a binding CO2 cap.
Theta and the branch flows are eliminated (PTDFs), so demand enters only the
right-hand side: ``db/dd[n, t]`` is 1 in the island row and ``PTDF[l, n]`` in an
active limit row ``l`` of period ``t``.  The KKT matrix
``K = [[H, A'], [A, 0]]`` is symmetric, so ONE adjoint solve ``K z = [g; 0]``
with the emission gradient ``g`` (``ef`` on the generator columns) gives
``dE/dd = z_y' (db/dd)`` for every node and period at once.  Quadratic columns
are eliminated by a Schur complement; what remains is split into independent
blocks (e.g. periods that nothing couples) and factorised densely by a
symmetric eigen-decomposition, which also reveals the null spaces.

Uniqueness test (``unique=False`` where any of these holds)
----------------------------------------------------------
Active constraints are found from the primal point (a variable within
``atol + rtol |bound|`` of a bound, a branch with ``|flow| >= rate (1 - rtol) - atol``,
as in :mod:`nodalopt.dcopf.degeneracy`).  Their multipliers are recomputed from
stationarity with the linear costs ``c1``; an active inequality whose
multiplier (or reduced cost) is zero within ``1e-6 * max(1, max|lmp|)`` is
*weakly active* (e.g. a unit exactly at a bound with zero reduced cost).
Weakly active constraints are released, and then for node ``n`` in period ``t``:

1. *Interval of duals / over-determined active set* (``A`` rank-deficient):
   the demand direction ``db/dd[n, t]`` has a component in ``null(A')``.  The
   perturbation cannot be met with the active set unchanged; the derivative
   from the left and from the right differ.
2. *Weakly active constraint moved*: every response ``dx`` to the perturbation
   changes a released weakly-active constraint.  One side of the perturbation
   would activate it, the other not.
3. *Emitting unit at zero output that may go negative* (an ext_grid, a unit with
   ``min_p_mw < 0``): a unit emits only when it generates, so its emissions
   ``ef max(p, 0)`` have slope ``ef`` above 0 and 0 below; where the
   perturbation moves such a unit from ``p = 0`` the derivative is one-sided.
   (Away from 0 the gradient is ``ef`` for ``p > 0`` and 0 for ``p < 0``.)
4. *Non-unique dispatch with emission consequences* (``null(H) ∩ null(A)``,
   e.g. two units with equal linear cost at a node): the emission gradient
   has a component along a cost-neutral re-dispatch direction and every
   response to the perturbation moves the units involved.

Tests 1-4 use an eigen-decomposition of each (equilibrated) block; eigenvalues
below 1e-9 of the largest are null, and a demand direction "has a component" /
"moves" when it exceeds 1e-6 (per MW of demand).  Constraints within ``near``
(default 2e-3 MW) of their bound but outside ``atol`` are classified by their
recomputed multiplier, because an interior-point solver leaves weakly active
constraints ~1e-3 MW off the bound.

Values where ``unique`` is False are one element of the set of derivatives (the
minimum-norm solution) and should not be read as *the* marginal emission rate.

Cost: one sparse LU of the reduced susceptance matrix for the PTDF rows of the
active limits, plus dense eigen-decompositions of blocks of size
(free linear-cost columns + active rows); blocks are as small as the coupling
allows (one per period without storage / ramps).  24 h of case1354pegase:
~0.04 s.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csg

from ..dcopf.state import SolvedState
from ..errors import InputError

_NULL_TOL = 1e-9  # eigenvalue threshold, relative, after equilibration
_TOUCH_TOL = 1e-6  # MW of change per MW of demand counted as "moves"
_RANGE_TOL = 1e-6  # component of db/dd in null(A')


@dataclass
class _QP:
    """Columns (variables) and candidate rows of the local equality-constrained QP."""

    x: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    h: np.ndarray
    c: np.ndarray
    g: np.ndarray
    hard: np.ndarray  # fixed by an equality (lb == ub): never weakly active
    A: sp.csr_matrix  # (m, n) rows
    R: sp.csr_matrix  # (m, N*T) d(rhs)/d(demand)
    dirn: np.ndarray  # (m,) 0 equality, +1 "<=" row, -1 ">=" row (expected multiplier sign)
    strict: np.ndarray  # (m,) active within the strict tolerance (else only within ``near``)
    kink: np.ndarray  # (n,) emitting columns at p = 0 that may go negative: emissions ef*max(p, 0) kink there
    kink_cost: np.ndarray  # (n,) $/MWh jump of the marginal cost at that kink (a carbon price on max(p, 0))
    cols: dict[str, tuple[int, int]] | None = None  # block -> (first column, elements); columns e*T + t
    row_kind: np.ndarray | None = None  # (m,) str: balance, flow, angle_max, angle_min, ramp_up, ...
    row_elem: np.ndarray | None = None  # (m,) element index (island, branch, gen, storage, segment, node)
    row_t: np.ndarray | None = None  # (m,) period
    shed_nodes: np.ndarray | None = None  # node of each element of the "shed" block


class _Rows:
    """Accumulates candidate rows: equalities, and inequalities within ``near`` of their bound."""

    def __init__(self, N: int, T: int) -> None:
        self.NT = N * T
        self.m = 0
        self.a: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.r: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.dirn: list[np.ndarray] = []
        self.strict: list[np.ndarray] = []
        self.info: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (kind, element, period) per row

    def add(self, k: int, a_rows: np.ndarray, a_cols: np.ndarray, a_vals: np.ndarray,
            dirn: np.ndarray | float = 0.0, strict: np.ndarray | bool = True,
            r_rows: np.ndarray | None = None, r_cols: np.ndarray | None = None,
            r_vals: np.ndarray | None = None, kind: str = "", elem: np.ndarray | int = -1,
            t: np.ndarray | int = -1) -> None:
        """Add ``k`` rows ``a x = b``; indices in ``a_rows`` / ``r_rows`` are local (0..k-1).

        ``dirn``: 0 for an equality, +1 for ``a x <= b``, -1 for ``a x >= b`` (the sign of
        the multiplier at an optimum); ``strict``: the row is active within the strict tolerance
        (else only within ``near``).
        """
        if k == 0:
            return
        self.a.append((a_rows + self.m, a_cols, a_vals))
        if r_rows is not None and r_cols is not None and r_vals is not None:
            self.r.append((r_rows + self.m, r_cols, r_vals))
        self.dirn.append(np.broadcast_to(np.asarray(dirn, float), (k,)).copy())
        self.strict.append(np.broadcast_to(np.asarray(strict, bool), (k,)).copy())
        self.info.append((np.full(k, kind, dtype=object), np.broadcast_to(np.asarray(elem, np.int64), (k,)).copy(),
                          np.broadcast_to(np.asarray(t, np.int64), (k,)).copy()))
        self.m += k

    def build(self, n: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
        def coo(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], ncol: int) -> sp.csr_matrix:
            if not parts:
                return sp.csr_matrix((self.m, ncol))
            r, c, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
            keep = v != 0
            return sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(self.m, ncol))

        dirn = np.concatenate(self.dirn) if self.dirn else np.zeros(0)
        strict = np.concatenate(self.strict) if self.strict else np.zeros(0, bool)
        return coo(self.a, n), coo(self.r, self.NT), dirn, strict


def _sensitivities(state: SolvedState, rows: np.ndarray, kind: str) -> np.ndarray:
    """(k, N) change of branch flow (``kind='flow'``, MW) or angle difference (rad) per MW injected
    at each node, the island's reference node balancing (zero column at reference nodes)."""
    net = state.net
    out = np.zeros((rows.size, net.n_node))
    if not rows.size or not net.nonref_nodes.size:
        return out
    op = (net.bf_red if kind == "flow" else net.incidence_red)[rows]
    out[:, net.nonref_nodes] = net.solve_b_red(op.toarray().T).T
    return out


def _build(state: SolvedState, ef: np.ndarray, c1: np.ndarray, co2_cap: bool | float | None, atol: float,
           rtol: float, near: float, kink_cost: np.ndarray | None = None) -> _QP:
    net, dt = state.net, float(state.dt)
    G, T = state.p.shape
    N, S = net.n_node, net.n_storage
    # ------------------------------------------------------------- columns
    cols: dict[str, tuple[int, int]] = {}  # block -> (offset, elements)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "lb", "ub", "h", "c", "g", "hard")}
    inj_node: list[np.ndarray] = []  # per block element: node or -1
    inj_sign: list[np.ndarray] = []
    off = 0

    def block(name: str, x: np.ndarray, lb: np.ndarray, ub: np.ndarray, h: np.ndarray, c: np.ndarray,
              g: np.ndarray, hard: np.ndarray, node: np.ndarray, sign: float) -> None:
        nonlocal off
        E = x.shape[0]
        cols[name] = (off, E)
        for key, val in (("x", x), ("lb", lb), ("ub", ub), ("h", h), ("c", c), ("g", g), ("hard", hard)):
            parts[key].append(np.broadcast_to(val, (E, T)).ravel())
        inj_node.append(np.repeat(node, T) if node.size else np.full(E * T, -1))
        inj_sign.append(np.full(E * T, sign))
        off += E * T

    col_t = lambda a: np.broadcast_to(np.asarray(a, float)[:, None], (np.asarray(a).size, T))  # noqa: E731
    # a unit emits only when it generates: the gradient of ef * max(p, 0) is 0 where p < 0
    may_absorb = (ef[:, None] > 0) & ~(np.asarray(state.pmin) >= -atol)
    g_p = np.where(may_absorb & (state.p < -atol), 0.0, col_t(ef))
    block("p", state.p, state.pmin, state.pmax, col_t(2.0 * net.gen_c2), c1, g_p,
          np.zeros((G, T), bool), net.gen_node, 1.0)
    kink_p = (may_absorb & (np.abs(state.p) <= atol)).ravel()
    if S and state.pc is not None and state.pd is not None and state.e is not None:
        zero = np.zeros((S, T))
        block("pc", state.pc, zero, col_t(net.st_p_charge), zero, zero, zero, col_t(net.st_p_charge <= 0),
              net.st_node, -1.0)
        block("pd", state.pd, zero, col_t(net.st_p_discharge), zero, zero, zero,
              col_t(net.st_p_discharge <= 0), net.st_node, 1.0)
        elb, eub = col_t(net.st_e_min).copy(), col_t(net.st_e_max).copy()
        elb[:, -1] = eub[:, -1] = net.st_e_final
        hard = np.zeros((S, T), bool)
        hard[:, -1] = True
        block("e", state.e, elb, eub, zero, zero, zero, hard, np.full(S, -1), 0.0)
    cap = None
    shed_nodes = np.zeros(0, np.int64)
    if state.voll is not None:
        fixed = np.repeat(net.node_fixed_demand[:, None], T, 1)
        cap = state.demand - fixed + np.maximum(fixed, 0.0)  # formulation.shed_limits
        sh_nodes = np.flatnonzero((cap > atol).any(axis=1))
        if sh_nodes.size:
            capn = cap[sh_nodes]
            none = capn <= atol
            zero = np.zeros(capn.shape)
            block("shed", state.shed[sh_nodes], zero, np.where(none, 0.0, np.inf), zero,
                  np.full(capn.shape, float(state.voll)), zero, none, sh_nodes, 1.0)
            shed_nodes = sh_nodes
    pwl_g = np.unique(net.pwl_gen)
    if pwl_g.size:
        seg_val = net.pwl_slope[:, None] * state.p[net.pwl_gen] + net.pwl_intercept[:, None]  # (K, T)
        _, zcol = np.unique(net.pwl_gen, return_inverse=True)
        z = np.full((pwl_g.size, T), -np.inf)
        np.maximum.at(z, zcol, seg_val)
        inf = np.full(z.shape, np.inf)
        zero = np.zeros(z.shape)
        block("z", z, -inf, inf, zero, np.ones(z.shape), zero, np.zeros(z.shape, bool), np.zeros(0, np.int64),
              0.0)
    x, lb, ub, h, c, g = (np.concatenate(parts[k]) for k in ("x", "lb", "ub", "h", "c", "g"))
    hard = np.concatenate(parts["hard"]).astype(bool) | (np.abs(ub - lb) <= atol)
    node = np.concatenate(inj_node)
    sign = np.concatenate(inj_sign)
    n = x.size
    ci = lambda name, e, t: cols[name][0] + np.asarray(e) * T + np.asarray(t)  # noqa: E731

    # ------------------------------------------------------------- rows
    rows = _Rows(N, T)
    inj = np.flatnonzero(node >= 0)
    inj_t = inj % T  # every block is (element, period) in row-major order at a multiple of T
    # island balances (eq): sum of injections in the island = demand
    island_ref = np.full(int(net.node_island.max()) + 1 if N else 0, -1, np.int64)
    island_ref[net.node_island[net.ref_node]] = np.arange(net.ref_node.size)
    isl = island_ref[net.node_island]
    n_isl = net.ref_node.size
    live = isl[node[inj]] >= 0
    nodes_live = np.flatnonzero(isl >= 0)
    rows.add(n_isl * T, isl[node[inj[live]]] * T + inj_t[live], inj[live], sign[inj[live]],
             r_rows=np.repeat(isl[nodes_live] * T, T) + np.tile(np.arange(T), nodes_live.size),
             r_cols=np.repeat(nodes_live * T, T) + np.tile(np.arange(T), nodes_live.size),
             r_vals=np.ones(nodes_live.size * T), kind="balance", elem=np.repeat(np.arange(n_isl), T),
             t=np.tile(np.arange(T), n_isl))
    # branch-flow and angle limits (ineq): PTDF rows on the injections
    rate = np.where(np.isfinite(net.br_rate), net.br_rate, np.inf)[:, None]
    conducting = (net.br_b != 0)[:, None]
    slack_f = rate - np.abs(state.flow)
    tol_f = rate * rtol + atol
    ang = state.theta[net.br_f] - state.theta[net.br_t]
    amax = np.where(np.isfinite(net.br_angmax), net.br_angmax, np.inf)[:, None]
    amin = np.where(np.isfinite(net.br_angmin), net.br_angmin, -np.inf)[:, None]
    by_t = [inj[inj_t == t] for t in range(T)]
    for slack, tol, dirn, kind, wide, label in (
            (slack_f, tol_f, np.sign(state.flow), "flow", near, "flow"),
            (amax - ang, 1e-7 + rtol * np.abs(amax), np.ones_like(ang), "angle", 0.0, "angle_max"),
            (ang - amin, 1e-7 + rtol * np.abs(amin), -np.ones_like(ang), "angle", 0.0, "angle_min")):
        tol = np.broadcast_to(tol, slack.shape)
        with np.errstate(invalid="ignore"):
            cand = conducting & np.isfinite(slack) & (slack <= np.maximum(tol, wide))
        lines, ts = np.nonzero(cand)
        if not lines.size:
            continue
        uniq, li = np.unique(lines, return_inverse=True)
        sens = _sensitivities(state, uniq, kind)  # (u, N)
        k = lines.size
        # each row touches the injection columns of its period
        rr = np.concatenate([np.full(by_t[t].size, r) for r, t in enumerate(ts)])
        cc = np.concatenate([by_t[t] for t in ts])
        vv = sens[li[rr], node[cc]] * sign[cc]
        d = np.where(dirn[lines, ts] == 0, 1.0, dirn[lines, ts])
        rows.add(k, rr, cc, vv, dirn=d, strict=slack[lines, ts] <= tol[lines, ts],
                 r_rows=np.repeat(np.arange(k), N),
                 r_cols=(np.arange(N)[None, :] * T + ts[:, None]).ravel(), r_vals=sens[li].ravel(), kind=label,
                 elem=lines, t=ts)
    # ramps (ineq): p_t - p_{t-1} <= ramp_up * dt, >= -ramp_down * dt
    if T > 1:
        dp = state.p[:, 1:] - state.p[:, :-1]
        for lim, sgn, label in ((net.gen_ramp_up, 1.0, "ramp_up"), (net.gen_ramp_down, -1.0, "ramp_down")):
            fin = np.isfinite(lim)
            limdt = np.where(fin, lim, 0.0)[:, None] * dt
            slack = np.where(fin[:, None], limdt - sgn * dp, np.inf)
            tol = np.broadcast_to(atol + rtol * limdt, slack.shape)
            gg, tt = np.nonzero(slack <= np.maximum(tol, near))
            k = gg.size
            rows.add(k, np.repeat(np.arange(k), 2), np.c_[ci("p", gg, tt + 1), ci("p", gg, tt)].ravel(),
                     np.tile([1.0, -1.0], k), dirn=sgn, strict=slack[gg, tt] <= tol[gg, tt], kind=label, elem=gg,
                     t=tt + 1)
    # storage dynamics (eq): e_t - e_{t-1} - dt*eta_c*pc_t + dt/eta_d*pd_t = 0
    if "e" in cols:
        ss, tt = np.divmod(np.arange(S * T), T)
        k = S * T
        r0 = np.arange(k)
        has_prev = tt > 0
        rr = np.r_[r0, r0[has_prev], r0, r0]
        cc = np.r_[ci("e", ss, tt), ci("e", ss[has_prev], tt[has_prev] - 1), ci("pc", ss, tt), ci("pd", ss, tt)]
        vv = np.r_[np.ones(k), -np.ones(int(has_prev.sum())), -dt * net.st_eta_charge[ss],
                   dt / net.st_eta_discharge[ss]]
        rows.add(k, rr, cc, vv, kind="storage", elem=ss, t=tt)
    # pwl segments (ineq): z >= slope p + intercept, as the row z - slope p = intercept
    if pwl_g.size:
        zval = x[ci("z", zcol, 0)[:, None] + np.arange(T)[None, :]]
        slack = zval - seg_val
        tol = atol + rtol * np.abs(zval)
        kk, tt = np.nonzero(slack <= np.maximum(tol, near))
        k = kk.size
        rows.add(k, np.repeat(np.arange(k), 2), np.c_[ci("z", zcol[kk], tt), ci("p", net.pwl_gen[kk], tt)].ravel(),
                 np.c_[np.ones(k), -net.pwl_slope[kk]].ravel(), dirn=-1.0, strict=slack[kk, tt] <= tol[kk, tt],
                 kind="pwl", elem=kk, t=tt)
    # load-shedding caps (ineq): shed <= cap(d)
    if "shed" in cols and cap is not None:
        capn = cap[shed_nodes]
        slack = np.where(capn > atol, capn - state.shed[shed_nodes], np.inf)
        tol = atol + rtol * capn
        ee, tt = np.nonzero(slack <= np.maximum(tol, near))
        k = ee.size
        rows.add(k, np.arange(k), ci("shed", ee, tt), np.ones(k), dirn=1.0, strict=slack[ee, tt] <= tol[ee, tt],
                 r_rows=np.arange(k), r_cols=shed_nodes[ee] * T + tt, r_vals=np.ones(k), kind="shed_cap",
                 elem=shed_nodes[ee], t=tt)
    # CO2 cap (ineq): dt * sum ef p <= cap, when binding (True) or within tolerance of the given cap
    if co2_cap is not None and co2_cap is not False:
        strict_cap: bool | None = True
        if not isinstance(co2_cap, bool):
            cap_t = float(co2_cap)
            slack_cap = cap_t - dt * float(ef @ state.p.sum(axis=1))
            tol_cap = 1e-6 * max(1.0, abs(cap_t))
            strict_cap = slack_cap <= tol_cap
            if slack_cap > max(tol_cap, 1e-4 * max(1.0, abs(cap_t))):
                strict_cap = None  # not binding: no row
        if strict_cap is not None:
            pc_ = np.arange(G * T)
            rows.add(1, np.zeros(G * T, np.int64), pc_, dt * g[pc_], dirn=1.0, strict=bool(strict_cap),
                     kind="co2_cap")
    A, R, dirn, strict = rows.build(n)
    kink = np.zeros(n, bool)
    kink[cols["p"][0]:cols["p"][0] + kink_p.size] = kink_p
    kcost = np.zeros(n)
    if kink_cost is not None:
        kc = np.broadcast_to(np.asarray(kink_cost, float).reshape(G, -1), (G, T)).ravel()
        kcost[cols["p"][0]:cols["p"][0] + kc.size] = np.where(kink_p, kc, 0.0)
    kinds, elems, ts_ = (np.concatenate([r[i] for r in rows.info]) if rows.info else np.zeros(0, np.int64)
                         for i in range(3))
    return _QP(x=x, lb=lb, ub=ub, h=h, c=c, g=g, hard=hard, A=A, R=R, dirn=dirn, strict=strict, kink=kink,
               kink_cost=kcost, cols=cols, row_kind=kinds, row_elem=elems, row_t=ts_, shed_nodes=shed_nodes)


def _orth(m: np.ndarray) -> np.ndarray:
    if m.size == 0:
        return m.reshape(m.shape[0], 0)
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, s > 1e-8 * max(1.0, s.max(initial=0.0))]


class _Block:
    """Dense factorisation of one independent block of the reduced KKT system

    ``[[0, Al'], [Al, -Aq Hq^-1 Aq']] [xl; y] = [fl; fy - Aq Hq^-1 fq]``.
    """

    def __init__(self, Aq: np.ndarray, Al: np.ndarray, hq: np.ndarray) -> None:
        self.Aq, self.Al, self.hinv = Aq, Al, 1.0 / hq
        nl, nr = Al.shape[1], Al.shape[0]
        self.nl, self.nr = nl, nr
        S = (Aq * self.hinv[None, :]) @ Aq.T
        M = np.zeros((nl + nr, nl + nr))
        M[:nl, nl:] = Al.T
        M[nl:, :nl] = Al
        M[nl:, nl:] = -S
        d = np.ones(nl + nr)
        for _ in range(12):  # symmetric Ruiz equilibration
            r = np.sqrt(np.abs(M * d[:, None] * d[None, :]).max(axis=1, initial=0.0))
            r[r == 0] = 1.0
            d /= r
        w, V = sla.eigh(M * d[:, None] * d[None, :])
        big = np.abs(w) > _NULL_TOL * max(np.abs(w).max(initial=0.0), 1e-300)
        self.d, self.V, self.winv = d, V[:, big], 1.0 / w[big]
        nul = V[:, ~big] * d[:, None]
        self.X0 = _orth(nul[:nl])  # cost-neutral re-dispatch directions (linear columns)
        self.Y0 = _orth(nul[nl:])  # dependent active rows

    def solve_y(self, fq: np.ndarray, fl: np.ndarray) -> np.ndarray:
        """y-part of K^+ [fq; fl; 0] for rhs columns (a solution when consistent)."""
        rhs = np.vstack([fl, -(self.Aq * self.hinv[None, :]) @ fq])
        z = self.d[:, None] * (self.V @ (self.winv[:, None] * (self.V.T @ (self.d[:, None] * rhs))))
        return z[self.nl:]

    def solve(self, fq: np.ndarray, fl: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rhs = np.vstack([fl, fy - (self.Aq * self.hinv[None, :]) @ fq])
        z = self.d[:, None] * (self.V @ (self.winv[:, None] * (self.V.T @ (self.d[:, None] * rhs))))
        xl, y = z[:self.nl], z[self.nl:]
        xq = self.hinv[:, None] * (fq - self.Aq.T @ y)
        return xq, xl, y


class _System:
    """The reduced KKT system for given active rows and free columns, split into blocks."""

    def __init__(self, qp: _QP, rows: np.ndarray, free: np.ndarray) -> None:
        self.rows, self.free = rows, free
        A = sp.csr_matrix(qp.A[rows][:, free])
        m, k = A.shape
        adj = sp.bmat([[None, A], [A.T, None]], format="csr") if m and k else sp.csr_matrix((m + k, m + k))
        n_comp, lab = csg.connected_components(adj, directed=False)
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, _Block]] = []
        rl, cl = lab[:m], lab[m:]
        r_order, c_order = np.argsort(rl, kind="stable"), np.argsort(cl, kind="stable")
        r_split = np.split(r_order, np.searchsorted(rl[r_order], np.arange(1, n_comp)))
        c_split = np.split(c_order, np.searchsorted(cl[c_order], np.arange(1, n_comp)))
        Acsc = A.tocsc()
        for rr, cc in zip(r_split, c_split, strict=True):
            hq = qp.h[free[cc]]
            q, lin = cc[hq > 0], cc[hq <= 0]
            if not rr.size and not lin.size:
                continue  # quadratic columns in no active row: they never move
            sub = Acsc[:, np.r_[q, lin]].tocsr()[rr].toarray()
            blk = _Block(sub[:, :q.size], sub[:, q.size:], qp.h[free[q]])
            self.blocks.append((rr, q, lin, blk))


def locational_marginal_emissions(state: SolvedState, ef: np.ndarray, *, c1: np.ndarray | None = None,
                                  co2_cap: bool | float | None = None, atol: float = 1e-4, rtol: float = 1e-6,
                                  near: float = 2e-3,
                                  kink_cost: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Marginal change in system emissions per MWh of extra demand at each node and period.

    Parameters
    ----------
    state : SolvedState
        The solved primal-dual point.
    ef : (G,) array
        Emission factors in tCO2/MWh.
    c1 : (G,) or (G, T) array, optional
        Linear costs used in the solve, $/MWh, including any carbon-price adder but
        not a CO2-cap dual (default ``state.net.gen_c1``; pass ``params.c1.value``
        when a carbon price was applied).  Only used to recompute the multipliers
        that classify (weakly) active constraints; given the active set the LME
        values do not depend on it.  A RuntimeWarning says when the solution is not
        stationary for these costs.
    co2_cap : float or bool, optional
        The CO2 cap of the solve in tCO2 over the horizon (or True: "it was
        binding").  When total emissions ``dt * sum ef p`` sit at the cap, the cap
        row joins the active set (its multiplier is recomputed), emissions are
        pinned and the LME is 0 wherever it is unique; a binding cap whose
        multiplier comes out zero is weakly active and flags every LME.
    atol, rtol : float
        Activity tolerances (MW, relative), as in :mod:`nodalopt.dcopf.degeneracy`.
    kink_cost : (G,) or (G, T) array, optional
        $/MWh: a carbon price paid on ``max(p, 0)`` only, by units that may go negative
        (``carbon price x ef``).  Such a unit at ``p = 0`` (within ``atol``) sits on a kink of its
        cost: it is held there while its balance multiplier lies strictly between the cost on
        the absorbing side (``c1``, which must then exclude this adder) and the cost on the
        generating side (``c1 + kink_cost``); at either end it is weakly held and flags the LME.
    near : float
        MW: constraints within ``near`` of their bound (but outside ``atol``) are
        candidates too.  An interior-point solver leaves a *weakly* active
        constraint (zero multiplier) ~1e-3 MW from its bound; such candidates are
        classified by their recomputed multiplier (zero: weakly active; right
        sign: active; wrong sign: inactive).

    Returns
    -------
    lme : (N, T) tCO2/MWh
    unique : (N, T) bool
        False where the derivative is not unique (see the module docstring).
    """
    net = state.net
    G, T = state.p.shape
    N = net.n_node
    ef = np.asarray(ef, dtype=float).ravel()
    if ef.size != G or not np.isfinite(ef).all():
        raise InputError(f"locational_marginal_emissions: need {G} finite emission factors, got {ef.size}.")
    c1v = np.asarray(net.gen_c1 if c1 is None else c1, dtype=float)
    c1v = np.broadcast_to(c1v[:, None] if c1v.ndim == 1 else c1v, (G, T))
    a = active_set(state, ef, c1v, co2_cap=co2_cap, atol=atol, rtol=rtol, near=near,
                   caller="locational_marginal_emissions", kink_cost=kink_cost)
    qp, weak_col, weak_row, rows_w, free_w, sys_w = a.qp, a.weak_col, a.weak_row, a.rows_w, a.free_w, a.system
    fixed = a.fixed
    pos_w = np.full(qp.x.size, -1, np.int64)
    pos_w[free_w] = np.arange(free_w.size)

    lme = np.zeros(N * T)
    bad = np.zeros(N * T, bool)
    # watch functionals: released weak columns and rows, plus units of ambiguous re-dispatch
    # (a unit that may absorb, sitting at p = 0, and moved by the perturbation: emissions ef * max(p, 0)
    # have different slopes on the two sides)
    watch_cols: list[np.ndarray] = [np.flatnonzero(weak_col | (qp.kink & ~fixed))]
    watch_rows = np.flatnonzero(weak_row)
    blocks = sys_w.blocks
    gproj_supp: list[np.ndarray] = []
    for rr, q, lin, blk in blocks:
        Rc = qp.R[rows_w[rr]]
        gl = qp.g[free_w[lin]]
        gp = blk.X0 @ (blk.X0.T @ gl) if blk.X0.size else np.zeros_like(gl)
        if np.abs(gp).max(initial=0.0) > 1e-9 * max(1.0, np.abs(gl).max(initial=0.0)):
            gproj_supp.append(free_w[lin[np.abs(gp) > 1e-9 * np.abs(gp).max()]])
        yy = blk.solve_y(qp.g[free_w[q]][:, None], (gl - gp)[:, None])
        lme += np.asarray(Rc.T @ yy).ravel()
        if blk.Y0.size:  # demand directions outside range(A): active set must change
            comp = np.abs(np.asarray(Rc.T @ blk.Y0))
            bad |= comp.max(axis=1) > _RANGE_TOL
    watch_cols.extend(gproj_supp)
    wc = np.unique(np.concatenate(watch_cols)) if watch_cols else np.zeros(0, np.int64)
    n_watch = wc.size + watch_rows.size
    if n_watch:
        # W (n_watch x n_free_w): functionals on the free columns of the released system
        W = sp.vstack([sp.csr_matrix((np.ones(wc.size), (np.arange(wc.size), pos_w[wc])),
                                     shape=(wc.size, free_w.size)),
                       qp.A[watch_rows][:, free_w]]).tocsc()
        vals = np.zeros((n_watch, N * T))
        wx0: list[np.ndarray] = []
        for rr, q, lin, blk in blocks:
            Wq, Wl = W[:, q].toarray(), W[:, lin].toarray()
            if not (Wq.any() or Wl.any()):
                if blk.X0.size:
                    wx0.append(np.zeros((n_watch, blk.X0.shape[1])))
                continue
            yy = blk.solve_y(Wq.T, Wl.T)  # (nr, n_watch)
            vals += np.asarray(qp.R[rows_w[rr]].T @ yy).T
            if blk.X0.size:
                wx0.append(Wl @ blk.X0)
        P = np.hstack(wx0) if wx0 else np.zeros((n_watch, 0))
        if P.size:
            Q = _orth(P)
            vals = vals - Q @ (Q.T @ vals)
        bad |= np.abs(vals).max(axis=0) > _TOUCH_TOL
    return lme.reshape(N, T), ~bad.reshape(N, T)


@dataclass
class ActiveSet:
    """The classified active set of a solved DC-OPF and its reduced KKT system (public for
    :mod:`nodalopt.signals`; see :func:`active_set`).

    Columns are the local QP's variables (generator outputs, storage, shedding, piecewise-linear
    epigraphs; ``qp.x`` and bounds), rows its candidate constraints (``qp.A x = qp.R d`` with
    ``qp.dirn`` the inequality sense).  ``fixed``: columns held at a bound (strongly active or
    equality-fixed); ``weak_col`` / ``weak_row``: active with a zero multiplier (released);
    ``keep``: rows in the system; ``system``: the KKT system on ``rows_w`` x ``free_w``;
    ``y``: multipliers of all candidate rows with every candidate active (``rc = grad + A' y``);
    ``expect_v``: +1 for a column at (or near) its lower bound, -1 at its upper bound.
    """

    qp: _QP
    grad: np.ndarray
    rc: np.ndarray
    y: np.ndarray
    at_bound: np.ndarray
    expect_v: np.ndarray
    fixed: np.ndarray
    weak_col: np.ndarray
    weak_row: np.ndarray
    keep: np.ndarray
    rows_w: np.ndarray
    free_w: np.ndarray
    system: _System


def active_set(state: SolvedState, ef: np.ndarray, c1: np.ndarray, *, co2_cap: bool | float | None = None,
               atol: float = 1e-4, rtol: float = 1e-6, near: float = 2e-3,
               caller: str = "active_set", kink_cost: np.ndarray | None = None) -> ActiveSet:
    """Classify the constraints of a solved DC-OPF (strongly / weakly active, inactive) and factorise
    the reduced KKT system with the weakly active ones released.

    Parameters are those of :func:`locational_marginal_emissions` (``c1`` as (G, T)); ``ef`` gives
    the emission gradient ``qp.g`` (zeros when only prices are wanted); ``caller`` names the public
    function in the stationarity warning.
    """
    qp = _build(state, ef, c1, co2_cap, atol, rtol, near, kink_cost)
    with np.errstate(invalid="ignore"):
        d_lb, d_ub = qp.x - qp.lb, qp.ub - qp.x  # inf where unbounded
        s_lb = np.isfinite(qp.lb) & (d_lb <= atol + rtol * np.abs(qp.lb))
        s_ub = np.isfinite(qp.ub) & (d_ub <= atol + rtol * np.abs(qp.ub)) & ~s_lb
        n_lb = ~s_lb & ~s_ub & (d_lb <= near)
        n_ub = ~s_lb & ~s_ub & ~n_lb & (d_ub <= near)
    held = qp.kink & (qp.kink_cost > 0)  # on a cost kink at p = 0: held like a bound
    strict_v, near_v = ((s_lb | s_ub) & ~qp.hard) | held, (n_lb | n_ub) & ~qp.hard & ~held
    expect_v = np.where(s_lb | n_lb, 1.0, -1.0)  # sign of the bound multiplier (reduced cost)
    lam_scale = max(1.0, float(np.nanmax(np.abs(state.lam), initial=0.0)))
    tol_rc, tol_near = 1e-6 * lam_scale, 1e-4 * lam_scale

    # 1. multipliers with every candidate constraint active -> strongly / weakly active / inactive
    fixed_s = qp.hard | strict_v | near_v
    rows_s = np.arange(qp.A.shape[0])
    sys_s = _System(qp, rows_s, np.flatnonzero(~fixed_s))
    y = np.zeros(qp.A.shape[0])
    grad = qp.c + qp.h * qp.x
    for rr, q, lin, blk in sys_s.blocks:
        _, _, yy = blk.solve(-grad[sys_s.free[q]][:, None], -grad[sys_s.free[lin]][:, None],
                             np.zeros((rr.size, 1)))
        y[rows_s[rr]] = yy[:, 0]
    rc = grad + qp.A.T @ y  # reduced cost of every column ($/MWh); ~0 on free columns
    resid = float(np.abs(rc[~fixed_s]).max(initial=0.0))
    if resid > 1e-3 * lam_scale:
        warnings.warn(f"{caller}: the solution is not stationary for the given linear "
                      f"costs (residual {resid:.3g} $/MWh); pass c1= the costs used in the solve (with any "
                      "carbon adder). Uniqueness flags may be wrong.", RuntimeWarning, stacklevel=3)
    weak_col = (strict_v & (np.abs(rc) <= tol_rc)) | (near_v & (np.abs(rc) <= tol_near)) \
        | (held & (np.abs(rc + qp.kink_cost) <= tol_rc))
    fixed = qp.hard | (strict_v & ~weak_col) | (near_v & ~weak_col & (rc * expect_v > 0))
    ineq = qp.dirn != 0
    row_scale = np.asarray(abs(qp.A).max(axis=1).todense()).ravel() if qp.A.shape[0] else np.zeros(0)
    ym = np.abs(y) * row_scale
    weak_row = ineq & ((qp.strict & (ym <= tol_rc)) | (~qp.strict & (ym <= tol_near)))
    keep = ~ineq | (qp.strict & ~weak_row) | (~qp.strict & ~weak_row & (y * qp.dirn > 0))

    # 2. the system with weakly active constraints released
    rows_w = np.flatnonzero(keep)
    free_w = np.flatnonzero(~fixed)
    return ActiveSet(qp=qp, grad=grad, rc=rc, y=y, at_bound=strict_v | near_v, expect_v=expect_v, fixed=fixed,
                     weak_col=weak_col, weak_row=weak_row, keep=keep, rows_w=rows_w, free_w=free_w,
                     system=_System(qp, rows_w, free_w))


def kkt_system(qp: _QP, rows: np.ndarray, free: np.ndarray) -> _System:
    """The reduced KKT system of :attr:`ActiveSet.qp` for other active ``rows`` / ``free`` columns
    (e.g. with the weakly active constraints held instead of released); blocks as in :class:`ActiveSet`."""
    return _System(qp, rows, free)
