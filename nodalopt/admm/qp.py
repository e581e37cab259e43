"""Batched OSQP-style solver for many small convex QPs sharing one sparsity pattern.

Problem (OSQP convention), one per batch member::

    minimize    ½ xᵀ P x + qᵀ x
    subject to  l ≤ A x ≤ u          (l = u: equality row, ±inf allowed)

KKT conditions: ``P x + q + Aᵀ y = 0`` with ``y_i ≥ 0`` where the upper bound is
active and ``y_i ≤ 0`` where the lower bound is active (``y`` is the price of the
row: the derivative of the optimal cost with respect to ``u_i`` resp. ``l_i``
with a minus sign, e.g. ``-y`` of a balance row ``A x = d`` is its marginal cost).

Workflow::

    pattern = QPPattern.from_matrices(P, A)              # once per template
    batch = QPBatch(pattern, P_data, A_data, q, l, u)    # (K, ·) arrays
    factors = factorize(batch, settings)                 # symbolic once per pattern, numeric in numba
    result = solve(batch, factors, settings)             # OSQP iterations in numba, prange over problems

The symbolic analysis of the quasi-definite KKT matrix
``[[P + σI, Aᵀ], [A, -diag(1/ρ)]]`` (fill-reducing ordering, elimination tree,
pattern of L) is done once per :class:`QPPattern` and cached.  The Ruiz scaling,
the numeric LDLᵀ factorization (QDLDL-like up-looking algorithm) and the
iterations run in :mod:`nodalopt.admm.kernels`.  :func:`solve_numpy` is the plain
numpy/scipy twin of the whole pipeline (same scaling, same iteration sequence; KKT
solves by ``scipy.sparse.linalg.splu``), :func:`ldl_numpy` the dense twin of the
factorization.

Algorithm: OSQP (Stellato et al. 2020) with Ruiz equilibration, adaptive rho
(refactorizing only the problem concerned), OSQP's termination and infeasibility
criteria, and solution polishing with two changes: the refinement starts from the
ADMM iterate and a few primal-dual active-set corrections follow, and polishing is
also tried early (``QPSettings.polish_tol``), ending the iterations as soon as a
polished point meets the termination criterion.  Polished solutions satisfy the
KKT conditions of their active set to ``polish_refine_tol * eps_abs`` (1e-10 with the
defaults, 1e-8 with ADMM's settings; each refinement step gains about two digits, so with
``polish_refine_tol=0`` they reach ~1e-13), which is what makes the duals usable as
prices; plain ADMM at eps 1e-8 gives duals to ~1e-5 relative on ill-conditioned
problems.

Warm re-solves (``QPSettings.polish_warm``): the factors remember each problem's last
polishing active set and its reduced KKT factorization; a re-solve first polishes on
that set, so when the active set did not change (late ADMM iterations) a solve costs
a few triangular solves and no iteration or factorization.

The twin reproduces the kernel's iterates to ~1e-10 as long as both take the same
discrete decisions (rho updates, polishing accepted or not); on degenerate
problems (dependent active rows, non-unique duals) the two factorizations can steer
polishing differently, and both results are then valid but different KKT points.

Status codes (:attr:`QPResult.status`): 1 solved, 0 iteration limit, -1 NaN/inf
encountered, -2 primal infeasible (or some ``l > u``), -3 dual infeasible
(certificates as in OSQP).
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.sparse.linalg import splu

from . import kernels

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

STATUS_SOLVED = 1
STATUS_MAX_ITER = 0
STATUS_NONFINITE = -1
STATUS_PRIMAL_INFEASIBLE = -2
STATUS_DUAL_INFEASIBLE = -3

_MIN_SCALING = kernels.MIN_SCALING
_MAX_SCALING = kernels.MAX_SCALING


# ============================================================== data classes
@dataclass(frozen=True, eq=False)
class QPPattern:
    """Sparsity pattern shared by a batch of QPs.

    Parameters
    ----------
    n, m : int
        Number of variables and of constraint rows.
    P_indptr, P_indices : ndarray of int
        Upper triangle of P in CSC form (row indices strictly increasing in each
        column, full diagonal present: the diagonal entry is the last of its column).
    A_indptr, A_indices : ndarray of int
        A (m x n) in CSC form, row indices strictly increasing in each column.

    Notes
    -----
    Compared by identity (``eq=False``) so that it can key the cache of symbolic analyses.
    """

    n: int
    m: int
    P_indptr: IntArray
    P_indices: IntArray
    A_indptr: IntArray
    A_indices: IntArray

    def __post_init__(self) -> None:
        for name in ("P_indptr", "P_indices", "A_indptr", "A_indices"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "m", int(self.m))
        n, m = self.n, self.m
        if n < 1 or m < 0:
            raise ValueError(f"need n >= 1 and m >= 0, got n={n}, m={m}")
        _check_csc(self.P_indptr, self.P_indices, n, n, "P")
        _check_csc(self.A_indptr, self.A_indices, m, n, "A")
        pcol = np.repeat(np.arange(n), np.diff(self.P_indptr))
        if np.any(self.P_indices > pcol):
            raise ValueError("P pattern must be upper triangular")
        ends = self.P_indptr[1:] - 1
        if np.any(np.diff(self.P_indptr) == 0) or np.any(self.P_indices[ends] != np.arange(n)):
            raise ValueError("P pattern must contain the full diagonal")

    @property
    def nnz_P(self) -> int:
        """Number of stored entries of the upper triangle of P."""
        return int(self.P_indptr[-1])

    @property
    def nnz_A(self) -> int:
        """Number of stored entries of A."""
        return int(self.A_indptr[-1])

    @classmethod
    def from_matrices(cls, P: sp.spmatrix | sp.sparray, A: sp.spmatrix | sp.sparray) -> QPPattern:
        """Pattern of scipy matrices, explicit zeros included.

        Parameters
        ----------
        P : sparse matrix (n x n)
            Only entries with ``row <= col`` are used (the diagonal is always added).
        A : sparse matrix (m x n)

        Returns
        -------
        QPPattern
        """
        Pc = sp.coo_matrix(P)
        Ac = sp.coo_matrix(A)
        n = Pc.shape[0]
        if Pc.shape != (n, n) or Ac.shape[1] != n:
            raise ValueError(f"incompatible shapes P {Pc.shape}, A {Ac.shape}")
        m = Ac.shape[0]
        keep = Pc.row <= Pc.col
        rows = np.concatenate([Pc.row[keep], np.arange(n)]).astype(np.int64)
        cols = np.concatenate([Pc.col[keep], np.arange(n)]).astype(np.int64)
        keys = np.unique(cols * n + rows)
        P_indptr = np.concatenate([[0], np.cumsum(np.bincount(keys // n, minlength=n))])
        akeys = np.unique(Ac.col.astype(np.int64) * max(m, 1) + Ac.row.astype(np.int64))
        A_indptr = np.concatenate([[0], np.cumsum(np.bincount(akeys // max(m, 1), minlength=n))])
        return cls(n, m, P_indptr, keys % n, A_indptr, akeys % max(m, 1))

    def P_values(self, P: sp.spmatrix | sp.sparray) -> FloatArray:
        """Values of P's upper triangle in pattern order (duplicates summed; absent entries are 0).

        Raises
        ------
        ValueError
            If P has an upper-triangular entry outside the pattern.
        """
        Pc = sp.coo_matrix(P)
        keep = Pc.row <= Pc.col
        return _values(self.P_indptr, self.P_indices, self.n, Pc.row[keep], Pc.col[keep], Pc.data[keep], "P")

    def A_values(self, A: sp.spmatrix | sp.sparray) -> FloatArray:
        """Values of A in pattern order (duplicates summed; absent entries are 0).

        Raises
        ------
        ValueError
            If A has an entry outside the pattern.
        """
        Ac = sp.coo_matrix(A)
        return _values(self.A_indptr, self.A_indices, self.m, Ac.row, Ac.col, Ac.data, "A")


def _check_csc(indptr: IntArray, indices: IntArray, nrows: int, ncols: int, name: str) -> None:
    if indptr.shape != (ncols + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name}_indptr must be a non-decreasing array of length {ncols + 1} starting at 0")
    if indices.shape != (indptr[-1],):
        raise ValueError(f"{name}_indices must have {indptr[-1]} entries")
    if indices.size and (indices.min() < 0 or indices.max() >= nrows):
        raise ValueError(f"{name}_indices out of range")
    starts = np.zeros(indices.size, dtype=bool)
    starts[indptr[:-1][np.diff(indptr) > 0]] = True
    if np.any((np.diff(indices) <= 0) & ~starts[1:]):
        raise ValueError(f"{name}_indices must be strictly increasing within each column")


def _values(indptr: IntArray, indices: IntArray, nrows: int, row: NDArray[np.int32], col: NDArray[np.int32],
            data: FloatArray, name: str) -> FloatArray:
    nr = max(nrows, 1)
    pkeys = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr)) * nr + indices
    keys = col.astype(np.int64) * nr + row.astype(np.int64)
    pos = np.searchsorted(pkeys, keys)
    pos_c = np.minimum(pos, max(pkeys.size - 1, 0))
    if keys.size and (pkeys.size == 0 or np.any(pkeys[pos_c] != keys)):
        raise ValueError(f"{name} has entries outside the pattern")
    out = np.zeros(pkeys.size)
    np.add.at(out, pos, np.asarray(data, dtype=np.float64))
    return out


@dataclass
class QPBatch:
    """K problems with a shared :class:`QPPattern`; all arrays float64, C-contiguous.

    Parameters
    ----------
    pattern : QPPattern
    P_data : ndarray (K, nnz_P)
        Values of the upper triangle of P, pattern order.
    A_data : ndarray (K, nnz_A)
        Values of A, pattern order.
    q : ndarray (K, n)
    l, u : ndarray (K, m)
        Bounds, ``-inf``/``inf`` allowed.
    """

    pattern: QPPattern
    P_data: FloatArray
    A_data: FloatArray
    q: FloatArray
    l: FloatArray  # noqa: E741
    u: FloatArray

    def __post_init__(self) -> None:
        pt = self.pattern
        self.P_data = _as2d(self.P_data, pt.nnz_P, "P_data")
        K = self.P_data.shape[0]
        self.A_data = _as2d(self.A_data, pt.nnz_A, "A_data", K)
        self.q = _as2d(self.q, pt.n, "q", K)
        self.l = _as2d(self.l, pt.m, "l", K)
        self.u = _as2d(self.u, pt.m, "u", K)

    @property
    def K(self) -> int:
        """Number of problems."""
        return int(self.P_data.shape[0])

    @classmethod
    def from_matrices(cls, pattern: QPPattern, P: list[sp.spmatrix | sp.sparray],
                      A: list[sp.spmatrix | sp.sparray], q: ArrayLike, l: ArrayLike, u: ArrayLike) -> QPBatch:  # noqa: E741
        """Batch from lists of scipy matrices (values taken at the pattern's positions).

        Parameters
        ----------
        pattern : QPPattern
        P, A : list of sparse matrices
            One per problem; entries must lie inside the pattern.
        q, l, u : array_like (K, n) / (K, m)

        Returns
        -------
        QPBatch
        """
        P_data = np.stack([pattern.P_values(Pk) for Pk in P]) if P else np.zeros((0, pattern.nnz_P))
        A_data = np.stack([pattern.A_values(Ak) for Ak in A]) if A else np.zeros((0, pattern.nnz_A))
        return cls(pattern, P_data, A_data, np.asarray(q, float), np.asarray(l, float), np.asarray(u, float))

    def subset(self, index: Sequence[int] | NDArray[np.integer]) -> QPBatch:
        """Problems ``index`` (integer indices) as a new batch sharing the pattern."""
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        return QPBatch(self.pattern, self.P_data[idx], self.A_data[idx], self.q[idx], self.l[idx], self.u[idx])


def _as2d(a: ArrayLike, width: int, name: str, K: int | None = None) -> FloatArray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim == 1 and K is None:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width or (K is not None and arr.shape[0] != K):
        raise ValueError(f"{name} must have shape ({'K' if K is None else K}, {width}), got {arr.shape}")
    return np.ascontiguousarray(arr)


@dataclass
class QPSettings:
    """Solver settings (OSQP names and meaning).

    Parameters
    ----------
    rho : float
        Initial ADMM step size of inequality rows.
    sigma : float
        Regularization of the x block of the KKT matrix.
    alpha : float
        Over-relaxation (0 < alpha < 2).
    eps_abs, eps_rel : float
        Termination: ``||A x - z||∞ ≤ eps_abs + eps_rel max(||A x||∞, ||z||∞)`` and
        ``||P x + q + Aᵀ y||∞ ≤ eps_abs + eps_rel max(||P x||∞, ||Aᵀ y||∞, ||q||∞)``, unscaled.
    max_iter : int
        Iteration limit per problem.
    check_every : int
        Residuals (termination, infeasibility, rho adaptation) are evaluated every this many iterations.
    rho_eq_scale : float
        Equality rows (``u - l < eq_tol`` after scaling) use ``rho * rho_eq_scale``.
    rho_min, rho_max : float
        Bounds of the step size; free rows (both bounds infinite) use ``rho_min``.
    eq_tol : float
        Rows with scaled ``u - l`` below this count as equality rows (OSQP's RHO_TOL).
    adaptive_rho : bool
        Rebalance rho from the residual ratio (OSQP rule) and refactorize that problem's KKT matrix.
    adaptive_rho_interval : int
        Iterations between rho updates (rounded up to a multiple of ``check_every``).
    adaptive_rho_tolerance : float
        Rho is only changed when the new value differs by more than this factor.
    scaling : int
        Ruiz equilibration iterations (0: no scaling), with OSQP's cost scaling.
    eps_prim_inf, eps_dual_inf : float
        Tolerances of the infeasibility certificates.
    polish : bool
        Solution polishing (OSQP's, refinement started from the ADMM iterate): the active set
        guessed from the iterates defines an equality-constrained QP solved with the same
        (symbolically analysed) KKT pattern and iterative refinement; the polished point is kept
        only when it meets the termination criterion.  Gives x and y accurate to near machine
        precision whenever the active set is identified.  Tried when ADMM has converged and,
        earlier, see ``polish_tol``.
    polish_tol : float
        Early polishing: once ``prim ≤ polish_tol (1 + max(||Ax||, ||z||))`` and
        ``dual ≤ polish_tol (1 + max(||Px||, ||Aᵀy||, ||q||))``, polishing is tried (again whenever
        the active-set guess has changed, see ``polish_interval``); success ends the iterations.
        0 disables early polishing.
    polish_interval : int
        Iterations between early polishing attempts, doubled after every failed attempt.
    polish_active_set_iter : int
        Primal-dual active-set corrections per polishing attempt (rows violated by the polished x are
        added, inequality rows with wrong-sign multipliers released, the reduced system solved again).
    polish_delta : float
        Regularization of the polishing system.
    polish_refine_iter : int
        Iterative refinement steps of polishing (at most).
    polish_refine_tol : float
        Refinement stops early once the ∞-norm of the reduced KKT residual is at most
        ``polish_refine_tol * eps_abs`` (in the scaled problem); 0 always takes
        ``polish_refine_iter`` steps.
    polish_warm : bool
        A solve with :class:`Factors` that already polished (a warm-started re-solve, e.g. the next
        ADMM iteration) first tries polishing on the active set of the last polishing, before any
        iteration; the factorization of that reduced system is kept in the factors, so when the
        active set has not changed the solve costs ``polish_refine_iter`` triangular solves.  The
        point is accepted only if it meets the termination criterion, as any polished point.
    ordering : str
        Fill-reducing ordering of the KKT matrix: ``"auto"`` (fewest nonzeros in L among the
        others), ``"md"`` (minimum degree), ``"mmd"`` (SuperLU's multiple minimum degree on
        the pattern), ``"rcm"`` (reverse Cuthill-McKee) or ``"natural"``.
    """

    rho: float = 0.1
    sigma: float = 1e-6
    alpha: float = 1.6
    eps_abs: float = 1e-8
    eps_rel: float = 1e-8
    max_iter: int = 10000
    check_every: int = 5
    rho_eq_scale: float = 1e3
    rho_min: float = 1e-6
    rho_max: float = 1e6
    eq_tol: float = 1e-4
    adaptive_rho: bool = True
    adaptive_rho_interval: int = 25
    adaptive_rho_tolerance: float = 5.0
    scaling: int = 10
    eps_prim_inf: float = 1e-4
    eps_dual_inf: float = 1e-4
    polish: bool = True
    polish_tol: float = 1e-3
    polish_interval: int = 25
    polish_active_set_iter: int = 3
    polish_delta: float = 1e-6
    polish_refine_iter: int = 5
    polish_refine_tol: float = 1e-2
    polish_warm: bool = True
    ordering: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 2.0:
            raise ValueError("alpha must lie in (0, 2)")
        if self.rho <= 0 or self.sigma <= 0 or self.rho_min <= 0 or self.rho_max < self.rho_min:
            raise ValueError("rho, sigma, rho_min must be positive and rho_max >= rho_min")
        if self.check_every < 1 or self.max_iter < 1:
            raise ValueError("check_every and max_iter must be >= 1")
        if self.ordering not in _ORDERINGS:
            raise ValueError(f"ordering must be one of {_ORDERINGS}")

    def _adapt_interval(self) -> int:
        if not self.adaptive_rho or self.adaptive_rho_interval <= 0:
            return 0
        c = self.check_every
        return -(-self.adaptive_rho_interval // c) * c

    def _fpar(self) -> FloatArray:
        f = np.empty(kernels.N_FPAR)
        f[kernels.F_SIGMA] = self.sigma
        f[kernels.F_ALPHA] = self.alpha
        f[kernels.F_EPS_ABS] = self.eps_abs
        f[kernels.F_EPS_REL] = self.eps_rel
        f[kernels.F_EPS_PINF] = self.eps_prim_inf
        f[kernels.F_EPS_DINF] = self.eps_dual_inf
        f[kernels.F_RHO_EQ] = self.rho_eq_scale
        f[kernels.F_RHO_MIN] = self.rho_min
        f[kernels.F_RHO_MAX] = self.rho_max
        f[kernels.F_ADAPT_TOL] = self.adaptive_rho_tolerance
        f[kernels.F_POL_DELTA] = self.polish_delta
        f[kernels.F_POL_TOL] = self.polish_tol
        f[kernels.F_POL_RTOL] = self.polish_refine_tol * self.eps_abs
        return f

    def _ipar(self) -> IntArray:
        i = np.empty(kernels.N_IPAR, dtype=np.int64)
        i[kernels.I_MAX_ITER] = self.max_iter
        i[kernels.I_CHECK] = self.check_every
        i[kernels.I_ADAPT] = self._adapt_interval()
        i[kernels.I_POLISH] = int(self.polish)
        i[kernels.I_POL_REFINE] = self.polish_refine_iter
        i[kernels.I_POL_EVERY] = self.polish_interval
        i[kernels.I_POL_AS] = self.polish_active_set_iter
        i[kernels.I_POL_WARM] = int(self.polish_warm)
        return i


@dataclass
class QPResult:
    """Solutions of a batch (unscaled).

    Attributes
    ----------
    x : ndarray (K, n)
    y : ndarray (K, m)
        Duals, ``P x + q + Aᵀ y = 0``, ``y ≥ 0`` at active upper bounds, ``≤ 0`` at active lower bounds.
    z : ndarray (K, m)
        ``A x`` projected on ``[l, u]``.
    iterations : ndarray (K,) of int
    prim_res, dual_res : ndarray (K,)
        Unscaled ∞-norm residuals at the last check.
    status : ndarray (K,) of int
        1 solved, 0 iteration limit, -1 NaN/inf, -2 primal infeasible, -3 dual infeasible.
    rho : ndarray (K,)
        Final step size of each problem.
    refactorizations : ndarray (K,) of int
        KKT refactorizations made during the solve (rho updates, changed row kinds).
    polished : ndarray (K,) of int
        1 solution from polishing, -1 final polishing rejected (the ADMM iterate is returned),
        0 not tried.
    polish_attempts : ndarray (K,) of int
        Early polishing attempts (each costs one KKT factorization and a few solves).
    """

    x: FloatArray
    y: FloatArray
    z: FloatArray
    iterations: IntArray
    prim_res: FloatArray
    dual_res: FloatArray
    status: IntArray
    rho: FloatArray = field(default_factory=lambda: np.zeros(0))
    refactorizations: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    polished: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    polish_attempts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def objective(self, batch: QPBatch) -> FloatArray:
        """``½ xᵀPx + qᵀx`` of each problem at the returned ``x``."""
        pt = batch.pattern
        col = np.repeat(np.arange(pt.n), np.diff(pt.P_indptr))
        row = pt.P_indices
        w = np.where(row == col, 0.5, 1.0)
        quad = np.einsum("kp,kp,kp->k", batch.P_data * w, self.x[:, row], self.x[:, col])
        return np.asarray(quad + np.einsum("kj,kj->k", batch.q, self.x), dtype=np.float64)


# ========================================================== symbolic analysis
_ORDERINGS = ("auto", "md", "mmd", "rcm", "natural")


@dataclass(frozen=True, eq=False)
class KKTSymbolic:
    """Symbolic LDLᵀ analysis of the KKT matrix of a :class:`QPPattern`.

    Attributes
    ----------
    n, m, N : int
        Sizes (``N = n + m``).
    perm : ndarray (N,)
        Fill-reducing ordering: position ``j`` of the permuted matrix is original index ``perm[j]``.
    Kp, Ki : ndarray
        Upper triangle of the permuted KKT matrix, CSC.
    P_pos, A_pos, rho_pos : ndarray
        Position in the KKT values of every P entry, A entry and lower-right diagonal entry.
    P_diag : ndarray (n,)
        Position of the diagonal entries in the P values.
    pdiag_kkt : ndarray (n,)
        Position of P's diagonal entries in the KKT values.
    Lp, Li : ndarray
        Strict lower triangle of L, CSC (sorted rows).
    Rp, Rj, Rpos : ndarray
        Same pattern by rows, with positions into the values of L.
    parent : ndarray (N,)
        Elimination tree (-1 at roots).
    ordering : str
        Name of the ordering chosen.
    fill : dict
        nnz(L) of every ordering tried (``-1`` when abandoned as worse than the best so far).
    """

    n: int
    m: int
    N: int
    perm: IntArray
    Kp: IntArray
    Ki: IntArray
    P_pos: IntArray
    A_pos: IntArray
    rho_pos: IntArray
    P_diag: IntArray
    pdiag_kkt: IntArray
    Lp: IntArray
    Li: IntArray
    Rp: IntArray
    Rj: IntArray
    Rpos: IntArray
    parent: IntArray
    ordering: str
    fill: dict[str, int]

    @property
    def nnz_L(self) -> int:
        """Nonzeros of the strict lower triangle of L."""
        return int(self.Lp[-1])


_SYMBOLIC_CACHE: weakref.WeakKeyDictionary[QPPattern, dict[str, KKTSymbolic]] = weakref.WeakKeyDictionary()


def _kkt_entries(pattern: QPPattern) -> tuple[IntArray, IntArray]:
    """Rows and columns (upper triangle, original ordering) of the KKT entries: P, then A, then rho diagonal."""
    n, m = pattern.n, pattern.m
    pcol = np.repeat(np.arange(n, dtype=np.int64), np.diff(pattern.P_indptr))
    acol = np.repeat(np.arange(n, dtype=np.int64), np.diff(pattern.A_indptr))
    rows = np.concatenate([pattern.P_indices, acol, n + np.arange(m, dtype=np.int64)])
    cols = np.concatenate([pcol, n + pattern.A_indices, n + np.arange(m, dtype=np.int64)])
    return rows, cols


def _adjacency(N: int, rows: IntArray, cols: IntArray) -> sp.csr_matrix:
    off = rows != cols
    r, c = rows[off], cols[off]
    G = sp.csr_matrix((np.ones(2 * r.size), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(N, N))
    G.sum_duplicates()
    return G


def _order_md(G: sp.csr_matrix) -> IntArray:
    """Minimum degree ordering by explicit elimination graph (lazy heap, ties by index)."""
    N = G.shape[0]
    adj = [set(G.indices[G.indptr[v]:G.indptr[v + 1]].tolist()) for v in range(N)]
    heap = [(len(a), v) for v, a in enumerate(adj)]
    heapq.heapify(heap)
    done = bytearray(N)
    order: list[int] = []
    while heap:
        d, v = heapq.heappop(heap)
        if done[v] or d != len(adj[v]):
            continue
        done[v] = 1
        order.append(v)
        nb = adj[v]
        for w in nb:
            aw = adj[w]
            aw.discard(v)
            aw |= nb
            aw.discard(w)
            heapq.heappush(heap, (len(aw), w))
        adj[v] = set()
    return np.asarray(order, dtype=np.int64)


def _order_mmd(G: sp.csr_matrix) -> IntArray:
    """SuperLU's multiple minimum degree on the pattern (column ordering of a diagonally dominant stand-in)."""
    N = G.shape[0]
    deg = np.diff(G.indptr).astype(float)
    M = (G + sp.diags(deg + 1.0)).tocsc()
    lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    perm = np.asarray(lu.perm_c, dtype=np.int64)
    if perm.shape != (N,):
        raise RuntimeError("unexpected SuperLU permutation")
    return perm


def _order(name: str, G: sp.csr_matrix) -> IntArray:
    if name == "md":
        return _order_md(G)
    if name == "mmd":
        return _order_mmd(G)
    if name == "rcm":
        return np.asarray(reverse_cuthill_mckee(G, symmetric_mode=True), dtype=np.int64)
    return np.arange(G.shape[0], dtype=np.int64)


def _permuted_upper(N: int, rows: IntArray, cols: IntArray, perm: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Permuted upper-triangular CSC pattern and the position of every input entry in it."""
    pinv = np.empty(N, dtype=np.int64)
    pinv[perm] = np.arange(N, dtype=np.int64)
    r, c = pinv[rows], pinv[cols]
    r, c = np.minimum(r, c), np.maximum(r, c)
    key = c * N + r
    order = np.argsort(key, kind="stable")
    if np.any(np.diff(key[order]) == 0):
        raise ValueError("duplicate KKT entries")
    pos = np.empty(key.size, dtype=np.int64)
    pos[order] = np.arange(key.size, dtype=np.int64)
    Kp = np.concatenate([[0], np.cumsum(np.bincount(c, minlength=N))]).astype(np.int64)
    return Kp, r[order].astype(np.int64), pos


def _etree_counts(Kp: IntArray, Ki: IntArray, limit: int) -> tuple[list[int], list[int], int]:
    """Elimination tree and column counts of L (QDLDL's etree); stops early once nnz(L) exceeds ``limit``."""
    N = len(Kp) - 1
    Kp_l = Kp.tolist()
    Ki_l = Ki.tolist()
    parent = [-1] * N
    counts = [0] * N
    flag = [-1] * N
    total = 0
    for j in range(N):
        flag[j] = j
        for p in range(Kp_l[j], Kp_l[j + 1]):
            i = Ki_l[p]
            while flag[i] != j:
                if parent[i] == -1:
                    parent[i] = j
                counts[i] += 1
                total += 1
                flag[i] = j
                i = parent[i]
        if total > limit:
            return parent, counts, -1
    return parent, counts, total


def _symbolic_L(Kp: IntArray, Ki: IntArray, parent: list[int], counts: list[int]) -> tuple[IntArray, ...]:
    """Pattern of L by columns (Lp, Li) and by rows (Rp, Rj, Rpos)."""
    N = len(Kp) - 1
    Kp_l = Kp.tolist()
    Ki_l = Ki.tolist()
    Lp = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(Lp[-1])
    Li = np.empty(nnz, dtype=np.int64)
    Rj = np.empty(nnz, dtype=np.int64)
    Rpos = np.empty(nnz, dtype=np.int64)
    Rp = np.zeros(N + 1, dtype=np.int64)
    nxt = Lp[:-1].tolist()
    flag = [-1] * N
    r = 0
    for k in range(N):
        flag[k] = k
        row: list[int] = []
        for p in range(Kp_l[k], Kp_l[k + 1]):
            i = Ki_l[p]
            while flag[i] != k:
                row.append(i)
                flag[i] = k
                i = parent[i]
        row.sort()
        for i in row:
            pos = nxt[i]
            nxt[i] = pos + 1
            Li[pos] = k
            Rj[r] = i
            Rpos[r] = pos
            r += 1
        Rp[k + 1] = r
    return Lp, Li, Rp, Rj, Rpos


def analyze(pattern: QPPattern, ordering: str = "auto") -> KKTSymbolic:
    """Symbolic analysis of the KKT matrix of ``pattern`` (cached per pattern object and ordering).

    Parameters
    ----------
    pattern : QPPattern
    ordering : {"auto", "md", "mmd", "rcm", "natural"}
        ``"auto"`` tries minimum degree, SuperLU's MMD and RCM and keeps the one with the
        fewest nonzeros in L.

    Returns
    -------
    KKTSymbolic
    """
    if ordering not in _ORDERINGS:
        raise ValueError(f"ordering must be one of {_ORDERINGS}")
    cache = _SYMBOLIC_CACHE.setdefault(pattern, {})
    if ordering in cache:
        return cache[ordering]
    n, m = pattern.n, pattern.m
    N = n + m
    rows, cols = _kkt_entries(pattern)
    G = _adjacency(N, rows, cols)
    names = ["md", "mmd", "rcm"] if ordering == "auto" else [ordering]
    best: tuple[int, str, IntArray, IntArray, IntArray, IntArray, list[int], list[int]] | None = None
    fill: dict[str, int] = {}
    for name in names:
        try:
            perm = _order(name, G)
        except (RuntimeError, ValueError):  # pragma: no cover - SuperLU refusing the stand-in matrix
            fill[name] = -1
            continue
        Kp, Ki, pos = _permuted_upper(N, rows, cols, perm)
        limit = best[0] if best is not None else np.iinfo(np.int64).max
        parent, counts, total = _etree_counts(Kp, Ki, limit)
        fill[name] = total
        if total >= 0 and (best is None or total < best[0]):
            best = (total, name, perm, Kp, Ki, pos, parent, counts)
    if best is None:  # pragma: no cover - every ordering failed
        raise RuntimeError("no ordering could be computed")
    _, name, perm, Kp, Ki, pos, parent, counts = best
    Lp, Li, Rp, Rj, Rpos = _symbolic_L(Kp, Ki, parent, counts)
    nP, nA = pattern.nnz_P, pattern.nnz_A
    P_diag = (pattern.P_indptr[1:] - 1).astype(np.int64)
    sym = KKTSymbolic(
        n=n, m=m, N=N, perm=perm, Kp=Kp, Ki=Ki,
        P_pos=pos[:nP], A_pos=pos[nP:nP + nA], rho_pos=pos[nP + nA:],
        P_diag=P_diag, pdiag_kkt=pos[:nP][P_diag],
        Lp=Lp, Li=Li, Rp=Rp, Rj=Rj, Rpos=Rpos, parent=np.asarray(parent, dtype=np.int64),
        ordering=name, fill=fill,
    )
    cache[ordering] = sym
    return sym


# ================================================================== scaling
class _SegMax:
    """Row-wise maximum of |values| over groups of entries (columns or rows of a sparse pattern)."""

    def __init__(self, groups: IntArray, ngroups: int) -> None:
        self.order = np.argsort(groups, kind="stable")
        counts = np.bincount(groups, minlength=ngroups)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.nonempty = counts > 0
        self.starts = starts[self.nonempty]
        self.ngroups = ngroups
        self.identity = bool(np.all(np.diff(groups) >= 0))

    def __call__(self, values: FloatArray) -> FloatArray:
        out = np.zeros((values.shape[0], self.ngroups))
        if values.shape[1] == 0:
            return out
        v = np.abs(values if self.identity else values[:, self.order])
        out[:, self.nonempty] = np.maximum.reduceat(v, self.starts, axis=1)
        return out


def _limit(v: FloatArray) -> FloatArray:
    v = np.where(v < _MIN_SCALING, 1.0, v)
    return np.minimum(v, _MAX_SCALING)


@dataclass
class _Scaled:
    P: FloatArray
    A: FloatArray
    q: FloatArray
    D: FloatArray
    E: FloatArray
    c: FloatArray


def _ruiz(pattern: QPPattern, P_data: FloatArray, A_data: FloatArray, q: FloatArray, iters: int) -> _Scaled:
    """OSQP's Ruiz equilibration with cost scaling, vectorized over the batch.

    ``P̄ = c D P D``, ``q̄ = c D q``, ``Ā = E A D``; solutions map back as ``x = D x̄``,
    ``z = z̄ / E``, ``y = E ȳ / c``.
    """
    K = P_data.shape[0]
    n, m = pattern.n, pattern.m
    Ps, As, qs = P_data.copy(), A_data.copy(), q.copy()
    D, E, c = np.ones((K, n)), np.ones((K, m)), np.ones(K)
    if iters <= 0:
        return _Scaled(Ps, As, qs, D, E, c)
    prow = pattern.P_indices
    pcol = np.repeat(np.arange(n), np.diff(pattern.P_indptr))
    arow = pattern.A_indices
    acol = np.repeat(np.arange(n), np.diff(pattern.A_indptr))
    p_by_col, p_by_row = _SegMax(pcol, n), _SegMax(prow, n)
    a_by_col, a_by_row = _SegMax(acol, n), _SegMax(arow, m)
    for _ in range(iters):
        Dt = np.maximum(np.maximum(p_by_col(Ps), p_by_row(Ps)), a_by_col(As))
        Et = a_by_row(As)
        Dt = 1.0 / np.sqrt(_limit(Dt))
        Et = 1.0 / np.sqrt(_limit(Et))
        Ps *= Dt[:, prow] * Dt[:, pcol]
        As *= Et[:, arow] * Dt[:, acol]
        qs *= Dt
        D *= Dt
        E *= Et
        # cost scaling
        cnorm = np.maximum(p_by_col(Ps), p_by_row(Ps)).mean(axis=1)
        qn = _limit(np.abs(qs).max(axis=1))
        ct = 1.0 / _limit(np.maximum(cnorm, qn))
        Ps *= ct[:, None]
        qs *= ct[:, None]
        c *= ct
    return _Scaled(Ps, As, qs, D, E, c)


def _ruiz_numba(pattern: QPPattern, P_data: FloatArray, A_data: FloatArray, q: FloatArray, iters: int) -> _Scaled:
    """:func:`_ruiz` by the numba kernel ``kernels.ruiz_batch`` (``prange`` over problems)."""
    K = P_data.shape[0]
    Ps, As, qs = P_data.copy(), A_data.copy(), q.copy()
    D, E, c = np.ones((K, pattern.n)), np.ones((K, pattern.m)), np.ones(K)
    if iters > 0:
        with np.errstate(all="ignore"):
            kernels.ruiz_batch(pattern.P_indptr, pattern.P_indices, Ps, pattern.A_indptr, pattern.A_indices, As, qs,
                               iters, D, E, c)
    return _Scaled(Ps, As, qs, D, E, c)


def _row_types(ls: FloatArray, us: FloatArray, eq_tol: float) -> NDArray[np.int8]:
    t = np.full(ls.shape, kernels.ROW_INEQ, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        t[us - ls < eq_tol] = kernels.ROW_EQ
    t[np.isneginf(ls) & np.isposinf(us)] = kernels.ROW_FREE
    return t


def _rho_vectors(rho: FloatArray, types: NDArray[np.int8], s: QPSettings) -> FloatArray:
    out = np.repeat(rho[:, None], types.shape[1], axis=1)
    out = np.where(types == kernels.ROW_EQ, rho[:, None] * s.rho_eq_scale, out)
    out = np.where(types == kernels.ROW_FREE, s.rho_min, out)
    return np.ascontiguousarray(out)


# ============================================================== factorization
@dataclass
class Factors:
    """Scaled data and numeric LDLᵀ factors of a batch (from :func:`factorize`).

    ``solve`` updates ``rho``, ``rho_vec``, ``Kx`` and the factors in place when a problem's rho
    adapts, so a later (warm-started) solve starts from the adapted step size; :meth:`reset_rho`
    goes back to a given rho (the factors are rebuilt lazily by the next solve).

    The polishing cache (``polish_act``: active set of each problem's last polishing, 0 free,
    1 lower, 2 upper; ``polish_state``: ``kernels.PC_NONE`` / ``PC_FACTOR`` (its reduced KKT
    factorization is in ``Lx_pol, Ld_pol, Ldinv_pol``) / ``PC_ACTIVE`` (active set only)) is
    updated by every solve; see ``QPSettings.polish_warm``.
    """

    symbolic: KKTSymbolic
    pattern: QPPattern
    P_data: FloatArray
    A_data: FloatArray
    scaled: _Scaled
    sigma: float
    scaling: int
    eq_tol: float
    rho_eq_scale: float
    rho_min: float
    rho: FloatArray
    rho_vec: FloatArray
    Kx: FloatArray
    Lx: FloatArray
    Ld: FloatArray
    Ldinv: FloatArray
    Lx_pol: FloatArray
    Ld_pol: FloatArray
    Ldinv_pol: FloatArray
    polish_act: NDArray[np.int8]
    polish_state: IntArray

    @property
    def K(self) -> int:
        """Number of problems."""
        return int(self.rho.shape[0])

    def reset_rho(self, rho: float) -> None:
        """Restart every problem from step size ``rho`` (refactorized by the next :func:`solve`)."""
        self.rho[:] = rho

    def active_sets(self) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
        """Copies of the last polishing's active set of every problem and whether one is known."""
        return self.polish_act.copy(), self.polish_state != kernels.PC_NONE

    def set_active_sets(self, act: ArrayLike, known: ArrayLike) -> None:
        """Active sets to try first (e.g. those of factors of other matrices, or of a checkpoint).

        Their reduced factorizations are not known here: the next polishing factorizes.
        """
        a = np.asarray(act, dtype=np.int8)
        k = np.asarray(known, dtype=bool)
        if a.shape != self.polish_act.shape or k.shape != self.polish_state.shape:
            raise ValueError(f"active sets of shape {a.shape} / {k.shape} do not fit {self.polish_act.shape}")
        self.polish_act[:] = a
        self.polish_state[:] = np.where(k, kernels.PC_ACTIVE, kernels.PC_NONE)


def _assemble_kkt(sym: KKTSymbolic, Ps: FloatArray, As: FloatArray, rho_vec: FloatArray, sigma: float) -> FloatArray:
    K = Ps.shape[0]
    Kx = np.zeros((K, sym.Kp[-1]))
    Kx[:, sym.P_pos] = Ps
    Kx[:, sym.P_pos[sym.P_diag]] += sigma
    Kx[:, sym.A_pos] = As
    Kx[:, sym.rho_pos] = -1.0 / rho_vec
    return Kx


def factorize(batch: QPBatch, settings: QPSettings | None = None, symbolic: KKTSymbolic | None = None) -> Factors:
    """Scale every problem and factorize its KKT matrix (numba, ``prange`` over problems).

    Parameters
    ----------
    batch : QPBatch
        P and A of every problem (q enters the cost scaling, l and u the initial kinds of rows).
    settings : QPSettings, optional
    symbolic : KKTSymbolic, optional
        Result of :func:`analyze` (by default taken from the per-pattern cache).

    Returns
    -------
    Factors
    """
    s = settings or QPSettings()
    sym = symbolic or analyze(batch.pattern, s.ordering)
    if sym.n != batch.pattern.n or sym.m != batch.pattern.m or sym.P_pos.size != batch.pattern.nnz_P:
        raise ValueError("symbolic analysis does not match the batch pattern")
    sc = _ruiz_numba(batch.pattern, batch.P_data, batch.A_data, batch.q, s.scaling)
    types = _row_types(sc.E * batch.l, sc.E * batch.u, s.eq_tol)
    rho = np.full(batch.K, float(s.rho))
    rho_vec = _rho_vectors(rho, types, s)
    Kx = _assemble_kkt(sym, sc.P, sc.A, rho_vec, s.sigma)
    Lx = np.empty((batch.K, sym.nnz_L))
    Ld = np.empty((batch.K, sym.N))
    Ldinv = np.empty((batch.K, sym.N))
    with np.errstate(all="ignore"):
        kernels.ldl_factor_batch(sym.Kp, sym.Ki, Kx, sym.Lp, sym.Li, sym.Rp, sym.Rj, sym.Rpos, Lx, Ld, Ldinv)
    # without scaling the scaled matrices are copies of P and A already: keep one copy (neither is written to)
    P_copy, A_copy = (sc.P, sc.A) if s.scaling <= 0 else (batch.P_data.copy(), batch.A_data.copy())
    return Factors(symbolic=sym, pattern=batch.pattern, P_data=P_copy, A_data=A_copy,
                   scaled=sc, sigma=s.sigma, scaling=s.scaling, eq_tol=s.eq_tol, rho_eq_scale=s.rho_eq_scale,
                   rho_min=s.rho_min, rho=rho, rho_vec=rho_vec, Kx=Kx, Lx=Lx, Ld=Ld, Ldinv=Ldinv,
                   Lx_pol=np.empty_like(Lx), Ld_pol=np.empty_like(Ld), Ldinv_pol=np.empty_like(Ldinv),
                   polish_act=np.zeros((batch.K, sym.m), dtype=np.int8),
                   polish_state=np.full(batch.K, kernels.PC_NONE, dtype=np.int64))


# ====================================================================== solve
def _initial_iterates(batch: QPBatch, sc: _Scaled, warm_start: tuple[ArrayLike, ArrayLike, ArrayLike] | None,
                      unit: bool = False) -> tuple[FloatArray, FloatArray, FloatArray]:
    K, n, m = batch.K, batch.pattern.n, batch.pattern.m
    if warm_start is None:
        return np.zeros((K, n)), np.zeros((K, m)), np.zeros((K, m))
    x0, z0, y0 = (np.broadcast_to(np.asarray(a, dtype=np.float64), shp)
                  for a, shp in zip(warm_start, ((K, n), (K, m), (K, m)), strict=True))
    if unit:  # copies: the kernel iterates in place
        return np.array(x0, order="C"), np.array(z0, order="C"), np.array(y0, order="C")
    return (np.ascontiguousarray(x0 / sc.D), np.ascontiguousarray(z0 * sc.E),
            np.ascontiguousarray(y0 * sc.c[:, None] / sc.E))


def _result(sc: _Scaled, x: FloatArray, z: FloatArray, y: FloatArray, out: FloatArray, rho: FloatArray,
            unit: bool = False) -> QPResult:
    if not unit:  # back to the unscaled problem
        x, y, z = x * sc.D, y * sc.E / sc.c[:, None], z / sc.E
    return QPResult(x=x, y=y, z=z, iterations=out[:, kernels.O_ITER].astype(np.int64),
                    prim_res=out[:, kernels.O_PRIM].copy(), dual_res=out[:, kernels.O_DUAL].copy(),
                    status=out[:, kernels.O_STATUS].astype(np.int64), rho=rho.copy(),
                    refactorizations=out[:, kernels.O_REFACT].astype(np.int64),
                    polished=out[:, kernels.O_POLISH].astype(np.int64),
                    polish_attempts=out[:, kernels.O_NPOL].astype(np.int64))


def _invalid_bounds(batch: QPBatch) -> NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        return np.any(batch.l > batch.u, axis=1)


def solve(batch: QPBatch, factors: Factors, settings: QPSettings | None = None,
          warm_start: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None) -> QPResult:
    """Solve every problem of the batch with OSQP iterations in a numba kernel (``prange`` over problems).

    Parameters
    ----------
    batch : QPBatch
        q, l and u may differ from the batch given to :func:`factorize`; P and A must be the same.
    factors : Factors
        From :func:`factorize`; updated in place when rho adapts or a row changes kind.
    settings : QPSettings, optional
        ``sigma``, ``scaling``, ``eq_tol``, ``rho_eq_scale`` and ``rho_min`` must match those used
        by :func:`factorize`; the initial rho of every problem is ``factors.rho``.
    warm_start : tuple (x, z, y), optional
        Unscaled starting iterates, shapes (K, n), (K, m), (K, m) (broadcast). Default zeros.

    Returns
    -------
    QPResult
    """
    s = settings or QPSettings()
    _check_factors(batch, factors, s)
    sym, sc = factors.symbolic, factors.scaled
    pt = batch.pattern
    unit = factors.scaling <= 0  # no Ruiz scaling: D, E, c are ones (the kernel only reads q, l, u)
    q = np.ascontiguousarray(batch.q) if unit else np.ascontiguousarray(batch.q * sc.D * sc.c[:, None])
    ls = np.ascontiguousarray(batch.l) if unit else np.ascontiguousarray(batch.l * sc.E)
    us = np.ascontiguousarray(batch.u) if unit else np.ascontiguousarray(batch.u * sc.E)
    types = _row_types(ls, us, s.eq_tol)
    want = _rho_vectors(factors.rho, types, s)
    refactor = np.any(want != factors.rho_vec, axis=1).astype(np.int64)
    factors.rho_vec[:] = want
    x, z, y = _initial_iterates(batch, sc, warm_start, unit)
    out = np.zeros((batch.K, kernels.N_OUT))
    bad = _invalid_bounds(batch)
    with np.errstate(all="ignore"):
        kernels.solve_batch(pt.P_indptr, pt.P_indices, sc.P, pt.A_indptr, pt.A_indices, sc.A, q, ls, us,
                            sc.D, sc.E, sc.c, sym.Kp, sym.Ki, factors.Kx, sym.Lp, sym.Li, sym.Rp, sym.Rj, sym.Rpos,
                            factors.Lx, factors.Ld, factors.Ldinv, sym.perm, sym.rho_pos, sym.pdiag_kkt,
                            sym.P_diag, sym.A_pos, types, factors.rho_vec,
                            factors.rho, refactor, x, z, y, s._fpar(), s._ipar(), out,
                            factors.Lx_pol, factors.Ld_pol, factors.Ldinv_pol, factors.polish_act,
                            factors.polish_state)
        res = _result(sc, x, z, y, out, factors.rho, unit)
    res.status[bad] = STATUS_PRIMAL_INFEASIBLE
    return res


def _same(a: FloatArray, b: FloatArray) -> bool:
    """Equal arrays, NaN equal to NaN (the NaN-aware comparison only when the plain one fails)."""
    return a is b or bool(np.array_equal(a, b)) or bool(np.array_equal(a, b, equal_nan=True))


def _check_factors(batch: QPBatch, f: Factors, s: QPSettings) -> None:
    if batch.pattern is not f.pattern and not (
            batch.pattern.n == f.pattern.n and batch.pattern.m == f.pattern.m
            and np.array_equal(batch.pattern.P_indptr, f.pattern.P_indptr)
            and np.array_equal(batch.pattern.P_indices, f.pattern.P_indices)
            and np.array_equal(batch.pattern.A_indptr, f.pattern.A_indptr)
            and np.array_equal(batch.pattern.A_indices, f.pattern.A_indices)):
        raise ValueError("batch pattern differs from the factorized one")
    if batch.K != f.K:
        raise ValueError(f"batch has {batch.K} problems, factors {f.K}")
    if not (_same(batch.P_data, f.P_data) and _same(batch.A_data, f.A_data)):
        raise ValueError("P or A values differ from the factorized batch: call factorize() again")
    if (s.sigma, s.scaling, s.eq_tol, s.rho_eq_scale, s.rho_min) != (f.sigma, f.scaling, f.eq_tol, f.rho_eq_scale,
                                                                        f.rho_min):
        raise ValueError("settings (sigma, scaling, eq_tol, rho_eq_scale, rho_min) differ from factorize()")


# ============================================================== numpy twins
def ldl_numpy(M: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Dense LDLᵀ without pivoting (twin of :func:`nodalopt.admm.kernels.ldl_factor`).

    Parameters
    ----------
    M : array_like (N, N)
        Symmetric matrix (quasi-definite, so that no pivoting is needed).

    Returns
    -------
    L : ndarray (N, N)
        Unit lower triangular.
    d : ndarray (N,)
    """
    A = np.array(M, dtype=np.float64)
    N = A.shape[0]
    L = np.eye(N)
    d = np.zeros(N)
    for k in range(N):
        d[k] = A[k, k]
        col = A[k + 1:, k] / d[k]
        L[k + 1:, k] = col
        A[k + 1:, k + 1:] -= np.outer(col, A[k, k + 1:])
    return L, d


def _sym_full(pattern: QPPattern, P_data: FloatArray) -> sp.csc_matrix:
    U = sp.csc_matrix((P_data, pattern.P_indices, pattern.P_indptr), shape=(pattern.n, pattern.n))
    return sp.csc_matrix(U + U.T - sp.diags(U.diagonal()))


def solve_numpy(batch: QPBatch, settings: QPSettings | None = None,
                warm_start: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
                active_sets: tuple[NDArray[np.int8], NDArray[np.bool_]] | None = None) -> QPResult:
    """Plain numpy/scipy twin of :func:`factorize` + :func:`solve` (same scaling and iteration sequence).

    A loop over problems; each KKT matrix is factorized by ``scipy.sparse.linalg.splu``
    (refactorized when rho adapts).  Starts from ``settings.rho``.

    Parameters
    ----------
    batch : QPBatch
    settings : QPSettings, optional
    warm_start : tuple (x, z, y), optional
    active_sets : tuple (act (K, m) int8, known (K,) bool), optional
        The polishing cache of :class:`Factors` (:meth:`Factors.active_sets`): with
        ``settings.polish_warm``, problems with a known set try polishing on it first.  Updated
        in place with the active set of each problem's last polishing, as the kernel does.

    Returns
    -------
    QPResult
    """
    s = settings or QPSettings()
    pt = batch.pattern
    n, m, K = pt.n, pt.m, batch.K
    sc = _ruiz(pt, batch.P_data, batch.A_data, batch.q, s.scaling)
    q = batch.q * sc.D * sc.c[:, None]
    ls, us = batch.l * sc.E, batch.u * sc.E
    types = _row_types(ls, us, s.eq_tol)
    X, Z, Y = _initial_iterates(batch, sc, warm_start)
    out = np.zeros((K, kernels.N_OUT))
    rho_out = np.full(K, float(s.rho))
    adapt = s._adapt_interval()
    acts, known = active_sets if active_sets is not None else (np.zeros((K, m), np.int8), np.zeros(K, bool))
    with np.errstate(all="ignore"):
        for k in range(K):
            P = _sym_full(pt, sc.P[k])
            A = sp.csc_matrix((sc.A[k], pt.A_indices, pt.A_indptr), shape=(m, n))
            cache = acts[k] if known[k] else None
            out[k], rho_out[k], last = _iterate_numpy(P, A, q[k], ls[k], us[k], sc.D[k], sc.E[k], float(sc.c[k]),
                                                      types[k], float(s.rho), X[k], Z[k], Y[k], s, adapt, cache)
            if last is not None:
                acts[k], known[k] = last, True
        res = _result(sc, X, Z, Y, out, rho_out)
    res.status[_invalid_bounds(batch)] = STATUS_PRIMAL_INFEASIBLE
    return res


def _kkt_lu(P: sp.csc_matrix, A: sp.csc_matrix, rho_vec: FloatArray, sigma: float) -> object | None:
    n = P.shape[0]
    KKT = sp.bmat([[P + sigma * sp.eye(n), A.T], [A, sp.diags(-1.0 / rho_vec)]], format="csc")
    try:
        return splu(KKT)
    except RuntimeError:  # singular (NaN data): iterates become NaN
        return None


def _residuals_numpy(P: sp.csc_matrix, A: sp.csc_matrix, q: FloatArray, x: FloatArray, z: FloatArray,
                     y: FloatArray, Dinv: FloatArray, Einv: FloatArray, cinv: float) -> dict[str, float]:
    """Twin of ``kernels.residuals`` (unscaled norms, ``*_s`` scaled ones, ``finite``)."""
    Ax, Px, Aty = A @ x, P @ x, A.T @ y
    rp, rd = np.abs(Ax - z), np.abs(Px + q + Aty)

    def mx(v: FloatArray) -> float:
        return float(np.max(v, initial=0.0))

    r = dict(prim=mx(rp * Einv), nax=mx(np.abs(Ax) * Einv), nz=mx(np.abs(z) * Einv),
             dual=cinv * mx(rd * Dinv), npx=cinv * mx(np.abs(Px) * Dinv), naty=cinv * mx(np.abs(Aty) * Dinv),
             nq=cinv * mx(np.abs(q) * Dinv), prim_s=mx(rp), nax_s=mx(np.abs(Ax)), nz_s=mx(np.abs(z)),
             dual_s=mx(rd), npx_s=mx(np.abs(Px)), naty_s=mx(np.abs(Aty)), nq_s=mx(np.abs(q)))
    finite = all(np.all(np.isfinite(v)) for v in (x, z, y, Ax, Px, Aty))
    r["finite"] = float(finite and np.isfinite(r["prim"]) and np.isfinite(r["dual"]))
    return r


def _active_set_numpy(z: FloatArray, y: FloatArray, l: FloatArray, u: FloatArray,  # noqa: E741
                      act: NDArray[np.int8]) -> bool:
    """Twin of ``kernels.active_set`` (in place on ``act``; True when it changed)."""
    with np.errstate(invalid="ignore"):
        low = (l == u) | (z - l < -y)
        up = ~low & (u - z < y)
    new = np.where(low, 1, np.where(up, 2, 0)).astype(np.int8)
    changed = bool(np.any(new != act))
    act[:] = new
    return changed


def _polish_numpy(P: sp.csc_matrix, A: sp.csc_matrix, q: FloatArray, l: FloatArray, u: FloatArray,  # noqa: E741
                  Dinv: FloatArray, Esc: FloatArray, Einv: FloatArray, cinv: float, x: FloatArray, z: FloatArray,
                  y: FloatArray, act: NDArray[np.int8], s: QPSettings, res: dict[str, float],
                  ) -> tuple[bool, dict[str, float]]:
    """Twin of ``kernels.polish`` (scipy ``splu`` on the embedded reduced KKT system)."""
    n = q.size
    tol = 0.1 * s.eps_abs
    for rnd in range(s.polish_active_set_iter + 1):
        on = act != 0
        Aact = sp.diags(on.astype(float)) @ A
        Kpol = sp.bmat([[P + s.polish_delta * sp.eye(n), Aact.T],
                        [Aact, sp.diags(np.where(on, -s.polish_delta, -1.0))]], format="csc")
        Ktrue = sp.bmat([[P, Aact.T], [Aact, sp.diags(np.where(on, 0.0, -1.0))]], format="csc")
        rhs = np.concatenate([-q, np.where(act == 1, l, np.where(act == 2, u, 0.0))])
        try:
            lu = splu(Kpol)
        except RuntimeError:
            return False, res
        sol = np.concatenate([x, np.where(on, y, 0.0)])
        rtol = s.polish_refine_tol * s.eps_abs
        for _ in range(s.polish_refine_iter):
            r = rhs - Ktrue @ sol
            if np.max(np.abs(r), initial=0.0) <= rtol:
                break
            sol = sol + lu.solve(r)
        xp = sol[:n]
        yp = np.where(on, sol[n:], 0.0)
        if rnd == s.polish_active_set_iter:
            break
        Axp = A @ xp
        yu = yp * Esc * cinv
        with np.errstate(invalid="ignore"):
            to_up = ~on & ((Axp - u) * Einv > tol)
            to_low = ~on & ~to_up & ((l - Axp) * Einv > tol)
            release = on & (l != u) & (((act == 1) & (yu > tol)) | ((act == 2) & (-yu > tol)))
        if to_up.any() or to_low.any():  # add violated rows first, release only once x is feasible
            release[:] = False
        elif release.any():  # then the row with the largest wrong-sign multiplier, one at a time
            wrong = np.where(release, np.where(act == 1, yu, -yu), -np.inf)
            release[:] = False
            release[int(np.argmax(wrong))] = True
        if not (to_up.any() or to_low.any() or release.any()):
            break
        act[to_up] = 2
        act[to_low] = 1
        act[release] = 0
    zt = A @ xp + yp
    zp = np.where(zt < l, l, zt)
    zp = np.where(zp > u, u, zp)
    yp = zt - zp
    pres = _residuals_numpy(P, A, q, xp, zp, yp, Dinv, Einv, cinv)
    if pres["finite"] == 0.0:
        return False, res
    eps_p = s.eps_abs + s.eps_rel * max(pres["nax"], pres["nz"])
    eps_d = s.eps_abs + s.eps_rel * max(pres["npx"], pres["naty"], pres["nq"])
    if pres["prim"] <= eps_p and pres["dual"] <= eps_d:
        x[:], z[:], y[:] = xp, zp, yp
        return True, pres
    return False, res


def _iterate_numpy(P: sp.csc_matrix, A: sp.csc_matrix, q: FloatArray, l: FloatArray, u: FloatArray,  # noqa: E741
                   Dsc: FloatArray, Esc: FloatArray, cost: float, types: NDArray[np.int8], rho: float,
                   x: FloatArray, z: FloatArray, y: FloatArray, s: QPSettings, adapt: int,
                   act_warm: NDArray[np.int8] | None = None,
                   ) -> tuple[FloatArray, float, NDArray[np.int8] | None]:
    """OSQP iterations of one scaled problem (in place on x, z, y); twin of ``kernels.solve_one``.

    ``act_warm``: active set of the last polishing (tried first with ``polish_warm``). Returns the
    outputs, the final rho and the active set of the last polishing made here (None: none).
    """
    n, m = q.size, l.size
    rho_vec = _rho_vectors(np.array([rho]), types[None, :], s)[0]
    rhoinv = 1.0 / rho_vec
    lu = _kkt_lu(P, A, rho_vec, s.sigma)
    Dinv, Einv, cinv = 1.0 / Dsc, 1.0 / Esc, 1.0 / cost
    alpha = s.alpha
    status, prim, dual, it, n_ref, pol, n_pol, last_polish = 0, np.nan, np.nan, 0, 0, 0, 0, -1
    act = np.zeros(m, dtype=np.int8)
    pol_gap = s.polish_interval
    res: dict[str, float] = {}
    polished_any = False
    if s.polish and s.polish_warm and act_warm is not None:
        act[:] = act_warm
        n_pol += 1
        polished_any = True
        ok, res = _polish_numpy(P, A, q, l, u, Dinv, Esc, Einv, cinv, x, z, y, act, s, res)
        if ok:
            status, pol = 1, 1
    for it in range(1, (s.max_iter if status == 0 else 0) + 1):
        x_prev, z_prev, y_prev = x.copy(), z.copy(), y.copy()
        rhs = np.concatenate([s.sigma * x - q, z - y * rhoinv])
        sol = lu.solve(rhs) if lu is not None else np.full(n + m, np.nan)  # type: ignore[attr-defined]
        xt = sol[:n]
        zt = z + (sol[n:] - y) * rhoinv
        x[:] = alpha * xt + (1.0 - alpha) * x_prev
        zr = alpha * zt + (1.0 - alpha) * z_prev
        zn = zr + y * rhoinv
        zn = np.where(zn < l, l, zn)
        zn = np.where(zn > u, u, zn)
        z[:] = zn
        y[:] = y + rho_vec * (zr - zn)
        if it % s.check_every != 0 and it != s.max_iter:
            continue
        res = _residuals_numpy(P, A, q, x, z, y, Dinv, Einv, cinv)
        prim, dual = res["prim"], res["dual"]
        if res["finite"] == 0.0:
            status = -1
            break
        eps_p = s.eps_abs + s.eps_rel * max(res["nax"], res["nz"])
        eps_d = s.eps_abs + s.eps_rel * max(res["npx"], res["naty"], res["nq"])
        if prim <= eps_p and dual <= eps_d:
            status = 1
            if s.polish:
                _active_set_numpy(z, y, l, u, act)
                polished_any = True
                ok, res = _polish_numpy(P, A, q, l, u, Dinv, Esc, Einv, cinv, x, z, y, act, s, res)
                pol = 1 if ok else -1
            break
        if s.polish and s.polish_tol > 0.0 and it - last_polish >= pol_gap \
                and prim <= s.polish_tol * (1.0 + max(res["nax"], res["nz"])) \
                and dual <= s.polish_tol * (1.0 + max(res["npx"], res["naty"], res["nq"])):
            if _active_set_numpy(z, y, l, u, act) or last_polish < 0:
                last_polish = it
                n_pol += 1
                polished_any = True
                ok, res = _polish_numpy(P, A, q, l, u, Dinv, Esc, Einv, cinv, x, z, y, act, s, res)
                if ok:
                    status, pol = 1, 1
                    break
                pol_gap *= 2
        # primal infeasibility
        dy = y - y_prev
        dy = np.where(np.isposinf(u) & ((dy > 0) | np.isneginf(l)), 0.0, dy)
        dy = np.where(np.isneginf(l) & (dy < 0), 0.0, dy)
        norm_dy = float(np.max(np.abs(dy) * Esc, initial=0.0))
        if norm_dy > kernels.DIV_TOL:
            lhs = float(np.sum(np.where(dy > 0, u * dy, 0.0)) + np.sum(np.where(dy < 0, l * dy, 0.0)))
            if lhs < -s.eps_prim_inf * norm_dy and \
                    np.max(np.abs(A.T @ dy) * Dinv, initial=0.0) < s.eps_prim_inf * norm_dy:
                status = -2
                break
        # dual infeasibility
        dx = x - x_prev
        norm_dx = float(np.max(np.abs(dx) * Dsc, initial=0.0))
        if norm_dx > kernels.DIV_TOL and float(q @ dx) < -cost * s.eps_dual_inf * norm_dx:
            if np.max(np.abs(P @ dx) * Dinv, initial=0.0) < cost * s.eps_dual_inf * norm_dx:
                adx = (A @ dx) * Einv
                tol = s.eps_dual_inf * norm_dx
                if not np.any((u < np.inf) & (adx > tol)) and not np.any((l > -np.inf) & (adx < -tol)):
                    status = -3
                    break
        # adaptive rho
        if adapt > 0 and it % adapt == 0:
            pn = res["prim_s"] / (max(res["nax_s"], res["nz_s"]) + kernels.DIV_TOL)
            dn = res["dual_s"] / (max(res["npx_s"], res["naty_s"], res["nq_s"]) + kernels.DIV_TOL)
            rho_new = min(max(rho * np.sqrt(pn / (dn + kernels.DIV_TOL)), s.rho_min), s.rho_max)
            if rho_new > rho * s.adaptive_rho_tolerance or rho_new < rho / s.adaptive_rho_tolerance:
                rho = float(rho_new)
                rho_vec = _rho_vectors(np.array([rho]), types[None, :], s)[0]
                rhoinv = 1.0 / rho_vec
                lu = _kkt_lu(P, A, rho_vec, s.sigma)
                n_ref += 1
    if pol == 1:
        prim, dual = res["prim"], res["dual"]
    out = np.array([it, prim, dual, status, n_ref, pol, n_pol], dtype=np.float64)
    return out, rho, (act.copy() if polished_any else None)
