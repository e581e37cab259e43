"""Batched OSQP-style QP solver (nodalopt.admm.qp): numba kernels vs numpy twins vs Clarabel.

The random problems are built around a known KKT point (x*, y*): P is positive definite on the
variables without active bounds and the active rows are few and random, so x* and y* are the
unique primal and dual solutions and every solver can be checked against them.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba")
cp = pytest.importorskip("cvxpy")

from nodalopt.admm import (  # noqa: E402
    QPBatch,
    QPPattern,
    QPSettings,
    analyze,
    factorize,
    ldl_numpy,
    solve,
    solve_numpy,
)


# ================================================================ problems
def _random_batch(K: int = 5, n: int = 40, n_lin: int = 10, m_eq: int = 8, m_in: int = 16, n_act: int = 6,
                  seed: int = 0) -> tuple[QPBatch, np.ndarray, np.ndarray]:
    """K QPs sharing one pattern with known unique solutions x*, y* (mixed scales: y ~ 1..50)."""
    rng = np.random.default_rng(seed)
    nq = n - n_lin  # variables with curvature; the n_lin others are LP variables held by active bounds
    Bmask = rng.random((10, nq)) < 0.2
    Amask = rng.random((m_eq + m_in, n)) < 0.15
    Amask[np.arange(m_eq + m_in), rng.integers(0, n, m_eq + m_in)] = True
    m = m_eq + m_in + 1 + n  # + a free row + a box row per variable
    Pstruct = sp.block_diag([sp.csc_matrix(Bmask.T.astype(float) @ Bmask.astype(float)) + sp.eye(nq),
                             sp.eye(n_lin)], format="csc")
    Astruct = sp.vstack([sp.csc_matrix(Amask.astype(float)), sp.csc_matrix(np.ones((1, n))), sp.eye(n)],
                        format="csc")
    pattern = QPPattern.from_matrices(Pstruct, Astruct)
    Ps, As, qs, ls, us, xs, ys = [], [], [], [], [], [], []
    for _ in range(K):
        B = np.where(Bmask, rng.normal(size=Bmask.shape), 0.0)
        d = np.concatenate([rng.uniform(0.1, 2.0, nq), np.zeros(n_lin)])
        P = sp.block_diag([sp.csc_matrix(B.T @ B), sp.csc_matrix((n_lin, n_lin))]) + sp.diags(d)
        A = sp.vstack([sp.csc_matrix(np.where(Amask, rng.normal(size=Amask.shape), 0.0)),
                       sp.csc_matrix(rng.normal(size=(1, n))), sp.eye(n)], format="csc")
        x = rng.normal(size=n)
        Ax = A @ x
        y, l, u = np.zeros(m), np.empty(m), np.empty(m)  # noqa: E741
        y[:m_eq] = rng.uniform(1, 50, m_eq) * rng.choice([-1, 1], m_eq)
        l[:m_eq] = u[:m_eq] = Ax[:m_eq]
        for i in range(m_eq, m_eq + m_in):
            kind = rng.integers(3)  # 0: upper only, 1: lower only, 2: both bounds
            if i < m_eq + n_act:
                if kind == 1 or (kind == 2 and rng.random() < 0.5):
                    l[i], u[i], y[i] = Ax[i], np.inf if kind == 1 else Ax[i] + rng.uniform(0.5, 2), -rng.uniform(1, 50)
                else:
                    l[i], u[i], y[i] = -np.inf if kind == 0 else Ax[i] - rng.uniform(0.5, 2), Ax[i], rng.uniform(1, 50)
            else:
                l[i] = -np.inf if kind == 0 else Ax[i] - rng.uniform(0.2, 2)
                u[i] = np.inf if kind == 1 else Ax[i] + rng.uniform(0.2, 2)
        fr = m_eq + m_in
        l[fr], u[fr] = -np.inf, np.inf
        for j in range(n):
            i = fr + 1 + j
            lo, hi = x[j] - rng.uniform(0.5, 3), x[j] + rng.uniform(0.5, 3)
            if j >= nq or j < 4:  # LP variables (and a few others) sit at a bound
                if rng.random() < 0.5:
                    lo, y[i] = x[j], -rng.uniform(1, 50)
                else:
                    hi, y[i] = x[j], rng.uniform(1, 50)
            l[i], u[i] = lo, hi
        Ps.append(P)
        As.append(A)
        qs.append(-(P @ x + A.T @ y))
        ls.append(l)
        us.append(u)
        xs.append(x)
        ys.append(y)
    batch = QPBatch.from_matrices(pattern, Ps, As, np.array(qs), np.array(ls), np.array(us))
    return batch, np.array(xs), np.array(ys)


def _matrices(batch: QPBatch, k: int) -> tuple[sp.csc_matrix, sp.csc_matrix]:
    pt = batch.pattern
    U = sp.csc_matrix((batch.P_data[k], pt.P_indices, pt.P_indptr), shape=(pt.n, pt.n))
    P = sp.csc_matrix(U + U.T - sp.diags(U.diagonal()))
    A = sp.csc_matrix((batch.A_data[k], pt.A_indices, pt.A_indptr), shape=(pt.m, pt.n))
    return P, A


def _clarabel(batch: QPBatch, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """cvxpy + Clarabel; duals mapped to the OSQP convention (P x + q + Aᵀ y = 0)."""
    P, A = _matrices(batch, k)
    A = A.tocsr()
    l, u = batch.l[k], batch.u[k]  # noqa: E741
    eq = np.flatnonzero(l == u)
    up = np.flatnonzero((l != u) & np.isfinite(u))
    lo = np.flatnonzero((l != u) & np.isfinite(l))
    x = cp.Variable(batch.pattern.n)
    cons = [A[eq] @ x == u[eq], A[up] @ x <= u[up], A[lo] @ x >= l[lo]]
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(P)) + batch.q[k] @ x), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert prob.status == "optimal"
    y = np.zeros(batch.pattern.m)
    y[eq] += cons[0].dual_value  # cvxpy: Lagrangian f + nu (A x - b), as ours
    y[up] += cons[1].dual_value  # dual of A x <= u is >= 0, as ours
    y[lo] -= cons[2].dual_value  # dual of A x >= l is >= 0; ours is <= 0 at a lower bound
    return np.asarray(x.value), y, float(prob.value)


# ================================================================ fixtures
@pytest.fixture(scope="module")
def problem():
    return _random_batch()


@pytest.fixture(scope="module")
def solved(problem):
    batch, _, _ = problem
    s = QPSettings()
    f = factorize(batch, s)
    return s, f, solve(batch, f, s), solve_numpy(batch, s)


# ================================================================ tests
def test_pattern_from_matrices_keeps_explicit_zeros_and_adds_diagonal():
    P = sp.csc_matrix((np.array([0.0, 2.0, 1.0]), (np.array([0, 0, 1]), np.array([0, 1, 1]))), shape=(3, 3))
    A = sp.csc_matrix((np.array([0.0, 1.0]), (np.array([1, 0]), np.array([0, 2]))), shape=(2, 3))
    pt = QPPattern.from_matrices(P, A)
    assert pt.nnz_P == 4 and list(pt.P_indices) == [0, 0, 1, 2]  # (0,0) explicit zero kept, (2,2) added
    assert pt.nnz_A == 2 and list(pt.A_indices) == [1, 0]
    np.testing.assert_array_equal(pt.P_values(P), [0.0, 2.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="outside the pattern"):
        pt.A_values(sp.csc_matrix(np.ones((2, 3))))


def test_ldl_kernel_matches_dense_numpy_twin(problem):
    batch, _, _ = problem
    s = QPSettings()
    f = factorize(batch, s)
    sym = f.symbolic
    N = sym.N
    for k in (0, 3):
        U = sp.csc_matrix((f.Kx[k], sym.Ki, sym.Kp), shape=(N, N)).toarray()
        L_ref, d_ref = ldl_numpy(U + np.triu(U, 1).T)
        L = sp.csc_matrix((f.Lx[k], sym.Li, sym.Lp), shape=(N, N)).toarray() + np.eye(N)
        np.testing.assert_allclose(f.Ld[k], d_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(L, L_ref, rtol=1e-9, atol=1e-10)
    assert sym.nnz_L <= min(v for v in sym.fill.values() if v >= 0)


def test_ruiz_kernel_matches_numpy_twin(problem):
    from nodalopt.admm.qp import _ruiz, _ruiz_numba

    batch, _, _ = problem
    q = batch.q.copy()
    q[1, 2] = np.nan  # NaN stays confined to its problem
    a = _ruiz(batch.pattern, batch.P_data, batch.A_data, q, 10)
    b = _ruiz_numba(batch.pattern, batch.P_data, batch.A_data, q, 10)
    ok = [0, 2, 3, 4]
    for name in ("P", "A", "q", "D", "E", "c"):
        va, vb = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(vb[ok], va[ok], rtol=1e-12, atol=0, err_msg=name)
        assert np.isnan(va[1]).any() and np.isnan(vb[1]).any()
    assert not np.allclose(a.D[0], 1.0)


def test_numba_matches_numpy_twin(solved):
    _, _, r, rn = solved
    np.testing.assert_array_equal(r.status, rn.status)
    np.testing.assert_array_equal(r.iterations, rn.iterations)
    np.testing.assert_array_equal(r.polished, rn.polished)
    np.testing.assert_allclose(r.x, rn.x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(r.y, rn.y, rtol=0, atol=1e-8)


def test_numba_matches_numpy_twin_plain_admm(problem):
    """Without polishing and rho adaptation: the raw iteration sequence, stopped at a fixed count."""
    batch, _, _ = problem
    s = QPSettings(polish=False, adaptive_rho=False, eps_abs=0.0, eps_rel=0.0, max_iter=60)
    r = solve(batch, factorize(batch, s), s)
    rn = solve_numpy(batch, s)
    assert (r.iterations == 60).all() and (r.status == 0).all() and (rn.status == 0).all()
    np.testing.assert_allclose(r.x, rn.x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.y, rn.y, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.prim_res, rn.prim_res, rtol=1e-6)


def test_matches_known_solution_and_clarabel(problem, solved):
    batch, xs, ys = problem
    _, _, r, _ = solved
    assert (r.status == 1).all()
    np.testing.assert_allclose(r.x, xs, atol=1e-7)
    np.testing.assert_allclose(r.y, ys, atol=1e-6)
    obj = r.objective(batch)
    for k in range(batch.K):
        xc, yc, oc = _clarabel(batch, k)
        assert abs(obj[k] - oc) <= 1e-6 * max(1.0, abs(oc))
        np.testing.assert_allclose(r.x[k], xc, atol=1e-5)
        np.testing.assert_allclose(r.y[k], yc, atol=1e-5)


def test_kkt_conditions(problem, solved):
    batch, _, _ = problem
    _, _, r, _ = solved
    for k in range(batch.K):
        P, A = _matrices(batch, k)
        x, y, l, u = r.x[k], r.y[k], batch.l[k], batch.u[k]  # noqa: E741
        assert np.abs(P @ x + batch.q[k] + A.T @ y).max() < 1e-7
        Ax = A @ x
        assert (Ax <= u + 1e-8).all() and (Ax >= l - 1e-8).all()
        assert np.abs(y[y > 0] * (u[y > 0] - Ax[y > 0])).max(initial=0) < 1e-7
        assert np.abs(y[y < 0] * (Ax[y < 0] - l[y < 0])).max(initial=0) < 1e-7
        np.testing.assert_allclose(r.z[k], np.clip(Ax, l, u), atol=1e-8)


def test_plain_admm_reaches_tolerance_without_polishing(problem):
    batch, xs, ys = problem
    s = QPSettings(polish=False)
    r = solve(batch, factorize(batch, s), s)
    assert (r.status == 1).all() and (r.polished == 0).all()
    assert (r.prim_res < 1e-6).all() and (r.dual_res < 1e-5).all()
    np.testing.assert_allclose(r.x, xs, atol=1e-4)


def test_warm_start_from_solution(problem, solved):
    batch, _, _ = problem
    s, f, r, _ = solved
    r2 = solve(batch, f, s, warm_start=(r.x, r.z, r.y))
    assert (r2.status == 1).all()
    assert (r2.iterations <= s.check_every).all()
    np.testing.assert_allclose(r2.x, r.x, atol=1e-9)
    np.testing.assert_allclose(r2.y, r.y, atol=1e-8)


@pytest.mark.parametrize("shift", [1e-3, 0.5])
def test_warm_polish_on_the_last_active_set_matches_twin_and_cold_solve(problem, shift):
    """A warm re-solve first polishes on the last active set (cached factorization): with a small change of
    q the active set holds and no iteration is needed; with a large one the active-set corrections or the
    iterations take over.  Either way the numba kernel equals its numpy twin (given the same cached active
    sets) and the cold solve of the new problem."""
    batch, _, _ = problem
    s = QPSettings(scaling=0)  # as in ADMM (with scaling, the twin's cost scaling would follow the new q)
    f = factorize(batch, s)
    r1 = solve(batch, f, s)
    acts, known = f.active_sets()
    assert known.all() and (acts != 0).any()
    rng = np.random.default_rng(7)
    b2 = QPBatch(batch.pattern, batch.P_data, batch.A_data,
                 batch.q + shift * np.abs(batch.q).max() * rng.normal(size=batch.q.shape), batch.l, batch.u)
    warm = (r1.x, r1.z, r1.y)
    f.reset_rho(s.rho)  # the twin starts from settings.rho, the kernel from the factors' adapted rho
    r2 = solve(b2, f, s, warm_start=warm)
    rn = solve_numpy(b2, s, warm_start=warm, active_sets=(acts, known))
    cold = solve_numpy(b2, s)
    assert (r2.status == 1).all() and (r2.polished == 1).all()
    np.testing.assert_array_equal(r2.iterations, rn.iterations)
    np.testing.assert_array_equal(r2.polish_attempts, rn.polish_attempts)
    np.testing.assert_allclose(r2.x, rn.x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r2.y, rn.y, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(f.polish_act, acts)  # the twin recorded the same last active sets
    np.testing.assert_allclose(r2.x, cold.x, rtol=0, atol=5e-8)
    np.testing.assert_allclose(r2.y, cold.y, rtol=0, atol=5e-7)
    for k in range(batch.K):  # KKT of the new problem at the warm-polished point
        P, A = _matrices(b2, k)
        assert np.abs(P @ r2.x[k] + b2.q[k] + A.T @ r2.y[k]).max() < 1e-7
    if shift < 0.01:  # unchanged active sets: polished at once on the cached factorization, no iteration
        assert (r2.iterations == 0).all() and (r2.polish_attempts == 1).all()
    s_off = QPSettings(scaling=0, polish_warm=False)
    r3 = solve(b2, factorize(batch, s_off), s_off, warm_start=warm)
    assert (r3.iterations > 0).all()
    np.testing.assert_allclose(r3.x, r2.x, rtol=0, atol=1e-8)


def test_new_linear_cost_and_bounds_reuse_factors(problem):
    """q, l, u may change between solves (ADMM outer loop); row kinds that change trigger a refactorization."""
    batch, xs, _ = problem
    s = QPSettings()
    f = factorize(batch, s)
    solve(batch, f, s)
    l2, u2 = batch.l.copy(), batch.u.copy()
    row = batch.pattern.m - 20  # box row of variable 20 (inactive): becomes an equality row, still feasible
    l2[:, row] = u2[:, row] = xs[:, 20]
    b2 = QPBatch(batch.pattern, batch.P_data, batch.A_data, batch.q * 1.1, l2, u2)
    r2 = solve(b2, f, s)
    rn = solve_numpy(b2, s)
    assert (r2.status == 1).all() and (r2.refactorizations >= 1).all()
    np.testing.assert_allclose(r2.x, rn.x, atol=1e-8)
    np.testing.assert_allclose(r2.y, rn.y, atol=1e-7)
    with pytest.raises(ValueError, match="factorize"):
        solve(QPBatch(batch.pattern, batch.P_data * 2, batch.A_data, batch.q, batch.l, batch.u), f, s)


def test_infeasible_and_nan_problems_do_not_spoil_the_batch(problem, solved):
    batch, _, _ = problem
    _, _, r, _ = solved
    q, l, u = batch.q.copy(), batch.l.copy(), batch.u.copy()  # noqa: E741
    q[1, 3] = np.nan
    l[2, 0] = u[2, 0] = 1e6  # equality row out of reach of the box rows: primal infeasible
    bad = QPBatch(batch.pattern, batch.P_data, batch.A_data, q, l, u)
    s = QPSettings(max_iter=3000)
    for res in (solve(bad, factorize(bad, s), s), solve_numpy(bad, s)):
        assert res.status[1] == -1  # NaN/inf
        assert res.status[2] == -2  # primal infeasibility certificate
        good = [0, 3, 4]
        assert (res.status[good] == 1).all()
        np.testing.assert_allclose(res.x[good], r.x[good], atol=1e-8)
    lu_bad = QPBatch(batch.pattern, batch.P_data, batch.A_data, batch.q, batch.l, batch.l - 1.0)
    assert (solve_numpy(lu_bad.subset([0]), s).status == -2).all()


def _tiny_feeder() -> QPBatch:
    """Three buses in a line, lossless flows, squared voltages, one hour.

    Variables: p0 (substation import), g2 (DER at bus 2), f1 (flow 0→1), f2 (flow 1→2), v0, v1, v2.
    Rows: balance of buses 0, 1, 2 (equalities), voltage drops (equalities), v0 = 1, then bounds:
    f1 ≤ 1 (binding), 0 ≤ g2 ≤ 1, 0.81 ≤ v1, v2 ≤ 1.21.  Cost 40 p0 + p0² + 50 g2: the import is
    limited by the line, bus 0 pays 40 + 2·1 = 42, buses 1 and 2 pay the DER's 50 and the line
    limit's price is 8.
    """
    r1, r2, d1, d2 = 0.01, 0.02, 0.6, 1.0
    # columns: p0 g2 f1 f2 v0 v1 v2
    A = np.array([
        [1, 0, -1, 0, 0, 0, 0],  # bus 0: p0 - f1 = 0
        [0, 0, 1, -1, 0, 0, 0],  # bus 1: f1 - f2 = d1
        [0, 1, 0, 1, 0, 0, 0],  # bus 2: f2 + g2 = d2
        [0, 0, 2 * r1, 0, -1, 1, 0],  # v1 = v0 - 2 r1 f1
        [0, 0, 0, 2 * r2, 0, -1, 1],  # v2 = v1 - 2 r2 f2
        [0, 0, 0, 0, 1, 0, 0],  # v0 = 1
        [0, 0, 1, 0, 0, 0, 0],  # f1 <= 1
        [0, 1, 0, 0, 0, 0, 0],  # 0 <= g2 <= 1
        [0, 0, 0, 0, 0, 1, 0],  # v1 box
        [0, 0, 0, 0, 0, 0, 1],  # v2 box
    ], dtype=float)
    l = np.array([0, d1, d2, 0, 0, 1, -np.inf, 0, 0.81, 0.81])  # noqa: E741
    u = np.array([0, d1, d2, 0, 0, 1, 1.0, 1, 1.21, 1.21])
    P = sp.diags([2.0, 0, 0, 0, 0, 0, 0]).tocsc()
    q = np.array([40.0, 50, 0, 0, 0, 0, 0])
    pattern = QPPattern.from_matrices(P, sp.csc_matrix(A))
    return QPBatch.from_matrices(pattern, [P], [sp.csc_matrix(A)], q[None], l[None], u[None])


def test_tiny_radial_feeder_prices():
    batch = _tiny_feeder()
    s = QPSettings()
    r = solve(batch, factorize(batch, s), s)
    rn = solve_numpy(batch, s)
    assert r.status[0] == 1 and rn.status[0] == 1
    x, y = r.x[0], r.y[0]
    np.testing.assert_allclose(x[:4], [1.0, 0.6, 1.0, 0.4], atol=1e-9)
    np.testing.assert_allclose(-y[:3], [42.0, 50.0, 50.0], rtol=1e-9)  # locational marginal prices
    np.testing.assert_allclose(y[6], 8.0, rtol=1e-9)  # line limit (upper bound active: y >= 0)
    np.testing.assert_allclose(y[7:], 0.0, atol=1e-9)
    xc, yc, oc = _clarabel(batch, 0)
    np.testing.assert_allclose(y, yc, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x, xc, atol=1e-6)
    np.testing.assert_allclose(r.x, rn.x, atol=1e-10)
    np.testing.assert_allclose(r.y, rn.y, atol=1e-9)


def test_symbolic_analysis_is_cached_and_orderings_agree(problem):
    batch, _, _ = problem
    assert analyze(batch.pattern) is analyze(batch.pattern)
    x_ref = None
    for ordering in ("md", "rcm", "natural"):
        s = QPSettings(ordering=ordering)
        r = solve(batch, factorize(batch, s), s)
        assert analyze(batch.pattern, ordering).ordering == ordering
        if x_ref is None:
            x_ref = r.x
        np.testing.assert_allclose(r.x, x_ref, atol=1e-8)
