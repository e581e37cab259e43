"""Clarabel through cvxpy, with one presolve reduction cvxpy cannot express: cost singletons.

Why this exists
---------------
A DC-OPF with quadratic costs puts ``c2 p^2`` in cvxpy's objective.  Next to a quadratic
term, cvxpy's coefficient extraction builds a *dense* array (objective variables x
parameter entries): with the linear cost ``c1 . p`` in the objective that array is
1,880 x 16,000 on one period of case9241pegase and 21 GiB on 24 hours of case2869pegase.
So the model states the linear cost through a free variable, ``lin_cost_t == sum_g c1_gt
p_gt`` (:func:`~nodalopt.dcopf.formulation.linear_cost`), which keeps the objective's
variables few.

Handed to Clarabel as such, that row is a dense row (one entry per generator) and moves
the cost into the constraint matrix: on case9241pegase the interior-point method then needs
20-26 iterations instead of 17, and Clarabel's setup (ordering) takes 20 ms longer.

The reduction: a *free column singleton with a cost* -- a variable ``x_j`` that appears in
exactly one equality row ``r`` (``a_rj x_j + a_r' x = b_r``), nowhere in ``P`` and with
``c_j != 0`` -- is substituted out: ``x_j = (b_r - a_r' x) / a_rj``, so ``c -= (c_j / a_rj)
a_r``, the objective gains the constant ``c_j b_r / a_rj``, and row ``r`` and column ``j``
are dropped.  After the solve, ``x_j`` is recovered from the row, the row's dual from the
stationarity of ``x_j`` (``c_j + a_rj z_r = 0``, Clarabel's ``P x + c + A'z = 0``) and its
slack is zero.  The solution of the reduced problem is an exact solution of the original
one: the reduction is an equivalence, not a relaxation.

The reduction is chosen from the sparsity structure (and the sign of ``c_j``, which is the
fixed ``dt * k`` of the cost variables), so a re-solve with new parameter values reduces
the same way and cvxpy's warm ``update()`` of the cached Clarabel solver keeps working.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL
from cvxpy.reductions.solvers.conic_solvers.conic_solver import ConicSolver
from cvxpy.settings import A as KEY_A
from cvxpy.settings import B as KEY_B
from cvxpy.settings import C as KEY_C
from cvxpy.settings import P as KEY_P


@dataclass(frozen=True)
class Singletons:
    """Free cost singletons of one problem: column ``cols[i]`` is eliminated through row ``rows[i]``."""

    cols: np.ndarray
    rows: np.ndarray
    keep_cols: np.ndarray
    keep_rows: np.ndarray


def find_singletons(A: sp.csc_matrix, P: sp.spmatrix | None, c: np.ndarray, n_zero: int) -> Singletons:
    """Columns with one entry, in an equality row, not in ``P``, with a cost; one per row.

    Parameters
    ----------
    A : csc matrix (m, n)
        Constraint matrix, equality (zero-cone) rows first.
    P : sparse (n, n) or None
        Quadratic objective (upper triangle or full).
    c : array (n,)
        Linear objective.
    n_zero : int
        Number of equality rows.
    """
    m, n = A.shape
    nnz = np.diff(A.indptr)
    cand = (nnz == 1) & (np.asarray(c) != 0)
    if P is not None and P.nnz:
        pc = P.tocoo()
        in_p = np.zeros(n, bool)
        in_p[pc.row[pc.data != 0]] = True
        in_p[pc.col[pc.data != 0]] = True
        cand &= ~in_p
    cols = np.flatnonzero(cand)
    rows = A.indices[A.indptr[cols]]
    eq = rows < n_zero
    cols, rows = cols[eq], rows[eq]
    rows, first = np.unique(rows, return_index=True)  # one column per row
    cols = cols[first]
    keep_c = np.ones(n, bool)
    keep_c[cols] = False
    keep_r = np.ones(m, bool)
    keep_r[rows] = False
    return Singletons(cols, rows, np.flatnonzero(keep_c), np.flatnonzero(keep_r))


@dataclass
class _Solution:
    """Clarabel's solution object, expanded back to the original problem (what cvxpy reads)."""

    x: Any
    z: Any
    s: Any
    status: Any
    obj_val: float
    obj_val_dual: float
    solve_time: float
    iterations: int
    r_prim: float
    r_dual: float


class PresolvedClarabel(CLARABEL):
    """cvxpy's Clarabel interface with free cost singletons substituted out (see the module doc).

    Use as ``problem.solve(solver=PresolvedClarabel(), **clarabel_settings)``.  cvxpy requires
    a custom solver to have a name of its own: ``"CLARABEL_PRESOLVED"``.
    """

    def name(self) -> str:
        return "CLARABEL_PRESOLVED"

    def solve_via_data(self, data: dict[str, Any], warm_start: bool, verbose: bool,
                       solver_opts: dict[str, Any], solver_cache: dict[str, Any] | None = None) -> Any:
        A = sp.csc_matrix(data[KEY_A])
        b = np.asarray(data[KEY_B], float)
        c = np.asarray(data[KEY_C], float)
        P = data.get(KEY_P)
        dims = data[ConicSolver.DIMS]
        red = find_singletons(A, P, c, int(dims.zero))
        if not red.cols.size:
            return super().solve_via_data(data, warm_start, verbose, solver_opts, solver_cache)
        pivot = np.asarray(A[red.rows, red.cols]).ravel()  # a_rj
        ratio = c[red.cols] / pivot  # c_j / a_rj
        # the eliminated rows on the kept columns (an eliminated column has no entry in another row)
        a_r = A[red.rows][:, red.keep_cols]
        c_red = c[red.keep_cols] - a_r.T @ ratio
        const = float(ratio @ b[red.rows])
        A_red = A[red.keep_rows][:, red.keep_cols]
        small = dict(data)
        small[KEY_A] = sp.csc_matrix(A_red)
        small[KEY_B] = b[red.keep_rows]
        small[KEY_C] = c_red
        if P is not None:
            small[KEY_P] = sp.csc_matrix(P)[red.keep_cols][:, red.keep_cols]
        rdims = copy.copy(dims)
        rdims.zero = int(dims.zero) - red.rows.size
        small[ConicSolver.DIMS] = rdims
        sol = super().solve_via_data(small, warm_start, verbose, solver_opts, solver_cache)
        return _expand(sol, red, A.shape, b[red.rows], a_r, pivot, ratio, const)


def _expand(sol: Any, red: Singletons, shape: tuple[int, int], b_r: np.ndarray, a_r: sp.spmatrix,
            pivot: np.ndarray, ratio: np.ndarray, const: float) -> _Solution:
    """The reduced problem's solution, written in the original problem's columns and rows.

    ``b_r``, ``a_r``: right-hand sides of the eliminated rows and their entries on the kept columns.
    """
    m, n = shape
    x = z = s = None
    if sol.x is not None and len(sol.x):
        xr = np.asarray(sol.x, float)
        x = np.zeros(n)
        x[red.keep_cols] = xr
        x[red.cols] = (b_r - a_r @ xr) / pivot
    if sol.z is not None and len(sol.z):
        z = np.zeros(m)
        z[red.keep_rows] = np.asarray(sol.z, float)
        # optimal: from the stationarity of x_j; a certificate of infeasibility has A'z = 0, so 0
        z[red.rows] = 0.0 if "Infeasible" in str(sol.status) else -ratio
    if sol.s is not None and len(sol.s):
        s = np.zeros(m)
        s[red.keep_rows] = np.asarray(sol.s, float)
    return _Solution(x=x, z=z, s=s, status=sol.status, obj_val=float(sol.obj_val) + const,
                     obj_val_dual=float(sol.obj_val_dual) + const, solve_time=sol.solve_time,
                     iterations=sol.iterations, r_prim=sol.r_prim, r_dual=sol.r_dual)


#: The instance the models pass to cvxpy.  One object, not one per solve: cvxpy keys its cache
#: of the compiled problem on the solver, and a new instance would recompile every solve.
PRESOLVED_CLARABEL = PresolvedClarabel()
