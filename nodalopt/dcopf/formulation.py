"""DC-OPF formulation math: one vectorized function per variable or constraint family.

Every function takes the compiled :class:`NetworkArrays`, the period length and
the :class:`Vars` / :class:`Params` bundles, and returns cvxpy objects over
(element, time).  No function loops over elements.  Units: MW, rad, $/h.

Numerics (see :func:`flow_definition` and :class:`ScaledProblem`): branch flows
are variables of their own, so the balance rows hold only +-1 entries and the
thermal limits are simple bounds; the large susceptances (up to ~1e6 MW/rad)
appear once, in the flow-definition rows.  The plain B-theta form (balance
``B theta``, limits ``Bf theta``) put them in every family and left Clarabel
stalling at "AlmostSolved" on 4,000+ bus PGLib cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..network.arrays import NetworkArrays


@dataclass
class Params:
    """DPP parameters: anything a re-solve may change without recompiling."""

    load: cp.Parameter  # (L, T) MW
    pmin: cp.Parameter | None  # (G_lo, T) MW, finite lower bounds only
    pmax: cp.Parameter | None  # (G_hi, T)
    c1: cp.Parameter  # (G, T) $/MWh linear cost (carbon adders land here)
    lo_idx: np.ndarray
    hi_idx: np.ndarray
    rate: cp.Parameter | None = None  # (rated conducting branches, T) MW, see flow_limits()
    ramp_up: cp.Parameter | None = None  # (G_up, T - 1) MW per period, see ramp_limits()
    ramp_down: cp.Parameter | None = None  # (G_down, T - 1)


@dataclass
class Vars:
    p: cp.Expression  # (G, T) injection MW: p_flat reshaped
    p_flat: cp.Variable  # (G * T,) the injection variable, column-major (see objective())
    theta: cp.Variable | None  # (N - R, T) rad, non-reference nodes; None when every node is a reference
    f: cp.Variable | None  # (C, T) MW flow on the branches of flow_rows()
    pc: cp.Variable | None  # (S, T) storage charge MW
    pd: cp.Variable | None  # (S, T) storage discharge MW
    e: cp.Variable | None  # (S, T) energy at period end MWh
    z: cp.Variable | None  # (P, T) pwl epigraph $/h
    shed: cp.Variable | None  # (N, T) load shed MW (VOLL / elastic)
    spill: cp.Variable | None  # (N, T) forced spill MW (elastic only)
    lin_cost: cp.Variable | None = None  # (T,) $/h linear generation cost per period, see linear_cost()
    dc: cp.Variable | None = None  # (D, T) MW withdrawn at the from bus of each DC link, see dcline_terms()


def define_parameters(net: NetworkArrays, T: int) -> Params:
    lo_idx = np.flatnonzero(np.isfinite(net.gen_pmin))
    hi_idx = np.flatnonzero(np.isfinite(net.gen_pmax))
    n_rated, n_up, n_dn = rated_rows(net).size, ramp_rows(net, "up").size, ramp_rows(net, "down").size
    return Params(
        load=cp.Parameter((net.n_load, T), name="Load-p") if net.n_load else cp.Parameter((1, T)),
        pmin=cp.Parameter((lo_idx.size, T), name="Generator-p_min") if lo_idx.size else None,
        pmax=cp.Parameter((hi_idx.size, T), name="Generator-p_max") if hi_idx.size else None,
        c1=cp.Parameter((net.n_gen, T), name="Generator-marginal_cost"),
        lo_idx=lo_idx, hi_idx=hi_idx,
        rate=cp.Parameter((n_rated, T), nonneg=True, name="Line-s_nom") if n_rated else None,
        ramp_up=cp.Parameter((n_up, T - 1), nonneg=True, name="Generator-ramp_limit_up")
        if n_up and T > 1 else None,
        ramp_down=cp.Parameter((n_dn, T - 1), nonneg=True, name="Generator-ramp_limit_down")
        if n_dn and T > 1 else None,
    )


def rated_rows(net: NetworkArrays) -> np.ndarray:
    """Branches with a flow limit: finite rating and conducting (b != 0)."""
    return np.flatnonzero(np.isfinite(net.br_rate) & (net.br_b != 0))


def ramp_rows(net: NetworkArrays, direction: str) -> np.ndarray:
    """Injectors with a finite ramp limit up (``"up"``) or down (``"down"``)."""
    return np.flatnonzero(np.isfinite(net.gen_ramp_up if direction == "up" else net.gen_ramp_down))


def define_variables(net: NetworkArrays, T: int, shed: bool, elastic: bool) -> Vars:
    S = net.n_storage
    n_pwl = int(np.unique(net.pwl_gen).size)
    n_c = int(flow_rows(net).size)
    n_ang = int(net.nonref_nodes.size)  # 0 when every bus is alone in its island (a 1-bus net)
    p_flat = cp.Variable(net.n_gen * T, name="Generator-p")
    return Vars(
        p=cp.reshape(p_flat, (net.n_gen, T), order="F"), p_flat=p_flat,
        theta=cp.Variable((n_ang, T), name="Bus-v_ang") if n_ang else None,
        f=cp.Variable((n_c, T), name="Branch-p") if n_c else None,
        pc=cp.Variable((S, T), nonneg=True, name="Store-p_charge") if S else None,
        pd=cp.Variable((S, T), nonneg=True, name="Store-p_discharge") if S else None,
        e=cp.Variable((S, T), name="Store-e") if S else None,
        z=cp.Variable((n_pwl, T), name="Generator-pwl_cost") if n_pwl else None,
        shed=cp.Variable((net.n_node, T), nonneg=True, name="Bus-load_shed") if (shed or elastic) else None,
        spill=cp.Variable((net.n_node, T), nonneg=True, name="Bus-spill") if elastic else None,
        lin_cost=cp.Variable(T, name="Generator-linear_cost") if net.n_gen else None,
        dc=cp.Variable((net.n_dcline, T), name="Link-p") if net.n_dcline else None,
    )


def angle_term(mat: sp.spmatrix, v: Vars, T: int) -> cp.Expression:
    """``mat @ theta`` over the non-reference angles; zeros when there are none.

    A network in which every bus is alone in its island (one bus, or a substation
    bus with only feeders below it) has no angle variable: cvxpy leaves a (0, T)
    variable without a value, so :func:`define_variables` does not create one.
    """
    if v.theta is None:
        return cp.Constant(np.zeros((mat.shape[0], T)))
    return mat @ v.theta


def conducting(net: NetworkArrays) -> np.ndarray:
    """Branches that carry DC flow (b != 0); a b = 0 branch (e.g. x = 0 in the pglib model) carries none."""
    return np.flatnonzero(net.br_b != 0)


#: Unrated branches with per-unit susceptance |b| up to this (x >= 0.01 pu) enter the nodal balance
#: as ``base * b (theta_f - theta_t)`` instead of through a flow variable; see :func:`flow_rows`.
B_INLINE_MAX = 100.0


def flow_rows(net: NetworkArrays) -> np.ndarray:
    """Conducting branches that get a flow variable ``f`` (and a flow-definition row).

    Rated branches need one (their limit is a bound on ``f``).  So do branches with a large
    susceptance: written as ``base * b (theta_f - theta_t)`` in the balance rows, they put
    entries of 1e4-1e6 MW/rad next to the +-1 of the injections, which Clarabel's equilibration
    cannot undo.  The other unrated branches enter the balance directly, which removes a
    variable and an equality row each.  case9241pegase (benchmark fix-ups): 7,400 of 16,049
    branches, Clarabel 0.30 -> 0.24 s at 16-17 iterations in every hour of a 24-hour run.  At
    |b| <= 1e4 pu (9,750 branches) the same hours took 16-56 iterations and 4 of 24 ended
    "AlmostSolved"; at 1e3 pu, 16-17 iterations but no faster than at 1e2.
    """
    c = conducting(net)
    return c[_needs_flow_variable(net, c)]


def _needs_flow_variable(net: NetworkArrays, c: np.ndarray) -> np.ndarray:
    """Mask over the conducting branches ``c``: rated, or |b| above :data:`B_INLINE_MAX`."""
    return np.isfinite(net.br_rate[c]) | (np.abs(net.br_b[c]) > B_INLINE_MAX)


def inline_rows(net: NetworkArrays) -> np.ndarray:
    """Conducting branches without a flow variable (see :func:`flow_rows`)."""
    c = conducting(net)
    return c[~_needs_flow_variable(net, c)]


def node_demand(net: NetworkArrays, par: Params, T: int) -> cp.Expression:
    """Fixed demand per node (N, T): loads plus fixed node demand."""
    fixed = np.repeat(net.node_fixed_demand[:, None], T, axis=1)
    if net.n_load:
        return net.node_matrix(net.load_node) @ par.load + fixed
    return cp.Constant(fixed)


def nodal_balance(net: NetworkArrays, v: Vars, demand: cp.Expression, T: int) -> cp.Constraint:
    """demand + A^T f - generation - storage - shed + spill == 0 (dual: $/MWh x dt).

    ``A^T f`` (net outflow) equals ``B theta + shift injection`` through :func:`flow_definition`,
    so the duals are those of the B-theta balance and :mod:`prices` applies unchanged.
    """
    expr = demand
    if v.f is not None:
        expr = expr + sp.csr_matrix(net.incidence[flow_rows(net)].T) @ v.f
    il = inline_rows(net)
    if il.size:  # A_i^T (Bf_i theta + shift_i) for the branches without a flow variable
        at = sp.csr_matrix(net.incidence[il].T)
        expr = expr + angle_term(at @ net.bf_red[il], v, T) \
            + np.repeat(at @ net.shift_flow[il], T).reshape(-1, T)
    if net.n_gen:
        expr = expr - net.node_matrix(net.gen_node) @ v.p
    if v.pc is not None and v.pd is not None:
        expr = expr - net.node_matrix(net.st_node) @ (v.pd - v.pc)
    if v.dc is not None:
        m, const = dcline_terms(net)
        expr = expr + m @ v.dc + np.repeat(const[:, None], T, axis=1)
    if v.shed is not None:
        expr = expr - v.shed
    if v.spill is not None:
        expr = expr + v.spill
    return expr == 0


def dcline_terms(net: NetworkArrays) -> tuple[sp.csr_matrix, np.ndarray]:
    """Net withdrawal of the DC links at the nodes: ``M @ p + c`` (N x D, N) MW.

    A link withdraws ``p`` at its from node and injects ``eff * p - loss`` at its to node
    (pandapower's dcline as ``rundcopp`` models it, see :func:`nodalopt.network.pandapower._dclines`).
    Its flow does not depend on the angles, so the price decomposition of :mod:`.prices` is unchanged.
    """
    m = net.node_matrix(net.dc_f) - net.node_matrix(net.dc_t) @ sp.diags(net.dc_eff)
    const = np.asarray(net.node_matrix(net.dc_t) @ net.dc_loss).ravel()
    return sp.csr_matrix(m), const


def dcline_bounds(net: NetworkArrays, v: Vars, T: int) -> list[cp.Constraint]:
    """dc_pmin <= p <= dc_pmax where finite."""
    if v.dc is None:
        return []
    cons = []
    lo, hi = np.flatnonzero(np.isfinite(net.dc_pmin)), np.flatnonzero(np.isfinite(net.dc_pmax))
    if lo.size:
        cons.append(v.dc[lo] >= np.repeat(net.dc_pmin[lo, None], T, axis=1))
    if hi.size:
        cons.append(v.dc[hi] <= np.repeat(net.dc_pmax[hi, None], T, axis=1))
    return cons


def flow_definition(net: NetworkArrays, v: Vars, T: int) -> list[cp.Constraint]:
    """f == Bf theta + shift flow on the conducting branches (DC power flow, MW)."""
    if v.f is None:
        return []
    c = flow_rows(net)
    return [v.f == angle_term(net.bf_red[c], v, T) + np.repeat(net.shift_flow[c, None], T, axis=1)]


def flow_expression(net: NetworkArrays, v: Vars, rows: np.ndarray, T: int) -> cp.Expression:
    """Flow (MW) on branches ``rows`` (all in :func:`flow_rows`): a selection of the flow variable."""
    pos = np.full(net.n_branch, -1, np.int64)
    fr = flow_rows(net)
    pos[fr] = np.arange(fr.size)
    assert v.f is not None and (pos[rows] >= 0).all()
    return v.f[pos[rows]]


def flow_limits(net: NetworkArrays, v: Vars, par: Params, T: int) -> tuple[np.ndarray, list[cp.Constraint]]:
    """-rate <= flow <= rate on rated branches (duals: mu_upper, mu_lower), bounds on ``f``.

    The rating is a Parameter (the branch ratings, per period) so that a re-solve can screen
    out limits that cannot bind (see ``DCOPF`` constraint screening).
    """
    rows = rated_rows(net)
    if not rows.size or par.rate is None:
        return rows, []
    f = flow_expression(net, v, rows, T)
    return rows, [f <= par.rate, f >= -par.rate]


def angle_limits(net: NetworkArrays, v: Vars, T: int) -> tuple[np.ndarray, list[cp.Constraint]]:
    """angmin <= theta_f - theta_t <= angmax where finite (PGLib / PowerModels)."""
    rows = np.flatnonzero(np.isfinite(net.br_angmin) | np.isfinite(net.br_angmax))
    if not rows.size:
        return rows, []
    a = angle_term(net.incidence_red[rows], v, T)
    lo = np.repeat(np.where(np.isfinite(net.br_angmin[rows]), net.br_angmin[rows], -10.0)[:, None], T, 1)
    hi = np.repeat(np.where(np.isfinite(net.br_angmax[rows]), net.br_angmax[rows], 10.0)[:, None], T, 1)
    return rows, [a <= hi, a >= lo]


def generator_bounds(v: Vars, par: Params) -> list[cp.Constraint]:
    cons = []
    if par.pmin is not None:
        cons.append(v.p[par.lo_idx] >= par.pmin)
    if par.pmax is not None:
        cons.append(v.p[par.hi_idx] <= par.pmax)
    return cons


def ramp_limits(net: NetworkArrays, v: Vars, par: Params, T: int) -> list[cp.Constraint]:
    """p[t] - p[t-1] within [-ramp_down, ramp_up] * dt (no constraint on the first period).

    The limits (MW per period) are Parameters, see :func:`flow_limits`.
    """
    if T < 2:
        return []
    cons = []
    up, dn = ramp_rows(net, "up"), ramp_rows(net, "down")
    if up.size and par.ramp_up is not None:
        cons.append(v.p[up, 1:] - v.p[up, :-1] <= par.ramp_up)
    if dn.size and par.ramp_down is not None:
        cons.append(v.p[dn, 1:] - v.p[dn, :-1] >= -par.ramp_down)
    return cons


def storage_constraints(net: NetworkArrays, v: Vars, T: int, dt: float) -> list[cp.Constraint]:
    """Energy balance with efficiencies, energy and power bounds, initial and final state."""
    if v.e is None or v.pc is None or v.pd is None:
        return []
    flow = dt * (cp.multiply(net.st_eta_charge[:, None], v.pc)
                 - cp.multiply(1.0 / net.st_eta_discharge[:, None], v.pd))
    prev = cp.hstack([cp.reshape(net.st_e_init, (net.n_storage, 1), order="F"), v.e[:, :-1]]) \
        if T > 1 else cp.reshape(net.st_e_init, (net.n_storage, 1), order="F")
    rep = lambda a: np.repeat(a[:, None], T, axis=1)  # noqa: E731
    return [
        v.e == prev + flow,
        v.e >= rep(net.st_e_min), v.e <= rep(net.st_e_max),
        v.pc <= rep(net.st_p_charge), v.pd <= rep(net.st_p_discharge),
        v.e[:, T - 1] == net.st_e_final,
    ]


def pwl_epigraph(net: NetworkArrays, v: Vars, T: int) -> list[cp.Constraint]:
    """z_g >= slope_k p_g + intercept_k for every segment k of generator g."""
    if v.z is None:
        return []
    gens, col = np.unique(net.pwl_gen, return_inverse=True)
    K = net.pwl_gen.size
    sel_p = sp.csr_matrix((net.pwl_slope, (np.arange(K), net.pwl_gen)), shape=(K, net.n_gen))
    sel_z = sp.csr_matrix((np.ones(K), (np.arange(K), col)), shape=(K, gens.size))
    return [sel_z @ v.z >= sel_p @ v.p + np.repeat(net.pwl_intercept[:, None], T, 1)]


def shed_limits(net: NetworkArrays, v: Vars, par: Params, T: int) -> list[cp.Constraint]:
    """Load shed at VOLL cannot exceed the node's (non-negative) demand."""
    if v.shed is None:
        return []
    cap = np.repeat(np.maximum(net.node_fixed_demand, 0.0)[:, None], T, axis=1)
    if net.n_load:
        return [v.shed <= net.node_matrix(net.load_node) @ par.load + cap]
    return [v.shed <= cap]


def linear_cost(v: Vars, par: Params) -> list[cp.Constraint]:
    """lin_cost_t == sum_g c1_gt p_gt.

    The parameterised linear cost sits in a constraint, not in the objective: next to the
    quadratic term, cvxpy's coefficient extraction densifies the objective's parameter tensor
    (objective variables x parameter entries), 21 GiB on 24-hour case2869pegase with ramps.
    The default solver substitutes these rows out again before Clarabel sees them
    (:class:`~nodalopt.dcopf.solver.PresolvedClarabel`): as a dense row they cost Clarabel
    20-50 % more iterations.
    """
    if v.lin_cost is None:
        return []
    return [v.lin_cost == cp.sum(cp.multiply(par.c1, v.p), axis=0)]


def objective(net: NetworkArrays, v: Vars, par: Params, T: int, dt: float, voll: float | None,
              penalty: float | None) -> cp.Expression:
    """Total cost over the horizon in $: dt * sum_t (quadratic + linear + constant + pwl + VOLL)."""
    terms: list[cp.Expression] = []
    if v.lin_cost is not None:
        terms.append(cp.sum(v.lin_cost))
        if (net.gen_c2 > 0).any():
            # a quad_form of the injection *variable* itself: cvxpy puts the diagonal straight into
            # Clarabel's P.  Of an affine argument (p[q], a reshape, sum_squares(w * p)) it adds an
            # auxiliary variable and an equality row per term, and sum(c2 * square(p)) next to DPP
            # parameters compiles a dense tensor (GBs at 1,000+ buses x 24 h)
            w = np.repeat(net.gen_c2[:, None], T, 1).ravel(order="F")
            terms.append(cp.quad_form(v.p_flat, sp.diags(w), assume_PSD=True))
    if v.z is not None:
        terms.append(cp.sum(v.z))
    if v.dc is not None:
        terms.append(cp.sum(net.dc_c1 @ v.dc))
    if v.shed is not None:
        terms.append((penalty if penalty is not None else float(voll or 0.0)) * cp.sum(v.shed))
    if v.spill is not None and penalty is not None:
        terms.append(penalty * cp.sum(v.spill))
    const = (float(net.gen_c0.sum()) + float(net.dc_c0.sum())) * T
    return dt * (cp.sum(cp.hstack(terms)) + const) if terms else cp.Constant(dt * const)


def scaled(con: cp.Constraint, k: float) -> cp.Constraint:
    """The same constraint with its row multiplied by ``k`` (for :class:`ScaledProblem`)."""
    if k == 1.0:
        return con
    if isinstance(con, cp.constraints.Equality | cp.constraints.Zero):
        return k * con.expr == 0
    if isinstance(con, cp.constraints.Inequality | cp.constraints.NonPos):
        return k * con.expr <= 0
    raise TypeError(f"cannot scale a {type(con).__name__} constraint")  # pragma: no cover


class ScaledProblem(cp.Problem):
    """``min objective s.t. constraints``, handed to the solver as ``min k*objective s.t. k*row``.

    Multiplying the objective *and* every row by the same ``k`` leaves every dual
    (``constraint.dual_value``) and the primal solution unchanged; ``value`` is
    reported in the original units.  Pass the constraints through :func:`scaled`
    first (the dual values are read from those objects).

    Why: Clarabel normalises the linear cost to unit size (Ruiz equilibration with
    cost scaling), so with MW-sized right-hand sides its internal primal iterates
    are ~1e2-1e3 times its dual ones.  Objective scaling is the one scaling that
    equilibration cannot undo; ``k = 1e-2`` brings the two to similar size, which
    removed Clarabel's "InsufficientProgress" failures (pglib case4917_goc: heavy
    congestion, LMPs up to 960 $/MWh).  Any ``k`` in [1e-5, 1e-1] worked on PGLib.
    """

    def __init__(self, objective: cp.Expression, constraints: list[cp.Constraint], scale: float = 1.0):
        super().__init__(cp.Minimize(scale * objective if scale != 1.0 else objective), constraints)
        self.scale = float(scale)

    @property
    def value(self) -> float | None:  # type: ignore[override]
        v = super().value
        return None if v is None else float(v) / self.scale
