"""The parts core: one labeled statement, three consumers that must agree.

A small two-copy storage-and-generator statement is solved (a) by cvxpy + Clarabel over the
stacked copies and (b) by the batched QP solver; primal solutions and row multipliers agree, the
multipliers satisfy stationarity ``P x + q + A' y = 0`` of the statement itself, and the active
rows found at the solution are the ones the multipliers say are active.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from nodalopt.admm import qp as Q
from nodalopt.model.core import Statement


def _statement(K: int = 2, T: int = 4) -> Statement:
    """Per copy: one generator g (cost c1 g + c2 g^2, 0 <= g <= 8), one battery (charge pc,
    discharge pd, energy e), a fixed load d_t; balance g + pd - pc = d_t; e_t = e_{t-1} + pc - pd."""
    st = Statement(T=T, K=K)
    t = np.arange(T)
    for name in ("g", "pc", "pd", "e"):
        st.add_col(name, 1)
    st.add_row("bal", 1)
    st.add_row("dyn", 1)
    st.add_row("box", 4)  # bounds of g, pc, pd, e as rows (QP form)
    st.add_row("final", 1, per_period=False)
    st.freeze()
    lay = st.layout
    st.A.add(lay.row("bal", 0, t), lay.col("g", 0, t), 1.0)
    st.A.add(lay.row("bal", 0, t), lay.col("pd", 0, t), 1.0)
    st.A.add(lay.row("bal", 0, t), lay.col("pc", 0, t), -1.0)
    st.A.add(lay.row("dyn", 0, t), lay.col("e", 0, t), 1.0)
    st.A.add(lay.row("dyn", 0, t[1:]), lay.col("e", 0, t[1:] - 1), -1.0)
    st.A.add(lay.row("dyn", 0, t), lay.col("pc", 0, t), -0.9)
    st.A.add(lay.row("dyn", 0, t), lay.col("pd", 0, t), 1 / 0.9)
    for i, name in enumerate(("g", "pc", "pd", "e")):
        st.A.add(lay.row("box", i, t), lay.col(name, 0, t), 1.0)
    st.A.add(lay.row("final", 0), lay.col("e", 0, T - 1), 1.0)
    load = np.array([[3.0, 7.0, 9.0, 4.0], [2.0, 6.0, 8.5, 5.0]])[:K, :T]
    st.set_equal("bal", load)
    e0 = np.array([[1.0], [2.0]])[:K]
    rhs = np.zeros((K, T))
    rhs[:, 0] = e0[:, 0]
    st.set_equal("dyn", rhs)
    st.set_rows("box", 0.0, np.tile(np.repeat([8.0, 3.0, 3.0, 5.0], T), (K, 1)))
    st.set_equal("final", e0)
    cg = lay.col("g", 0, t)
    st.q[:, cg] = np.array([[10.0], [12.0]])[:K]
    st.P.add(cg, cg, 2 * np.array([[0.5], [0.8]])[:K] * np.ones((1, T)))
    return st


def _cvxpy(st: Statement) -> tuple[np.ndarray, np.ndarray]:
    P, A, q, lo, hi = st.stacked()
    x = cp.Variable(A.shape[1])
    cons, params = st.cvxpy_constraints(x, scale=1e-2)
    flat = [c for trip in cons.values() for c in trip if c is not None]
    prob = cp.Problem(cp.Minimize(1e-2 * (0.5 * cp.quad_form(x, P, assume_PSD=True) + q @ x)), flat)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    y = np.concatenate([st.split_duals(b, cons[b]).reshape(st.K, -1) for b in st.layout.rows], axis=1)
    return np.asarray(x.value).reshape(st.K, -1), y


def test_cvxpy_and_batched_qp_agree_and_satisfy_stationarity() -> None:
    st = _statement()
    xc, yc = _cvxpy(st)
    batch = st.qp_batch()
    s = Q.QPSettings(eps_abs=1e-9, eps_rel=1e-9, max_iter=20000)
    res = Q.solve(batch, Q.factorize(batch, s), s)
    assert (res.status == 1).all()
    np.testing.assert_allclose(res.x, xc, atol=1e-5)
    np.testing.assert_allclose(res.y, yc, atol=1e-4)
    # stationarity of the statement itself, with the cvxpy multipliers mapped by split_duals
    P, A, q, _, _ = st.stacked()
    grad = P @ xc.ravel() + q + A.T @ yc.ravel()
    assert np.abs(grad).max() < 1e-5
    # the battery is used: prices differ between hours (a real coupling, not a trivial case)
    lam = -st.row_duals(yc, "bal")[:, 0, :]
    assert np.ptp(lam, axis=1).min() > 0.5


def test_active_rows_match_the_multipliers() -> None:
    st = _statement()
    xc, yc = _cvxpy(st)
    at_lo, at_hi = st.active_rows(xc, atol=1e-6)
    lay = st.layout
    box = lay.rslice("box")
    y = yc[:, box]
    assert ((np.abs(y) > 1e-5) <= (at_lo | at_hi)[:, box]).all()  # a nonzero multiplier: its row is at a bound
    assert (at_lo | at_hi)[:, lay.rslice("bal")].all()  # equalities are always active


def test_parameters_update_without_rebuilding() -> None:
    st = _statement(K=1)
    P, A, q, _, _ = st.stacked()
    x = cp.Variable(A.shape[1])
    cons, params = st.cvxpy_constraints(x)
    flat = [c for trip in cons.values() for c in trip if c is not None]
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, P, assume_PSD=True) + q @ x), flat)
    prob.solve(solver="CLARABEL")
    obj1 = prob.value
    st.set_equal("bal", np.array([[4.0, 7.0, 9.0, 4.0]]))
    st.update_parameters(params)
    prob.solve(solver="CLARABEL")
    assert prob.value > obj1 + 1.0  # one more MWh in hour 0 costs more than 1 $
    st.set_rows("box", -np.inf, np.inf)  # every bound removed: the constraint structure changes
    with pytest.raises(ValueError, match="rebuild"):
        st.update_parameters(params)
