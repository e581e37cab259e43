"""Feeder subproblems of the ADMM decomposition as batched QPs (one sparsity pattern per group).

Each feeder copy's subproblem is the LinDistFlow model of :mod:`nodalopt.distribution.lindistflow`
(same variables, same rows, same signs, so the duals are the same prices) plus the ADMM term
``rho/2 * sum_t (P_sub,t - target_t)^2``, written in the QP form of :mod:`nodalopt.admm.qp`:

    minimize 1/2 x'Px + q'x  subject to  l <= A x <= u.

Copies of one template with the same number of EVs and the same substation-limit setting share
one pattern; their values are built for all copies at once (arrays of shape (copies, entries)),
so there is no loop over copies, nodes or elements.  The row and column layout is described by
:class:`Layout`, which the coordinator uses to read solutions and duals back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..distribution.lindistflow import POLYGON_SIDES, LossTerms
from ..distribution.td import Forest
from ..model.core import Entries, Layout
from .qp import QPBatch, QPPattern

INF = np.inf


@dataclass
class Group:
    """Copies of one template sharing a QP pattern."""

    members: np.ndarray  # (K,) copy (instance) indices in the forest
    n_node: int
    nodes: np.ndarray  # (K, n) global node indices
    branches: np.ndarray  # (K, B) global branch positions
    el: dict[str, np.ndarray]  # kind -> (K, count) global element indices
    layout: Layout
    pattern: QPPattern | None = None
    # entry recipe: COO position of each raw entry in the CSC data arrays
    A_pos: np.ndarray | None = None
    P_pos: np.ndarray | None = None


def groups(fo: Forest) -> list[Group]:
    """Partition the forest's copies by (template size, resources, EVs, substation limit)."""
    el = fo.elements
    sizes = np.diff(np.r_[fo.inst_node0, fo.n_node])
    counts = {k: np.bincount(el[k]["inst"], minlength=fo.n_inst) for k in ("load", "pv", "dg", "flex", "st", "ev")}
    # copies of one template have identical local structure; the key below identifies it
    key = np.stack([sizes] + [counts[k] for k in ("load", "pv", "dg", "flex", "st", "ev")]
                   + [np.isfinite(fo.inst_sub_mva).astype(np.int64)], axis=1)
    # the template itself: parent structure relative to the copy's root
    rel_parent = np.where(fo.parent >= 0, fo.parent - fo.inst_node0[fo.inst_of_node], -1)
    sig: dict[tuple[int, ...], list[int]] = {}
    for i in range(fo.n_inst):  # one tuple per copy (not per node or element)
        a, b = fo.inst_node0[i], fo.inst_node0[i] + sizes[i]
        sk = (*key[i].tolist(), hash(rel_parent[a:b].tobytes()))
        sig.setdefault(sk, []).append(i)
    out = []
    bpos = np.full(fo.n_node, -1, np.int64)
    bpos[fo.child] = np.arange(fo.n_branch)
    for members_list in sig.values():
        members = np.asarray(members_list, np.int64)
        n = int(sizes[members[0]])
        nodes = fo.inst_node0[members][:, None] + np.arange(n)[None, :]
        branches = bpos[nodes[:, 1:]]
        els: dict[str, np.ndarray] = {}
        for k in ("load", "pv", "dg", "flex", "st", "ev"):
            first = np.searchsorted(el[k]["inst"], members)
            els[k] = first[:, None] + np.arange(int(counts[k][members[0]]))[None, :]
        out.append(Group(members=members, n_node=n, nodes=nodes, branches=branches, el=els,
                         layout=Layout(T=0)))
    return out


def _layout(g: Group, fo: Forest, T: int) -> Layout:
    B = g.n_node - 1
    k = {name: g.el[name].shape[1] for name in g.el}
    lay = Layout(T=T)
    for name, c in (("P", B), ("Q", B), ("v", B), ("psub", 1), ("qsub", 1), ("pv", k["pv"]), ("dg", k["dg"]),
                    ("flex", k["flex"]), ("pc", k["st"]), ("pd", k["st"]), ("e", k["st"]), ("ev", k["ev"])):
        lay.add_col(name, c)
    rated = np.isfinite(fo.rate[g.branches[0]])
    has_sub = bool(np.isfinite(fo.inst_sub_mva[g.members[0]]))
    for name, c in (("pbal", g.n_node), ("qbal", g.n_node), ("vdef", B), ("vlim", B),
                    ("poly", POLYGON_SIDES * int(rated.sum())), ("sub", POLYGON_SIDES if has_sub else 0),
                    ("pv", k["pv"]), ("dg", k["dg"]), ("flex", k["flex"]), ("pc", k["st"]), ("pd", k["st"]),
                    ("e", k["st"]), ("ev", k["ev"]), ("stdyn", k["st"])):
        lay.add_row(name, c)
    # energy rows (one per EV / shiftable load, not per period) go last
    lay.add_row("evE", k["ev"], per_period=False)
    lay.add_row("flexE", k["flex"], per_period=False)
    return lay


def build_batch(g: Group, fo: Forest, T: int, dt: float, lt: LossTerms, pfix: np.ndarray, qfix: np.ndarray,
                pv_avail: np.ndarray, flex_energy: np.ndarray, rho: float | np.ndarray, target: np.ndarray
                ) -> QPBatch:
    """The QP batch of group ``g`` (values for all its copies).

    ``pfix, qfix`` (M, T) node withdrawals, ``pv_avail`` (Npv, T), ``flex_energy`` (Nflex,) in forest
    numbering; ``rho`` (K,) or scalar and ``target`` (K, T) the ADMM term of each copy.
    """
    lay = _layout(g, fo, T)
    g.layout = lay
    K, n, B = g.members.size, g.n_node, g.n_node - 1
    t = np.arange(T)
    el = fo.elements
    br = g.branches  # (K, B)
    tmpl_b = br[0]
    # local structure (identical across the group's copies)
    par_local = fo.parent[g.nodes[0]] - g.nodes[0, 0]  # (n,) -1 at root
    child_local = np.arange(1, n)
    parent_of_b = par_local[child_local]  # (B,)
    bcol = np.arange(B)
    # branch values per copy (K, B) and per copy-period (K, B, T)
    r, x, kp, kc = fo.r[tmpl_b], fo.x[tmpl_b], fo.kp[tmpl_b], fo.kc[tmpl_b]
    z2 = r**2 + x**2
    aP, aQ, aW = lt.aP[br], lt.aQ[br], lt.aW[br]  # (K, B, T)
    prox, P0, Q0 = lt.prox[br], lt.P0[br], lt.Q0[br]
    g_sh, b_sh = fo.g_sh[g.nodes[0]], fo.b_sh[g.nodes[0]]
    vroot = fo.v_root[g.nodes[:, 0]]  # (K,)
    par_is_root = parent_of_b == 0
    par_b = np.where(par_is_root, 0, parent_of_b - 1)  # branch feeding the parent (when not root)

    A = Entries(K=K)
    Pm = Entries(K=K)
    q = np.zeros((K, lay.n))
    lo = np.full((K, lay.m), -INF)
    hi = np.full((K, lay.m), INF)

    def bt(arr: np.ndarray) -> np.ndarray:
        """(K, B, T) -> (K, B*T) in element-major order."""
        return arr.reshape(K, -1)

    eB, tB = np.repeat(bcol, T), np.tile(t, B)
    ch_of_eB = child_local[eB]
    par_of_eB = parent_of_b[eB]
    # ---- active balance rows (node, t)
    A.add(lay.row("pbal", par_of_eB, tB), lay.col("P", eB, tB), 1.0)
    A.add(lay.row("pbal", ch_of_eB, tB), lay.col("P", eB, tB), bt(-1.0 + r[None, :, None] * aP))
    A.add(lay.row("pbal", ch_of_eB, tB), lay.col("Q", eB, tB), bt(r[None, :, None] * aQ))
    A.add(lay.row("pbal", ch_of_eB, tB), lay.col("v", eB, tB), np.repeat(g_sh[child_local], T)[None, :])
    nr = ~par_is_root[eB]
    A.add(lay.row("pbal", ch_of_eB[nr], tB[nr]), lay.col("v", par_b[eB][nr], tB[nr]),
          bt(r[None, :, None] * aW * kp[None, :, None])[:, nr])
    # ---- reactive balance rows
    A.add(lay.row("qbal", par_of_eB, tB), lay.col("Q", eB, tB), 1.0)
    A.add(lay.row("qbal", ch_of_eB, tB), lay.col("Q", eB, tB), bt(-1.0 + x[None, :, None] * aQ))
    A.add(lay.row("qbal", ch_of_eB, tB), lay.col("P", eB, tB), bt(x[None, :, None] * aP))
    A.add(lay.row("qbal", ch_of_eB, tB), lay.col("v", eB, tB), -np.repeat(b_sh[child_local], T)[None, :])
    A.add(lay.row("qbal", ch_of_eB[nr], tB[nr]), lay.col("v", par_b[eB][nr], tB[nr]),
          bt(x[None, :, None] * aW * kp[None, :, None])[:, nr])
    A.add(lay.row("pbal", 0, t), lay.col("psub", 0, t), -1.0)
    A.add(lay.row("qbal", 0, t), lay.col("qsub", 0, t), -1.0)
    # constants of the balances: fixed withdrawals, root shunt, losses through the root voltage
    node_g = g.nodes  # (K, n)
    bal_p = -pfix[node_g]  # (K, n, T)
    bal_q = -qfix[node_g]
    bal_p[:, 0, :] -= g_sh[0] * vroot[:, None]
    bal_q[:, 0, :] += b_sh[0] * vroot[:, None]
    rb = np.flatnonzero(par_is_root)
    if rb.size:
        bal_p[:, child_local[rb], :] -= r[None, rb, None] * aW[:, rb, :] * kp[None, rb, None] * vroot[:, None, None]
        bal_q[:, child_local[rb], :] -= x[None, rb, None] * aW[:, rb, :] * kp[None, rb, None] * vroot[:, None, None]
    lo[:, lay.rslice("pbal")] = hi[:, lay.rslice("pbal")] = bal_p.reshape(K, -1)
    lo[:, lay.rslice("qbal")] = hi[:, lay.rslice("qbal")] = bal_q.reshape(K, -1)
    # ---- resources in the balances
    def local_node(kind: str) -> np.ndarray:
        return el[kind]["node"][g.el[kind][0]] - g.nodes[0, 0]

    def put(kind: str, var: str, sign: float, row: str = "pbal", coef: np.ndarray | None = None) -> None:
        cnt = g.el[kind].shape[1]
        if not cnt:
            return
        e, tt = np.repeat(np.arange(cnt), T), np.tile(t, cnt)
        val: np.ndarray | float = sign if coef is None else sign * np.repeat(coef, T)[None, :]
        A.add(lay.row(row, local_node(kind)[e], tt), lay.col(var, e, tt), val)

    put("pv", "pv", -1.0)
    put("pv", "pv", -1.0, "qbal", el["pv"]["tan"][g.el["pv"][0]])
    put("dg", "dg", -1.0)
    put("flex", "flex", 1.0)
    put("flex", "flex", 1.0, "qbal", el["flex"]["tan"][g.el["flex"][0]])
    put("st", "pc", 1.0)
    put("st", "pd", -1.0)
    put("ev", "ev", 1.0)
    # ---- voltage drop rows: v_b - kc (kp v_par - 2 r P - 2 x Q + z2 L) == 0
    A.add(lay.row("vdef", eB, tB), lay.col("v", eB, tB), 1.0)
    A.add(lay.row("vdef", eB, tB), lay.col("P", eB, tB), bt(kc[None, :, None] * (2 * r[None, :, None]
                                                                                   - z2[None, :, None] * aP)))
    A.add(lay.row("vdef", eB, tB), lay.col("Q", eB, tB), bt(kc[None, :, None] * (2 * x[None, :, None]
                                                                                   - z2[None, :, None] * aQ)))
    coef_par = kc[None, :, None] * kp[None, :, None] * (1.0 + z2[None, :, None] * aW)  # (K, B, T)
    A.add(lay.row("vdef", eB[nr], tB[nr]), lay.col("v", par_b[eB][nr], tB[nr]), -bt(coef_par)[:, nr])
    vrhs = np.zeros((K, B, T))
    if rb.size:
        vrhs[:, rb, :] = coef_par[:, rb, :] * vroot[:, None, None]
    lo[:, lay.rslice("vdef")] = hi[:, lay.rslice("vdef")] = vrhs.reshape(K, -1)
    # ---- voltage limits
    A.add(lay.row("vlim", eB, tB), lay.col("v", eB, tB), 1.0)
    vmin = fo.vm_min[g.nodes[0, 1:]]
    vmax = fo.vm_max[g.nodes[0, 1:]]
    lo[:, lay.rslice("vlim")] = np.repeat(np.where(np.isfinite(vmin) & (vmin > 0), vmin**2, -INF), T)[None, :]
    hi[:, lay.rslice("vlim")] = np.repeat(np.where(np.isfinite(vmax), vmax**2, INF), T)[None, :]
    # ---- branch polygons
    rated = np.flatnonzero(np.isfinite(fo.rate[tmpl_b]))
    if rated.size:
        th = 2 * np.pi * np.arange(POLYGON_SIDES) / POLYGON_SIDES
        side = np.repeat(np.arange(POLYGON_SIDES), rated.size)
        bb = np.tile(rated, POLYGON_SIDES)
        prow = np.arange(side.size)
        e, tt = np.repeat(prow, T), np.tile(t, prow.size)
        A.add(lay.row("poly", e, tt), lay.col("P", bb[e], tt), np.repeat(np.cos(th)[side], T)[None, :])
        A.add(lay.row("poly", e, tt), lay.col("Q", bb[e], tt), np.repeat(np.sin(th)[side], T)[None, :])
        hi[:, lay.rslice("poly")] = np.repeat(np.tile(fo.rate[tmpl_b][rated], POLYGON_SIDES), T)[None, :]
    if lay.rows["sub"][1]:
        th = 2 * np.pi * np.arange(POLYGON_SIDES) / POLYGON_SIDES
        e, tt = np.repeat(np.arange(POLYGON_SIDES), T), np.tile(t, POLYGON_SIDES)
        A.add(lay.row("sub", e, tt), lay.col("psub", 0, tt), np.cos(th)[e][None, :])
        A.add(lay.row("sub", e, tt), lay.col("qsub", 0, tt), np.sin(th)[e][None, :])
        hi[:, lay.rslice("sub")] = np.repeat(fo.inst_sub_mva[g.members], POLYGON_SIDES * T).reshape(K, -1)
    # ---- resource bounds (rows of A, as OSQP) and their values per copy
    def bound(kind: str, var: str, lo_v: np.ndarray, hi_v: np.ndarray) -> None:
        cnt = g.el[kind].shape[1]
        if not cnt:
            return
        e, tt = np.repeat(np.arange(cnt), T), np.tile(t, cnt)
        A.add(lay.row(var, e, tt), lay.col(var, e, tt), 1.0)
        lo[:, lay.rslice(var)] = lo_v.reshape(K, -1)
        hi[:, lay.rslice(var)] = hi_v.reshape(K, -1)

    def per(kind: str, field_: str) -> np.ndarray:
        return np.repeat(el[kind][field_][g.el[kind]][:, :, None], T, axis=2)  # (K, cnt, T)

    if g.el["pv"].shape[1]:
        bound("pv", "pv", np.zeros((K, g.el["pv"].shape[1], T)), pv_avail[g.el["pv"]])
    if g.el["dg"].shape[1]:
        bound("dg", "dg", per("dg", "pmin"), per("dg", "pmax"))
    if g.el["flex"].shape[1]:
        bound("flex", "flex", per("flex", "pmin"), per("flex", "pmax"))
    if g.el["st"].shape[1]:
        ns = g.el["st"].shape[1]
        bound("st", "pc", np.zeros((K, ns, T)), per("st", "p_charge"))
        bound("st", "pd", np.zeros((K, ns, T)), per("st", "p_discharge"))
        emin, emax = per("st", "e_min"), per("st", "e_max")
        ef = el["st"]["e_final"][g.el["st"]]
        emin[:, :, T - 1] = ef
        emax[:, :, T - 1] = ef
        bound("st", "e", emin, emax)
        # dynamics: e_t - e_{t-1} - dt eta_c pc_t + dt / eta_d pd_t == 0 (e_{-1} = e_init)
        e, tt = np.repeat(np.arange(ns), T), np.tile(t, ns)
        A.add(lay.row("stdyn", e, tt), lay.col("e", e, tt), 1.0)
        m1 = tt > 0
        A.add(lay.row("stdyn", e[m1], tt[m1]), lay.col("e", e[m1], tt[m1] - 1), -1.0)
        A.add(lay.row("stdyn", e, tt), lay.col("pc", e, tt), -dt * per("st", "eta_charge").reshape(K, -1))
        A.add(lay.row("stdyn", e, tt), lay.col("pd", e, tt), dt / per("st", "eta_discharge").reshape(K, -1))
        rhs = np.zeros((K, ns, T))
        rhs[:, :, 0] = el["st"]["e_init"][g.el["st"]]
        lo[:, lay.rslice("stdyn")] = hi[:, lay.rslice("stdyn")] = rhs.reshape(K, -1)
    if g.el["ev"].shape[1]:
        nev = g.el["ev"].shape[1]
        ev = el["ev"]
        idx = g.el["ev"]
        window = (t[None, None, :] >= ev["arrival"][idx][:, :, None]) \
            & (t[None, None, :] < ev["departure"][idx][:, :, None])
        bound("ev", "ev", np.zeros((K, nev, T)), ev["pmax"][idx][:, :, None] * window)
        e, tt = np.repeat(np.arange(nev), T), np.tile(t, nev)
        off = lay.rows["evE"][0]
        A.add(off + e, lay.col("ev", e, tt), dt)
        lo[:, off:off + nev] = hi[:, off:off + nev] = ev["energy"][idx]
    if g.el["flex"].shape[1]:
        nfl = g.el["flex"].shape[1]
        e, tt = np.repeat(np.arange(nfl), T), np.tile(t, nfl)
        off = lay.rows["flexE"][0]
        A.add(off + e, lay.col("flex", e, tt), dt)
        lo[:, off:off + nfl] = hi[:, off:off + nfl] = flex_energy[g.el["flex"]]
    # ---- objective: dt (c1 p + c2 p^2) + prox^2 ((P - P0)^2 + (Q - Q0)^2) + rho/2 (psub - target)^2
    if g.el["pv"].shape[1]:
        q[:, lay.cslice("pv")] = dt * per("pv", "c1").reshape(K, -1)
    if g.el["dg"].shape[1]:
        nd = g.el["dg"].shape[1]
        q[:, lay.cslice("dg")] = dt * per("dg", "c1").reshape(K, -1)
        e, tt = np.repeat(np.arange(nd), T), np.tile(t, nd)
        cols = lay.col("dg", e, tt)
        Pm.add(cols, cols, 2 * dt * per("dg", "c2").reshape(K, -1))
    w2 = 2 * prox**2  # (K, B, T)
    Pm.add(lay.col("P", eB, tB), lay.col("P", eB, tB), bt(w2))
    Pm.add(lay.col("Q", eB, tB), lay.col("Q", eB, tB), bt(w2))
    q[:, lay.cslice("P")] = bt(-w2 * P0)
    q[:, lay.cslice("Q")] = bt(-w2 * Q0)
    rho_k = np.broadcast_to(np.asarray(rho, dtype=float), (K,))
    cs = lay.col("psub", 0, t)
    Pm.add(cs, cs, np.repeat(rho_k[:, None], T, axis=1))
    q[:, cs] = -rho_k[:, None] * target
    # every diagonal entry present, so the pattern never depends on values
    diag = np.arange(lay.n)
    Pm.add(diag, diag, 0.0)

    A_indptr, A_indices, A_data = A.csc((lay.m, lay.n))
    P_indptr, P_indices, P_data = Pm.csc((lay.n, lay.n), upper=True)
    pattern = QPPattern(n=lay.n, m=lay.m, P_indptr=P_indptr, P_indices=P_indices, A_indptr=A_indptr,
                        A_indices=A_indices)
    g.pattern = pattern
    return QPBatch(pattern=pattern, P_data=P_data, A_data=A_data, q=np.ascontiguousarray(q),
                   l=np.ascontiguousarray(lo), u=np.ascontiguousarray(hi))


def as_scipy(batch: QPBatch, k: int) -> tuple[sp.csc_matrix, sp.csc_matrix]:
    """Problem ``k`` of a batch as scipy matrices (P upper triangle, A)."""
    p = batch.pattern
    P = sp.csc_matrix((batch.P_data[k], p.P_indices, p.P_indptr), shape=(p.n, p.n))
    A = sp.csc_matrix((batch.A_data[k], p.A_indices, p.A_indptr), shape=(p.m, p.n))
    return P, A
