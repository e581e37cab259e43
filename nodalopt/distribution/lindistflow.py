"""LinDistFlow formulation of radial feeders: one vectorized function per family.

All feeder copies of a :class:`~nodalopt.distribution.td.Forest` are one block of
(node or branch) x time variables; no function loops over nodes, branches, elements
or copies.  Units: MW, MVAr, pu^2 (squared voltage), $/h.

Branch losses enter through loss coefficients taken from an AC operating point
(:mod:`nodalopt.distribution.acflow`): with ``l = (P^2 + Q^2) / w`` the first-order
expansion at ``(P0, Q0, w0)`` is exactly

    l ~= aP P + aQ Q + aW w,   aP = 2 P0 / w0,  aQ = 2 Q0 / w0,  aW = -l0 / w0

(no constant term).  ``aP, aQ, aW`` are DPP parameters, updated between solves until
the losses settle; ``losses=False`` sets them to zero (plain LinDistFlow).  At a settled
point the model reproduces the AC power flow, and its duals carry the AC marginal losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from .td import Forest

#: sides of the polygon that replaces |S| <= S_max (outer polygon, tangent to the circle)
POLYGON_SIDES = 12


@dataclass
class FeederParams:
    pfix: cp.Parameter  # (M, T) MW fixed withdrawal (loads) at each node
    qfix: cp.Parameter  # (M, T) MVAr
    pv_avail: cp.Parameter | None  # (Npv, T) MW



@dataclass
class LossTerms:
    """Loss linearization of one solve (constants, not Parameters: see :func:`build`)."""

    aP: np.ndarray  # (Bn, T)
    aQ: np.ndarray
    aW: np.ndarray
    prox: np.ndarray  # (Bn, T) sqrt(dt * price * r / w0): loss curvature at the linearization point
    P0: np.ndarray  # (Bn, T) flows at the linearization point
    Q0: np.ndarray

    @classmethod
    def zero(cls, Bn: int, T: int) -> LossTerms:
        z = np.zeros((Bn, T))
        return cls(z, z, z, z, z, z)


@dataclass
class FeederVars:
    P: cp.Variable  # (Bn, T) sending-end MW
    Q: cp.Variable  # (Bn, T)
    v: cp.Variable  # (Bn, T) squared voltage at each branch's child node
    psub: cp.Variable  # (I, T) MW import at each copy's substation
    qsub: cp.Variable  # (I, T)
    pv: cp.Variable | None = None
    dg: cp.Variable | None = None
    flex: cp.Variable | None = None
    pc: cp.Variable | None = None
    pd: cp.Variable | None = None
    e: cp.Variable | None = None
    ev: cp.Variable | None = None
    # elastic slacks (infeasibility diagnosis only)
    s_vmax: cp.Variable | None = None
    s_vmin: cp.Variable | None = None
    s_poly: cp.Variable | None = None
    s_sub: cp.Variable | None = None


@dataclass
class FeederCons:
    """The constraint objects whose duals make the DLMPs (replaced by their scaled twins in the recipe)."""

    pbal: cp.Constraint
    qbal: cp.Constraint
    vdef: cp.Constraint
    vmax: cp.Constraint | None
    vmin: cp.Constraint | None
    vmax_rows: np.ndarray
    vmin_rows: np.ndarray
    poly: cp.Constraint | None
    poly_rows: np.ndarray  # rated branches
    sub: cp.Constraint | None
    sub_rows: np.ndarray  # copies with a substation limit
    other: list[cp.Constraint] = field(default_factory=list)

    def all(self) -> list[cp.Constraint]:
        named = [self.pbal, self.qbal, self.vdef, self.vmax, self.vmin, self.poly, self.sub]
        return [c for c in named if c is not None] + list(self.other)

    def remap(self, sc: dict[int, cp.Constraint]) -> None:
        for k in ("pbal", "qbal", "vdef", "vmax", "vmin", "poly", "sub"):
            c = getattr(self, k)
            if c is not None:
                setattr(self, k, sc[id(c)])
        self.other = [sc[id(c)] for c in self.other]


def define_parameters(fo: Forest, T: int) -> FeederParams:
    M = fo.n_node
    npv = fo.elements["pv"]["names"].size
    return FeederParams(
        pfix=cp.Parameter((M, T), name="DNode-p_fixed"), qfix=cp.Parameter((M, T), name="DNode-q_fixed"),
        pv_avail=cp.Parameter((npv, T), name="PV-p_available") if npv else None)


def define_variables(fo: Forest, T: int) -> FeederVars:
    el = fo.elements
    n = {k: el[k]["names"].size for k in ("pv", "dg", "flex", "st", "ev")}
    Bn, n_i = fo.n_branch, fo.n_inst
    return FeederVars(
        P=cp.Variable((Bn, T), name="DBranch-p"), Q=cp.Variable((Bn, T), name="DBranch-q"),
        v=cp.Variable((Bn, T), name="DNode-v_sq"),
        psub=cp.Variable((n_i, T), name="Substation-p"), qsub=cp.Variable((n_i, T), name="Substation-q"),
        pv=cp.Variable((n["pv"], T), nonneg=True, name="PV-p") if n["pv"] else None,
        dg=cp.Variable((n["dg"], T), name="DG-p") if n["dg"] else None,
        flex=cp.Variable((n["flex"], T), name="FlexLoad-p") if n["flex"] else None,
        pc=cp.Variable((n["st"], T), nonneg=True, name="Battery-p_charge") if n["st"] else None,
        pd=cp.Variable((n["st"], T), nonneg=True, name="Battery-p_discharge") if n["st"] else None,
        e=cp.Variable((n["st"], T), name="Battery-e") if n["st"] else None,
        ev=cp.Variable((n["ev"], T), nonneg=True, name="EV-p") if n["ev"] else None)


def _rep(a: np.ndarray, T: int) -> np.ndarray:
    return np.repeat(np.asarray(a, dtype=float)[:, None], T, axis=1)


def v_full(fo: Forest, v: FeederVars, T: int) -> cp.Expression:
    """(M, T) squared voltage at every node: the variable at non-roots, the fixed root voltage at roots."""
    root_v = np.zeros(fo.n_node)
    root_v[fo.inst_node0] = fo.v_root[fo.inst_node0]
    return fo.cin @ v.v + _rep(root_v, T)


def current_sq(fo: Forest, v: FeederVars, lt: LossTerms, vf: cp.Expression, T: int) -> cp.Expression:
    """Linearized (P^2 + Q^2) / w per branch (Bn, T), see the module docstring."""
    w = cp.multiply(_rep(fo.kp, T), fo.par @ vf)
    return cp.multiply(lt.aP, v.P) + cp.multiply(lt.aQ, v.Q) + cp.multiply(lt.aW, w)


def withdrawals(fo: Forest, v: FeederVars, par: FeederParams, vf: cp.Expression, T: int
                ) -> tuple[cp.Expression, cp.Expression]:
    """Net active and reactive withdrawal per node (M, T): loads, resources and shunts."""
    el = fo.elements
    wp: cp.Expression = par.pfix + cp.multiply(_rep(fo.g_sh, T), vf)
    wq: cp.Expression = par.qfix - cp.multiply(_rep(fo.b_sh, T), vf)
    if v.pv is not None:
        wp = wp - fo.node_matrix(el["pv"]["node"]) @ v.pv
        wq = wq - fo.node_matrix(el["pv"]["node"]) @ cp.multiply(_rep(el["pv"]["tan"], T), v.pv)
    if v.dg is not None:
        wp = wp - fo.node_matrix(el["dg"]["node"]) @ v.dg
    if v.flex is not None:
        wp = wp + fo.node_matrix(el["flex"]["node"]) @ v.flex
        wq = wq + fo.node_matrix(el["flex"]["node"]) @ cp.multiply(_rep(el["flex"]["tan"], T), v.flex)
    if v.pc is not None and v.pd is not None:
        wp = wp - fo.node_matrix(el["st"]["node"]) @ (v.pd - v.pc)
    if v.ev is not None:
        wp = wp + fo.node_matrix(el["ev"]["node"]) @ v.ev
    return wp, wq


def power_balance(fo: Forest, v: FeederVars, wp: cp.Expression, wq: cp.Expression, L: cp.Expression,
                  T: int) -> tuple[cp.Constraint, cp.Constraint]:
    """Withdrawal + outflow - (inflow - series loss) - substation import == 0 at every node.

    Duals: the DLMP (active, $/MWh x dt) and the reactive price, positive when more
    withdrawal costs more.
    """
    net_out = fo.cout - fo.cin
    pbal = wp + net_out @ v.P + fo.cin @ cp.multiply(_rep(fo.r, T), L) - fo.roots @ v.psub == 0
    qbal = wq + net_out @ v.Q + fo.cin @ cp.multiply(_rep(fo.x, T), L) - fo.roots @ v.qsub == 0
    return pbal, qbal


def voltage_drop(fo: Forest, v: FeederVars, vf: cp.Expression, L: cp.Expression, T: int) -> cp.Constraint:
    """v_child - kc (kp v_parent - 2 (r P + x Q) + |z|^2 l) == 0 on every branch."""
    kc = _rep(fo.kc, T)
    drop = cp.multiply(_rep(fo.kp, T), fo.par @ vf) - 2 * (cp.multiply(_rep(fo.r, T), v.P)
                                                           + cp.multiply(_rep(fo.x, T), v.Q)) \
        + cp.multiply(_rep(fo.z2, T), L)
    return v.v - cp.multiply(kc, drop) == 0


def voltage_limits(fo: Forest, v: FeederVars, T: int, elastic: bool = False
                   ) -> tuple[np.ndarray, cp.Constraint | None, np.ndarray, cp.Constraint | None]:
    """vm_min^2 <= v <= vm_max^2 at the non-root nodes where the limit is finite."""
    hi = fo.vm_max[fo.child]
    lo = fo.vm_min[fo.child]
    hr = np.flatnonzero(np.isfinite(hi))
    lr = np.flatnonzero(np.isfinite(lo) & (lo > 0))
    if elastic:
        v.s_vmax = cp.Variable((hr.size, T), nonneg=True) if hr.size else None
        v.s_vmin = cp.Variable((lr.size, T), nonneg=True) if lr.size else None
    vmax = v.v[hr] <= _rep(hi[hr] ** 2, T) + (v.s_vmax if v.s_vmax is not None else 0) if hr.size else None
    vmin = v.v[lr] >= _rep(lo[lr] ** 2, T) - (v.s_vmin if v.s_vmin is not None else 0) if lr.size else None
    return hr, vmax, lr, vmin


def polygon_matrices(n_rows: int, sel: np.ndarray, sides: int = POLYGON_SIDES) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(sides * k, n_rows) matrices Cp, Cq with rows cos(th) e_i, sin(th) e_i for the k selected rows."""
    th = 2 * np.pi * np.arange(sides) / sides
    S = sp.csr_matrix((np.ones(sel.size), (np.arange(sel.size), sel)), shape=(sel.size, n_rows))
    return sp.csr_matrix(sp.kron(np.cos(th)[:, None], S)), sp.csr_matrix(sp.kron(np.sin(th)[:, None], S))


def _polygon(n_rows: int, rows: np.ndarray, rating: np.ndarray, P: cp.Expression, Q: cp.Expression, T: int,
             elastic: bool) -> tuple[cp.Constraint, cp.Variable | None]:
    """cos(th) P + sin(th) Q <= rating on the selected rows, with a nonnegative slack when elastic."""
    cp_, cq = polygon_matrices(n_rows, rows)
    rhs: cp.Expression = cp.Constant(_rep(np.tile(rating, POLYGON_SIDES), T))
    slack = cp.Variable((rows.size, T), nonneg=True) if elastic else None
    if slack is not None:
        rhs = rhs + np.vstack([np.eye(rows.size)] * POLYGON_SIDES) @ slack
    return cp_ @ P + cq @ Q <= rhs, slack


def branch_limits(fo: Forest, v: FeederVars, T: int, elastic: bool = False
                  ) -> tuple[np.ndarray, cp.Constraint | None]:
    """|S| <= rating as an outer polygon on the sending-end (P, Q) of rated branches."""
    rows = np.flatnonzero(np.isfinite(fo.rate))
    if not rows.size:
        return rows, None
    con, v.s_poly = _polygon(fo.n_branch, rows, fo.rate[rows], v.P, v.Q, T, elastic)
    return rows, con


def substation_limits(fo: Forest, v: FeederVars, T: int, elastic: bool = False
                      ) -> tuple[np.ndarray, cp.Constraint | None]:
    """|S_sub| <= substation_mva as the same polygon on each copy's import."""
    rows = np.flatnonzero(np.isfinite(fo.inst_sub_mva))
    if not rows.size:
        return rows, None
    con, v.s_sub = _polygon(fo.n_inst, rows, fo.inst_sub_mva[rows], v.psub, v.qsub, T, elastic)
    return rows, con


def resource_limits(fo: Forest, v: FeederVars, par: FeederParams, T: int, dt: float,
                    flex_energy: np.ndarray | cp.Parameter | None) -> list[cp.Constraint]:
    """PV curtailment, DG limits, shiftable loads (energy kept), batteries, EV charging windows."""
    el = fo.elements
    cons: list[cp.Constraint] = []
    if v.pv is not None and par.pv_avail is not None:
        cons.append(v.pv <= par.pv_avail)
    if v.dg is not None:
        cons += [v.dg >= _rep(el["dg"]["pmin"], T), v.dg <= _rep(el["dg"]["pmax"], T)]
    if v.flex is not None:
        f = el["flex"]
        cons += [v.flex >= _rep(f["pmin"], T), v.flex <= _rep(f["pmax"], T)]
        if flex_energy is not None:
            cons.append(dt * cp.sum(v.flex, axis=1) == flex_energy)
    if v.e is not None and v.pc is not None and v.pd is not None:
        s = el["st"]
        S = s["names"].size
        flow = dt * (cp.multiply(_rep(s["eta_charge"], T), v.pc) - cp.multiply(_rep(1.0 / s["eta_discharge"], T),
                                                                               v.pd))
        init = cp.reshape(s["e_init"], (S, 1), order="F")
        prev = cp.hstack([init, v.e[:, :-1]]) if T > 1 else init
        cons += [v.e == prev + flow, v.e >= _rep(s["e_min"], T), v.e <= _rep(s["e_max"], T),
                 v.pc <= _rep(s["p_charge"], T), v.pd <= _rep(s["p_discharge"], T), v.e[:, T - 1] == s["e_final"]]
    if v.ev is not None:
        e = el["ev"]
        t = np.arange(T)[None, :]
        window = (t >= e["arrival"][:, None]) & (t < e["departure"][:, None])
        cons += [v.ev <= e["pmax"][:, None] * window, dt * cp.sum(v.ev, axis=1) == e["energy"]]
    return cons


def loss_curvature(v: FeederVars, lt: LossTerms) -> cp.Expression | None:
    """Second-order loss term ``sum dt * price * r / w0 * ((P - P0)^2 + (Q - Q0)^2)`` ($).

    The linearized losses make the feeder problem piecewise linear, and a battery or a
    shiftable load then jumps between vertices from one loss update to the next (the
    iteration cycles).  This term is the curvature of the AC losses valued at the local
    price (the Hessian of the Lagrangian, as in SQP); it vanishes at a settled point, where
    P = P0, so the published prices are those of the settled linearization.  Its gradient is
    carried into the loss component of the DLMP (see :mod:`.prices`).  Written as
    ``w P^2 - 2 w P0 P`` (constant dropped) directly on the flows: no auxiliary variables
    (a third fewer solver columns than ``sum_squares(prox * (P - P0))``).
    """
    rows = np.flatnonzero((lt.prox > 0).any(axis=1))
    if not rows.size:
        return None
    w = lt.prox[rows] ** 2
    return (cp.sum(cp.multiply(w, cp.square(v.P[rows]))) - cp.sum(cp.multiply(2 * w * lt.P0[rows], v.P[rows]))
            + cp.sum(cp.multiply(w, cp.square(v.Q[rows]))) - cp.sum(cp.multiply(2 * w * lt.Q0[rows], v.Q[rows]))
            + float((w * (lt.P0[rows] ** 2 + lt.Q0[rows] ** 2)).sum()))


def cost(fo: Forest, v: FeederVars, T: int, dt: float) -> cp.Expression | None:
    """Feeder generation cost over the horizon ($): PV offer price and DG polynomial costs."""
    el = fo.elements
    terms: list[cp.Expression] = []
    if v.pv is not None and np.any(el["pv"]["c1"] != 0):
        terms.append(cp.sum(cp.multiply(_rep(el["pv"]["c1"], T), v.pv)))
    if v.dg is not None:
        terms.append(cp.sum(cp.multiply(_rep(el["dg"]["c1"], T), v.dg)))
        q = np.flatnonzero(el["dg"]["c2"] > 0)
        if q.size:
            terms.append(cp.sum_squares(cp.multiply(_rep(np.sqrt(el["dg"]["c2"][q]), T), v.dg[q])))
    return dt * cp.sum(cp.hstack(terms)) if terms else None


def build(fo: Forest, T: int, dt: float, flex_energy: np.ndarray | cp.Parameter | None, lt: LossTerms,
          elastic_penalty: float | None = None) -> tuple[FeederParams, FeederVars, FeederCons, cp.Expression | None]:
    """Every feeder family for all copies: parameters, variables, constraints, cost.

    The loss terms ``lt`` enter as constants.  As DPP Parameters they would multiply
    variables, and cvxpy's parameter tensor for that grows with (rows x variables): 44 GiB
    for 100 feeders x 33 nodes x 24 hours.  The recipe rebuilds the problem at each loss
    update instead; loads and PV availability stay Parameters.
    """
    par = define_parameters(fo, T)
    v = define_variables(fo, T)
    vf = v_full(fo, v, T)
    L = current_sq(fo, v, lt, vf, T)
    wp, wq = withdrawals(fo, v, par, vf, T)
    pbal, qbal = power_balance(fo, v, wp, wq, L, T)
    vdef = voltage_drop(fo, v, vf, L, T)
    el = elastic_penalty is not None
    hr, vmax, lr, vmin = voltage_limits(fo, v, T, el)
    prow, poly = branch_limits(fo, v, T, el)
    srow, sub = substation_limits(fo, v, T, el)
    curv = loss_curvature(v, lt)
    cons = FeederCons(pbal=pbal, qbal=qbal, vdef=vdef, vmax=vmax, vmin=vmin, vmax_rows=hr, vmin_rows=lr,
                      poly=poly, poly_rows=prow, sub=sub, sub_rows=srow,
                      other=resource_limits(fo, v, par, T, dt, flex_energy))
    c = cost(fo, v, T, dt)
    slacks = [s for s in (v.s_vmax, v.s_vmin, v.s_poly, v.s_sub) if s is not None]
    if elastic_penalty is not None and slacks:
        pen = elastic_penalty * cp.sum(cp.hstack([cp.sum(s) for s in slacks]))
        c = pen if c is None else c + pen
    if curv is None:
        return par, v, cons, c
    return par, v, cons, curv if c is None else c + curv
