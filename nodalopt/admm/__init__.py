"""ADMM building blocks: a batched OSQP-style QP solver for many problems sharing one sparsity pattern.

See :mod:`nodalopt.admm.qp` (API) and :mod:`nodalopt.admm.kernels` (numba kernels).
"""

from .qp import (
    STATUS_DUAL_INFEASIBLE,
    STATUS_MAX_ITER,
    STATUS_NONFINITE,
    STATUS_PRIMAL_INFEASIBLE,
    STATUS_SOLVED,
    Factors,
    KKTSymbolic,
    QPBatch,
    QPPattern,
    QPResult,
    QPSettings,
    analyze,
    factorize,
    ldl_numpy,
    solve,
    solve_numpy,
)

__all__ = [
    "STATUS_DUAL_INFEASIBLE",
    "STATUS_MAX_ITER",
    "STATUS_NONFINITE",
    "STATUS_PRIMAL_INFEASIBLE",
    "STATUS_SOLVED",
    "Factors",
    "KKTSymbolic",
    "QPBatch",
    "QPPattern",
    "QPResult",
    "QPSettings",
    "analyze",
    "factorize",
    "ldl_numpy",
    "solve",
    "solve_numpy",
]
