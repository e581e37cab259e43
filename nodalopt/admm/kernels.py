"""Numba kernels of the batched QP solver (:mod:`nodalopt.admm.qp`).

Every kernel works on one problem's numeric arrays with a symbolic structure
shared by the batch; the ``*_batch`` kernels loop over problems with ``prange``.
No ``fastmath``: the solver relies on NaN/inf propagating and being detected.
``error_model="numpy"`` makes a division by zero yield inf/NaN instead of
raising, so a broken problem never stops the batch.

Plain-numpy twins: :func:`nodalopt.admm.qp.ldl_numpy` (numeric factorization),
``nodalopt.admm.qp._ruiz`` (scaling, :func:`ruiz_batch`) and
:func:`nodalopt.admm.qp.solve_numpy` (the whole iteration, polishing included).

Index layout of the parameter vectors passed to :func:`solve_batch`:

``fpar``: sigma, alpha, eps_abs, eps_rel, eps_prim_inf, eps_dual_inf,
rho_eq_scale, rho_min, rho_max, adaptive_rho_tolerance, polish_delta, polish_tol,
polish_refine_tol (absolute, scaled problem).
``ipar``: max_iter, check_every, adaptive_rho_interval (0: fixed rho), polish (0/1),
polish_refine_iter, polish_interval, polish_active_set_iter, polish_warm (0/1).
``out`` (per problem): iterations, prim_res, dual_res, status, refactorizations,
polish (1 solution from polishing, -1 final polishing rejected, 0 not tried), early polishing attempts.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# float parameters
(F_SIGMA, F_ALPHA, F_EPS_ABS, F_EPS_REL, F_EPS_PINF, F_EPS_DINF, F_RHO_EQ, F_RHO_MIN, F_RHO_MAX, F_ADAPT_TOL,
 F_POL_DELTA, F_POL_TOL, F_POL_RTOL) = range(13)
N_FPAR = 13
# integer parameters
I_MAX_ITER, I_CHECK, I_ADAPT, I_POLISH, I_POL_REFINE, I_POL_EVERY, I_POL_AS, I_POL_WARM = range(8)
N_IPAR = 8
#: state of a problem's polishing cache (``pvalid``): nothing, active set and its factorization, active set only
PC_NONE, PC_FACTOR, PC_ACTIVE = 0, 1, 2
# per-problem output
O_ITER, O_PRIM, O_DUAL, O_STATUS, O_REFACT, O_POLISH, O_NPOL = range(7)
N_OUT = 7
# residual summary (see residuals())
(R_PRIM, R_NAX, R_NZ, R_DUAL, R_NPX, R_NATY, R_NQ, R_PRIM_S, R_NAX_S, R_NZ_S, R_DUAL_S, R_NPX_S, R_NATY_S,
 R_NQ_S, R_FINITE) = range(15)
N_RES = 15

#: row kinds: inequality, equality (l == u up to a tolerance), free (both bounds infinite)
ROW_INEQ, ROW_EQ, ROW_FREE = 0, 1, 2
#: only the prange transformation is needed (keeps the compile time of the batch wrappers down)
_PAR = {"prange": True, "comprehension": False, "reduction": False, "setitem": False, "numpy": False,
        "stencil": False, "fusion": False, "inplace_binop": False}
#: bounds of the Ruiz scaling factors (OSQP's MIN_SCALING, MAX_SCALING)
MIN_SCALING, MAX_SCALING = 1e-4, 1e4
#: guard against division by zero in ratios (OSQP's DIVISION_TOL)
DIV_TOL = 1e-30


# ====================================================================== LDL^T
@njit(cache=True, error_model="numpy", nogil=True)
def ldl_factor(Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, D, Dinv, work):  # pragma: no cover - numba
    """Up-looking LDLᵀ of a symmetric matrix given by its upper triangle (CSC), pattern of L precomputed.

    Row k of L solves ``L[:k,:k] D[:k] l_k = K[:k, k]`` by a sparse forward substitution over the
    precomputed row pattern (ascending column order is topological for the elimination tree).

    Parameters
    ----------
    Kp, Ki, Kx : ndarray
        Upper triangle of the (permuted) matrix in CSC form.
    Lp, Li : ndarray
        Strict lower triangle of L, CSC, rows sorted in every column.
    Rp, Rj, Rpos : ndarray
        The same pattern by rows: columns of row k are ``Rj[Rp[k]:Rp[k+1]]`` (ascending) and
        ``Rpos`` gives the position of each entry in ``Lx``.
    Lx, D, Dinv : ndarray
        Output: values of L, the diagonal D and its inverse.
    work : ndarray
        Zero vector of length N (left zero on return).
    """
    N = Kp.shape[0] - 1
    for k in range(N):
        dk = 0.0
        for p in range(Kp[k], Kp[k + 1]):
            i = Ki[p]
            if i == k:
                dk += Kx[p]
            else:
                work[i] += Kx[p]
        for r in range(Rp[k], Rp[k + 1]):
            i = Rj[r]
            pos = Rpos[r]
            yi = work[i]
            work[i] = 0.0
            for p in range(Lp[i], pos):
                work[Li[p]] -= Lx[p] * yi
            lki = yi * Dinv[i]
            Lx[pos] = lki
            dk -= yi * lki
        D[k] = dk
        Dinv[k] = 1.0 / dk


@njit(cache=True, error_model="numpy", parallel=_PAR)  # type: ignore[call-overload]
def ldl_factor_batch(Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, D, Dinv):  # pragma: no cover - numba
    """:func:`ldl_factor` for every row of the 2-D value arrays ``Kx (K, nnzK)``, ``Lx (K, nnzL)``, ``D (K, N)``."""
    nprob = Kx.shape[0]
    N = Kp.shape[0] - 1
    for k in prange(nprob):
        work = np.zeros(N)
        ldl_factor(Kp, Ki, Kx[k], Lp, Li, Rp, Rj, Rpos, Lx[k], D[k], Dinv[k], work)


@njit(cache=True, error_model="numpy", nogil=True)
def ldl_solve(Lp, Li, Lx, Dinv, b):  # pragma: no cover - numba
    """Solve ``L D Lᵀ x = b`` in place (unit lower L in CSC without its diagonal)."""
    N = b.shape[0]
    for j in range(N):
        bj = b[j]
        for p in range(Lp[j], Lp[j + 1]):
            b[Li[p]] -= Lx[p] * bj
    for j in range(N):
        b[j] *= Dinv[j]
    for j in range(N - 1, -1, -1):
        s = b[j]
        for p in range(Lp[j], Lp[j + 1]):
            s -= Lx[p] * b[Li[p]]
        b[j] = s



# ================================================================== scaling
@njit(cache=True, error_model="numpy", nogil=True)
def _limit_scaling(v):  # pragma: no cover - numba
    if v < MIN_SCALING:
        return 1.0
    if v > MAX_SCALING:
        return MAX_SCALING
    return v


@njit(cache=True, error_model="numpy", nogil=True)
def _nanmax(a, b):  # pragma: no cover - numba
    """max propagating NaN (as ``np.maximum``)."""
    if a != a or b != b:
        return np.nan
    return a if a > b else b


@njit(cache=True, error_model="numpy", nogil=True)
def ruiz(Pp, Pi, Px, Ap, Ai, Ax, q, iters, D, E, c):  # pragma: no cover - numba
    """OSQP's Ruiz equilibration with cost scaling of one problem, in place on ``Px, Ax, q``.

    ``D, E`` (ones on entry) and ``c`` (length-1 array, 1 on entry) receive the scalings:
    ``P̄ = c D P D``, ``q̄ = c D q``, ``Ā = E A D``.  Twin: ``nodalopt.admm.qp._ruiz``.
    """
    n = q.shape[0]
    m = E.shape[0]
    Dt = np.empty(n)
    Et = np.empty(m)
    for _ in range(iters):
        for j in range(n):
            Dt[j] = 0.0
        for i in range(m):
            Et[i] = 0.0
        for j in range(n):
            for p in range(Pp[j], Pp[j + 1]):
                a = abs(Px[p])
                Dt[j] = _nanmax(Dt[j], a)
                Dt[Pi[p]] = _nanmax(Dt[Pi[p]], a)
            for p in range(Ap[j], Ap[j + 1]):
                a = abs(Ax[p])
                Dt[j] = _nanmax(Dt[j], a)
                Et[Ai[p]] = _nanmax(Et[Ai[p]], a)
        for j in range(n):
            Dt[j] = 1.0 / math.sqrt(_limit_scaling(Dt[j]))
            D[j] *= Dt[j]
            q[j] *= Dt[j]
        for i in range(m):
            Et[i] = 1.0 / math.sqrt(_limit_scaling(Et[i]))
            E[i] *= Et[i]
        for j in range(n):
            for p in range(Pp[j], Pp[j + 1]):
                Px[p] *= Dt[Pi[p]] * Dt[j]
            for p in range(Ap[j], Ap[j + 1]):
                Ax[p] *= Et[Ai[p]] * Dt[j]
        # cost scaling: mean column norm of P vs ||q||
        for j in range(n):
            Dt[j] = 0.0
        for j in range(n):
            for p in range(Pp[j], Pp[j + 1]):
                a = abs(Px[p])
                Dt[j] = _nanmax(Dt[j], a)
                Dt[Pi[p]] = _nanmax(Dt[Pi[p]], a)
        mean = 0.0
        qn = 0.0
        for j in range(n):
            mean += Dt[j]
            qn = _nanmax(qn, abs(q[j]))
        mean /= n
        ct = 1.0 / _limit_scaling(_nanmax(mean, _limit_scaling(qn)))
        for p in range(Px.shape[0]):
            Px[p] *= ct
        for j in range(n):
            q[j] *= ct
        c[0] *= ct


@njit(cache=True, error_model="numpy", parallel=_PAR)  # type: ignore[call-overload]
def ruiz_batch(Pp, Pi, Px, Ap, Ai, Ax, q, iters, D, E, c):  # pragma: no cover - numba
    """:func:`ruiz` for every problem (first axis), ``prange`` over problems."""
    for k in prange(q.shape[0]):
        ruiz(Pp, Pi, Px[k], Ap, Ai, Ax[k], q[k], iters, D[k], E[k], c[k:k + 1])

# ================================================================= mat-vecs
@njit(cache=True, error_model="numpy", nogil=True)
def csc_matvec(Ap, Ai, Ax, x, out):  # pragma: no cover - numba
    """``out = A x`` for A in CSC form."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    for j in range(Ap.shape[0] - 1):
        xj = x[j]
        for p in range(Ap[j], Ap[j + 1]):
            out[Ai[p]] += Ax[p] * xj


@njit(cache=True, error_model="numpy", nogil=True)
def csc_tmatvec(Ap, Ai, Ax, y, out):  # pragma: no cover - numba
    """``out = Aᵀ y`` for A in CSC form."""
    for j in range(Ap.shape[0] - 1):
        s = 0.0
        for p in range(Ap[j], Ap[j + 1]):
            s += Ax[p] * y[Ai[p]]
        out[j] = s


@njit(cache=True, error_model="numpy", nogil=True)
def sym_matvec(Pp, Pi, Px, x, out):  # pragma: no cover - numba
    """``out = P x`` for symmetric P given by its upper triangle (CSC, diagonal included)."""
    for i in range(out.shape[0]):
        out[i] = 0.0
    for j in range(Pp.shape[0] - 1):
        xj = x[j]
        s = 0.0
        for p in range(Pp[j], Pp[j + 1]):
            i = Pi[p]
            out[i] += Px[p] * xj
            if i != j:
                s += Px[p] * x[i]
        out[j] += s


@njit(cache=True, error_model="numpy", nogil=True)
def fill_rho(rho, row_type, rho_eq_scale, rho_min, rho_vec):  # pragma: no cover - numba
    """Per-row step sizes: ``rho`` (inequality), ``rho * rho_eq_scale`` (equality), ``rho_min`` (free)."""
    for i in range(row_type.shape[0]):
        t = row_type[i]
        if t == ROW_EQ:
            rho_vec[i] = rho * rho_eq_scale
        elif t == ROW_FREE:
            rho_vec[i] = rho_min
        else:
            rho_vec[i] = rho


@njit(cache=True, error_model="numpy", nogil=True)
def residuals(Pp, Pi, Px, Ap, Ai, Ax, q, x, z, y, Dinv, Einv, cinv, Axv, Pxv, Aty, res):  # pragma: no cover
    """Residual norms of scaled iterates into ``res`` (layout ``R_*``).

    Unscaled: ``prim = ||E⁻¹(Ax - z)||∞``, ``dual = c⁻¹||D⁻¹(Px + q + Aᵀy)||∞`` and the norms entering
    the relative tolerances; ``*_S`` entries are the same on the scaled problem (used by the rho rule);
    ``R_FINITE`` is 0.0 when any iterate or product is NaN/inf.
    """
    n = x.shape[0]
    m = z.shape[0]
    csc_matvec(Ap, Ai, Ax, x, Axv)
    sym_matvec(Pp, Pi, Px, x, Pxv)
    csc_tmatvec(Ap, Ai, Ax, y, Aty)
    for t in range(N_RES):
        res[t] = 0.0
    finite = True
    for i in range(m):
        if not (math.isfinite(z[i]) and math.isfinite(y[i]) and math.isfinite(Axv[i])):
            finite = False
        r = abs(Axv[i] - z[i])
        res[R_PRIM_S] = max(res[R_PRIM_S], r)
        res[R_NAX_S] = max(res[R_NAX_S], abs(Axv[i]))
        res[R_NZ_S] = max(res[R_NZ_S], abs(z[i]))
        res[R_PRIM] = max(res[R_PRIM], r * Einv[i])
        res[R_NAX] = max(res[R_NAX], abs(Axv[i]) * Einv[i])
        res[R_NZ] = max(res[R_NZ], abs(z[i]) * Einv[i])
    for j in range(n):
        if not (math.isfinite(x[j]) and math.isfinite(Pxv[j]) and math.isfinite(Aty[j])):
            finite = False
        r = abs(Pxv[j] + q[j] + Aty[j])
        res[R_DUAL_S] = max(res[R_DUAL_S], r)
        res[R_NPX_S] = max(res[R_NPX_S], abs(Pxv[j]))
        res[R_NATY_S] = max(res[R_NATY_S], abs(Aty[j]))
        res[R_NQ_S] = max(res[R_NQ_S], abs(q[j]))
        res[R_DUAL] = max(res[R_DUAL], r * Dinv[j])
        res[R_NPX] = max(res[R_NPX], abs(Pxv[j]) * Dinv[j])
        res[R_NATY] = max(res[R_NATY], abs(Aty[j]) * Dinv[j])
        res[R_NQ] = max(res[R_NQ], abs(q[j]) * Dinv[j])
    for t in (R_DUAL, R_NPX, R_NATY, R_NQ):
        res[t] *= cinv
    if not (finite and math.isfinite(res[R_PRIM]) and math.isfinite(res[R_DUAL])):
        res[R_FINITE] = 0.0
    else:
        res[R_FINITE] = 1.0


@njit(cache=True, error_model="numpy", nogil=True)
def _permuted_solve(perm, Lp, Li, Lx, Ldinv, rhs, b, sol):  # pragma: no cover - numba
    """``sol = K⁻¹ rhs`` in the original ordering, the factors being those of the permuted K."""
    N = perm.shape[0]
    for jj in range(N):
        b[jj] = rhs[perm[jj]]
    ldl_solve(Lp, Li, Lx, Ldinv, b)
    for jj in range(N):
        sol[perm[jj]] = b[jj]


@njit(cache=True, error_model="numpy", nogil=True)
def active_set(z, y, l, u, act):  # pragma: no cover - numba  # noqa: E741
    """Guess the active rows (OSQP rule): 1 lower (``z - l < -y``, and every ``l == u`` row),
    2 upper (``u - z < y``), else 0.

    Returns True when ``act`` changed.
    """
    changed = False
    for i in range(z.shape[0]):
        a = 0
        if l[i] == u[i] or z[i] - l[i] < -y[i]:
            a = 1
        elif u[i] - z[i] < y[i]:
            a = 2
        if a != act[i]:
            changed = True
            act[i] = a
    return changed


@njit(cache=True, error_model="numpy", nogil=True)
def polish(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dinv, Esc, Einv, cinv,  # noqa: E741
           Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, perm, pdiag_kkt, P_diag, A_pos, rho_pos,
           x, z, y, act, delta, refine_iter, refine_tol, as_iter, eps_abs, eps_rel, res,
           Lx, Ld, Ldinv, act_c, pvalid):  # pragma: no cover - numba
    """Solution polishing on the active set ``act`` (see :func:`active_set`), sharing the KKT pattern.

    The reduced KKT system ``[[P + δI, A_actᵀ], [A_act, -δI]]`` is embedded in the full pattern:
    inactive rows get zero A entries and a -1 diagonal (forcing ``y_i = 0``), so the symbolic
    analysis is reused.  Unlike OSQP, the iterative refinement ``s += K̃⁻¹(b - K s)`` starts from
    the ADMM iterate (``y`` zeroed on inactive rows), i.e. it is a proximal-point iteration: on
    degenerate problems (dependent active rows, a face of optimal x) the components that the
    reduced system leaves free keep their ADMM values instead of jumping to an arbitrary point.
    Up to ``as_iter`` primal-dual active-set corrections follow: rows violated by the polished x
    become active, active inequality rows whose multiplier has the wrong sign are released, and
    the reduced system is solved again (``act`` is updated in place).  ``(z, y)`` are then projected
    on the normal cone.  The polished point is accepted (x, z, y and ``res`` overwritten, True
    returned) when it is finite and meets the termination criterion (``eps_abs``, ``eps_rel``) on
    the unscaled problem.

    ``Lx, Ld, Ldinv`` hold the factorization of the reduced system of the active set ``act_c``
    when ``pvalid[0] == PC_FACTOR``: a round whose active set equals ``act_c`` reuses it (the
    matrices P and A are those of the factorization: the caller resets ``pvalid`` when they change),
    any other round factorizes into these arrays and records its active set there.
    """
    n = x.shape[0]
    m = z.shape[0]
    N = n + m
    Kpol = np.empty(Kx.shape[0])
    work = np.zeros(N)
    rhs = np.empty(N)
    sol = np.empty(N)
    b = np.empty(N)
    xp = np.empty(n)
    yp = np.empty(m)
    Axv = np.empty(m)
    Pxv = np.empty(n)
    Aty = np.empty(n)
    r = np.empty(N)
    d = np.empty(N)
    tol = 0.1 * eps_abs
    n_release = 0
    for rnd in range(as_iter + 1):
        reuse = pvalid[0] == PC_FACTOR
        if reuse:
            for i in range(m):
                if act[i] != act_c[i]:
                    reuse = False
                    break
        if not reuse:
            for t in range(Kx.shape[0]):
                Kpol[t] = Kx[t]
            for j in range(n):
                Kpol[pdiag_kkt[j]] = Px[P_diag[j]] + delta
            for p in range(Ax.shape[0]):
                Kpol[A_pos[p]] = Ax[p] if act[Ai[p]] != 0 else 0.0
            for i in range(m):
                Kpol[rho_pos[i]] = -delta if act[i] != 0 else -1.0
            ldl_factor(Kp, Ki, Kpol, Lp, Li, Rp, Rj, Rpos, Lx, Ld, Ldinv, work)
            for i in range(m):
                act_c[i] = act[i]
            pvalid[0] = PC_FACTOR
        for j in range(n):
            rhs[j] = -q[j]
            sol[j] = x[j]
        for i in range(m):
            rhs[n + i] = l[i] if act[i] == 1 else (u[i] if act[i] == 2 else 0.0)
            sol[n + i] = y[i] if act[i] != 0 else 0.0
        for _ in range(refine_iter):
            for j in range(n):
                xp[j] = sol[j]
            for i in range(m):
                yp[i] = sol[n + i]
            csc_matvec(Ap, Ai, Ax, xp, Axv)
            sym_matvec(Pp, Pi, Px, xp, Pxv)
            csc_tmatvec(Ap, Ai, Ax, yp, Aty)
            for j in range(n):
                r[j] = rhs[j] - Pxv[j] - Aty[j]
            rmax = 0.0
            for j in range(n):
                rmax = max(rmax, abs(r[j]))
            for i in range(m):
                r[n + i] = rhs[n + i] - Axv[i] if act[i] != 0 else yp[i]
                rmax = max(rmax, abs(r[n + i]))
            if rmax <= refine_tol:
                break
            _permuted_solve(perm, Lp, Li, Lx, Ldinv, r, b, d)
            for t in range(N):
                sol[t] += d[t]
        for j in range(n):
            xp[j] = sol[j]
        for i in range(m):
            yp[i] = sol[n + i] if act[i] != 0 else 0.0
        if rnd == as_iter:
            break
        # rows violated by x are added first; wrong-sign multipliers are released (one at a time) only
        # once x is feasible
        csc_matvec(Ap, Ai, Ax, xp, Axv)
        changed = False
        for i in range(m):
            if act[i] == 0:
                if (Axv[i] - u[i]) * Einv[i] > tol:
                    act[i] = 2
                    changed = True
                elif (l[i] - Axv[i]) * Einv[i] > tol:
                    act[i] = 1
                    changed = True
        if not changed:  # release wrong-sign rows: all of them the first time, then the worst one
            worst = -1
            wmax = tol
            for i in range(m):
                if act[i] != 0 and l[i] != u[i]:
                    yu = yp[i] * Esc[i] * cinv
                    w = yu if act[i] == 1 else -yu
                    if w > tol and n_release == 0:
                        act[i] = 0
                        changed = True
                    elif w > wmax:
                        wmax = w
                        worst = i
            if worst >= 0 and n_release > 0:
                act[worst] = 0
                changed = True
            n_release += 1
        if not changed:
            break
    zp = np.empty(m)
    csc_matvec(Ap, Ai, Ax, xp, zp)
    for i in range(m):  # projection on the normal cone
        zt = zp[i] + yp[i]
        zi = zt
        if zi < l[i]:
            zi = l[i]
        if zi > u[i]:
            zi = u[i]
        zp[i] = zi
        yp[i] = zt - zi
    pres = np.empty(N_RES)
    residuals(Pp, Pi, Px, Ap, Ai, Ax, q, xp, zp, yp, Dinv, Einv, cinv, Axv, Pxv, Aty, pres)
    if pres[R_FINITE] == 0.0:
        return False
    eps_p = eps_abs + eps_rel * max(pres[R_NAX], pres[R_NZ])
    eps_d = eps_abs + eps_rel * max(pres[R_NPX], max(pres[R_NATY], pres[R_NQ]))
    if pres[R_PRIM] <= eps_p and pres[R_DUAL] <= eps_d:
        for j in range(n):
            x[j] = xp[j]
        for i in range(m):
            z[i] = zp[i]
            y[i] = yp[i]
        for t in range(N_RES):
            res[t] = pres[t]
        return True
    return False


# ============================================================ OSQP iteration
@njit(cache=True, error_model="numpy", nogil=True)
def solve_one(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dsc, Esc, cost,  # noqa: E741
              Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, Ld, Ldinv, perm, rho_pos, pdiag_kkt, P_diag, A_pos,
              row_type, rho_vec, rho, refactor, x, z, y, fpar, ipar, out,
              Lx_c, Ld_c, Ldinv_c, act_c, pvalid):  # pragma: no cover - numba
    """OSQP iterations for one (Ruiz-scaled) problem, in place on ``x, z, y`` (scaled iterates).

    ``rho`` is a length-1 array holding the scalar step size (updated by the adaptive rule),
    ``rho_vec`` the per-row step sizes the factorization ``Lx, Ld, Ldinv`` was built with (updated
    together with ``Kx`` when rho adapts).  ``refactor`` non-zero: the stored factorization does not
    match ``rho_vec`` (e.g. new bounds changed a row's kind); it is rebuilt before iterating.
    Residuals and tolerances are measured on the unscaled problem; see the module docstring for
    the layout of ``fpar``, ``ipar`` and ``out``.  ``Lx_c, Ld_c, Ldinv_c, act_c, pvalid`` are the
    problem's polishing cache (see :func:`polish`); with ``polish_warm`` and a known active set
    (``pvalid[0] != PC_NONE``), polishing on that set is tried before the first iteration, so a
    warm start whose active set has not changed costs a few triangular solves.
    """
    n = q.shape[0]
    m = l.shape[0]
    N = n + m
    sigma = fpar[F_SIGMA]
    alpha = fpar[F_ALPHA]
    eps_abs = fpar[F_EPS_ABS]
    eps_rel = fpar[F_EPS_REL]
    eps_pinf = fpar[F_EPS_PINF]
    eps_dinf = fpar[F_EPS_DINF]
    max_iter = ipar[I_MAX_ITER]
    check_every = ipar[I_CHECK]
    adapt_every = ipar[I_ADAPT]

    b = np.empty(N)
    work = np.zeros(N)
    xt = np.empty(n)
    zt = np.empty(m)
    x_prev = np.empty(n)
    z_prev = np.empty(m)
    y_prev = np.empty(m)
    Axv = np.empty(m)
    Pxv = np.empty(n)
    Aty = np.empty(n)
    res = np.empty(N_RES)
    tmp_n = np.empty(n)
    tmp_m = np.empty(m)
    rhoinv = np.empty(m)
    Dinv = np.empty(n)
    Einv = np.empty(m)
    for j in range(n):
        Dinv[j] = 1.0 / Dsc[j]
    for i in range(m):
        Einv[i] = 1.0 / Esc[i]
        rhoinv[i] = 1.0 / rho_vec[i]
    cinv = 1.0 / cost
    n_refact = 0
    do_polish = ipar[I_POLISH] != 0
    pol_delta = fpar[F_POL_DELTA]
    pol_tol = fpar[F_POL_TOL]
    pol_refine = ipar[I_POL_REFINE]
    pol_rtol = fpar[F_POL_RTOL]
    pol_every = ipar[I_POL_EVERY]
    pol_as = ipar[I_POL_AS]
    pol_gap = pol_every
    act = np.zeros(m, dtype=np.int8)
    last_polish = -1
    n_pol = 0
    pol = 0
    if refactor != 0:
        for i in range(m):
            Kx[rho_pos[i]] = -rhoinv[i]
        ldl_factor(Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, Ld, Ldinv, work)
        n_refact += 1

    status = 0
    prim = np.nan
    dual = np.nan
    it = 0
    if do_polish and ipar[I_POL_WARM] != 0 and pvalid[0] != PC_NONE:
        for i in range(m):
            act[i] = act_c[i]
        n_pol += 1
        if polish(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dinv, Esc, Einv, cinv, Kp, Ki, Kx, Lp, Li, Rp, Rj,
                  Rpos, perm, pdiag_kkt, P_diag, A_pos, rho_pos, x, z, y, act, pol_delta, pol_refine,
                  pol_rtol, pol_as, eps_abs, eps_rel, res, Lx_c, Ld_c, Ldinv_c, act_c, pvalid):
            status = 1
            pol = 1
    last_it = max_iter if status == 0 else 0
    for it in range(1, last_it + 1):
        for j in range(n):
            x_prev[j] = x[j]
        for i in range(m):
            z_prev[i] = z[i]
            y_prev[i] = y[i]
        # one KKT solve in the permuted ordering
        for jj in range(N):
            o = perm[jj]
            if o < n:
                b[jj] = sigma * x[o] - q[o]
            else:
                i = o - n
                b[jj] = z[i] - y[i] * rhoinv[i]
        ldl_solve(Lp, Li, Lx, Ldinv, b)
        for jj in range(N):
            o = perm[jj]
            if o < n:
                xt[o] = b[jj]
            else:
                i = o - n
                zt[i] = z[i] + (b[jj] - y[i]) * rhoinv[i]
        # relaxation, projection, dual update
        for j in range(n):
            x[j] = alpha * xt[j] + (1.0 - alpha) * x_prev[j]
        for i in range(m):
            zr = alpha * zt[i] + (1.0 - alpha) * z_prev[i]
            zi = zr + y[i] * rhoinv[i]
            if zi < l[i]:
                zi = l[i]
            if zi > u[i]:
                zi = u[i]
            z[i] = zi
            y[i] = y[i] + rho_vec[i] * (zr - zi)

        if it % check_every != 0 and it != max_iter:
            continue
        # ---- residuals (unscaled) and termination
        residuals(Pp, Pi, Px, Ap, Ai, Ax, q, x, z, y, Dinv, Einv, cinv, Axv, Pxv, Aty, res)
        prim = res[R_PRIM]
        dual = res[R_DUAL]
        if res[R_FINITE] == 0.0:
            status = -1
            break
        eps_p = eps_abs + eps_rel * max(res[R_NAX], res[R_NZ])
        eps_d = eps_abs + eps_rel * max(res[R_NPX], max(res[R_NATY], res[R_NQ]))
        if prim <= eps_p and dual <= eps_d:
            status = 1
            if do_polish:
                active_set(z, y, l, u, act)
                pol = 1 if polish(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dinv, Esc, Einv, cinv, Kp, Ki, Kx, Lp, Li, Rp, Rj,
                                  Rpos, perm, pdiag_kkt, P_diag, A_pos, rho_pos, x, z, y, act, pol_delta,
                                  pol_refine, pol_rtol, pol_as, eps_abs, eps_rel, res, Lx_c, Ld_c, Ldinv_c, act_c,
                                  pvalid) else -1
            break
        # ---- early polishing: once the residuals are below polish_tol and the active set guess changed,
        # the gap between attempts doubling after every failure
        if do_polish and pol_tol > 0.0 and it - last_polish >= pol_gap \
                and prim <= pol_tol * (1.0 + max(res[R_NAX], res[R_NZ])) \
                and dual <= pol_tol * (1.0 + max(res[R_NPX], max(res[R_NATY], res[R_NQ]))):
            if active_set(z, y, l, u, act) or last_polish < 0:
                last_polish = it
                n_pol += 1
                if polish(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dinv, Esc, Einv, cinv, Kp, Ki, Kx, Lp, Li, Rp, Rj,
                          Rpos, perm, pdiag_kkt, P_diag, A_pos, rho_pos, x, z, y, act, pol_delta, pol_refine,
                          pol_rtol, pol_as, eps_abs, eps_rel, res, Lx_c, Ld_c, Ldinv_c, act_c, pvalid):
                    status = 1
                    pol = 1
                    break
                pol_gap *= 2
        # ---- primal infeasibility: dy = y - y_prev projected on the polar of the recession cone
        norm_dy = 0.0
        for i in range(m):
            d = y[i] - y_prev[i]
            if u[i] == np.inf:
                if l[i] == -np.inf:
                    d = 0.0
                elif d > 0.0:
                    d = 0.0
            elif l[i] == -np.inf and d < 0.0:
                d = 0.0
            tmp_m[i] = d
            norm_dy = max(norm_dy, abs(d) * Esc[i])
        if norm_dy > DIV_TOL:
            lhs = 0.0
            for i in range(m):
                d = tmp_m[i]
                if d > 0.0:
                    lhs += u[i] * d
                elif d < 0.0:
                    lhs += l[i] * d
            if lhs < -eps_pinf * norm_dy:
                csc_tmatvec(Ap, Ai, Ax, tmp_m, tmp_n)
                na = 0.0
                for j in range(n):
                    na = max(na, abs(tmp_n[j]) * Dinv[j])
                if na < eps_pinf * norm_dy:
                    status = -2
                    break
        # ---- dual infeasibility: dx = x - x_prev
        norm_dx = 0.0
        qdx = 0.0
        for j in range(n):
            d = x[j] - x_prev[j]
            tmp_n[j] = d
            norm_dx = max(norm_dx, abs(d) * Dsc[j])
            qdx += q[j] * d
        if norm_dx > DIV_TOL and qdx < -cost * eps_dinf * norm_dx:
            sym_matvec(Pp, Pi, Px, tmp_n, Pxv)
            np_ = 0.0
            for j in range(n):
                np_ = max(np_, abs(Pxv[j]) * Dinv[j])
            if np_ < cost * eps_dinf * norm_dx:
                csc_matvec(Ap, Ai, Ax, tmp_n, tmp_m)
                ok = True
                for i in range(m):
                    a = tmp_m[i] * Einv[i]
                    if u[i] < np.inf and a > eps_dinf * norm_dx:
                        ok = False
                    if l[i] > -np.inf and a < -eps_dinf * norm_dx:
                        ok = False
                if ok:
                    status = -3
                    break
        # ---- adaptive rho (scaled residual balance, OSQP rule)
        if adapt_every > 0 and it % adapt_every == 0:
            pn = res[R_PRIM_S] / (max(res[R_NAX_S], res[R_NZ_S]) + DIV_TOL)
            dn = res[R_DUAL_S] / (max(res[R_NPX_S], max(res[R_NATY_S], res[R_NQ_S])) + DIV_TOL)
            rho_new = rho[0] * math.sqrt(pn / (dn + DIV_TOL))
            rho_new = min(max(rho_new, fpar[F_RHO_MIN]), fpar[F_RHO_MAX])
            tol = fpar[F_ADAPT_TOL]
            if rho_new > rho[0] * tol or rho_new < rho[0] / tol:
                rho[0] = rho_new
                fill_rho(rho_new, row_type, fpar[F_RHO_EQ], fpar[F_RHO_MIN], rho_vec)
                for i in range(m):
                    rhoinv[i] = 1.0 / rho_vec[i]
                    Kx[rho_pos[i]] = -rhoinv[i]
                ldl_factor(Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, Ld, Ldinv, work)
                n_refact += 1

    if pol == 1:
        prim = res[R_PRIM]
        dual = res[R_DUAL]
    out[O_ITER] = it
    out[O_PRIM] = prim
    out[O_DUAL] = dual
    out[O_STATUS] = status
    out[O_REFACT] = n_refact
    out[O_POLISH] = pol
    out[O_NPOL] = n_pol


@njit(cache=True, error_model="numpy", parallel=_PAR)  # type: ignore[call-overload]
def solve_batch(Pp, Pi, Px, Ap, Ai, Ax, q, l, u, Dsc, Esc, cost,  # noqa: E741
                Kp, Ki, Kx, Lp, Li, Rp, Rj, Rpos, Lx, Ld, Ldinv, perm, rho_pos, pdiag_kkt, P_diag, A_pos,
                row_type, rho_vec, rho, refactor, x, z, y, fpar, ipar, out,
                Lx_c, Ld_c, Ldinv_c, act_c, pvalid):  # pragma: no cover - numba
    """:func:`solve_one` for every problem (first axis of all 2-D arrays), ``prange`` over problems."""
    nprob = q.shape[0]
    for k in prange(nprob):
        solve_one(Pp, Pi, Px[k], Ap, Ai, Ax[k], q[k], l[k], u[k], Dsc[k], Esc[k], cost[k],
                  Kp, Ki, Kx[k], Lp, Li, Rp, Rj, Rpos, Lx[k], Ld[k], Ldinv[k], perm, rho_pos, pdiag_kkt, P_diag,
                  A_pos, row_type[k], rho_vec[k], rho[k:k + 1], refactor[k], x[k], z[k], y[k], fpar, ipar, out[k],
                  Lx_c[k], Ld_c[k], Ldinv_c[k], act_c[k], pvalid[k:k + 1])
