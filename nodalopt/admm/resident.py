"""Resident QP state: a batch, its factors and its last solution, kept where the batch is solved.

A :class:`ChunkState` is built once from the static data of a batch (matrices, bounds, the warm
start and the polishing active sets it starts from) and then driven by small messages only:

* :meth:`ChunkState.step` — new values of a few columns of ``q`` in, the same columns of the
  solution and the solve status out (:class:`StepOut`);
* :meth:`ChunkState.refactorize` — a new value on a few diagonal entries of ``P`` (a penalty
  change), refactorized in place, keeping the active sets as the first polishing guess;
* :meth:`ChunkState.result` — the full last solution, only when it is needed.

The class knows nothing about the model: the coordinator says which columns and which ``P``
entries it drives.  The in-process executor and every Dask worker run the same code, so both give
bit-identical iterates; replaying the messages since the last install from the same static data
reproduces a lost chunk exactly (:mod:`nodalopt.admm.dask_exec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .qp import QPBatch, QPResult, QPSettings, factorize, solve

Warm = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class StepOut:
    """What one solve sends back: the driven columns of ``x`` and the status of each problem.

    ``iterations``, ``prim_res`` and ``dual_res`` are filled only at problems whose status is not
    1 (for the error message), so a normal step moves ``K * (len(cols) + 1)`` numbers.
    """

    xcols: NDArray[np.float64]
    status: NDArray[np.int64]
    iterations: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prim_res: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    dual_res: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.xcols, self.status, self.iterations, self.prim_res, self.dual_res)))

    @staticmethod
    def concat(parts: list[StepOut]) -> StepOut:
        if len(parts) == 1:
            return parts[0]
        K = [p.status.size for p in parts]
        full = [p.iterations.size == k for p, k in zip(parts, K, strict=True)]
        out = StepOut(xcols=np.concatenate([p.xcols for p in parts]), status=np.concatenate([p.status for p in parts]))
        if any(p.iterations.size for p in parts):
            def cat(name: str, dtype: Any) -> np.ndarray:
                return np.concatenate([getattr(p, name) if f else np.zeros(k, dtype=dtype)
                                       for p, f, k in zip(parts, full, K, strict=True)])
            out.iterations, out.prim_res, out.dual_res = cat("iterations", np.int64), cat("prim_res", float), \
                cat("dual_res", float)
        return out


class ChunkState:
    """A batch of QPs with its factors and last solution (see the module docstring).

    Parameters
    ----------
    batch : QPBatch
        Kept by reference (the in-process executor shares the coordinator's batch; a worker owns its copy).
    settings : QPSettings
    cols : ndarray of int
        Columns of ``q`` set by :meth:`step` and of ``x`` returned by it.
    p_pos : ndarray of int
        Positions in ``P_data`` set by :meth:`refactorize`.
    warm : (x, z, y), optional
        Starting iterates of the first solve.
    act, known : ndarray, optional
        Polishing active sets to try first (:meth:`nodalopt.admm.qp.Factors.set_active_sets`).
    rho : ndarray (K,), optional
        Step sizes to start from (a checkpoint's); default ``settings.rho``.
    """

    def __init__(self, batch: QPBatch, settings: QPSettings, cols: np.ndarray, p_pos: np.ndarray,
                 warm: Warm | None = None, act: np.ndarray | None = None, known: np.ndarray | None = None,
                 rho: np.ndarray | None = None) -> None:
        self.b, self.settings = batch, settings
        self.cols, self.p_pos = np.asarray(cols, dtype=np.int64), np.asarray(p_pos, dtype=np.int64)
        self.f = factorize(batch, settings)
        if act is not None and known is not None and act.shape == self.f.polish_act.shape:
            self.f.set_active_sets(act, known)
        if rho is not None and rho.shape == self.f.rho.shape:
            self.f.rho[:] = rho
        self.warm: Warm | None = warm
        self.last: QPResult | None = None

    def refactorize(self, value: float) -> None:
        """``P_data[:, p_pos] = value`` and a new factorization; the active sets stay the first guess."""
        self.b.P_data[:, self.p_pos] = value
        prev = self.f
        self.f = factorize(self.b, self.settings)
        self.f.set_active_sets(*prev.active_sets())

    def step(self, qcols: np.ndarray) -> StepOut:
        """``q[:, cols] = qcols``, solve warm-started from the last solution, return ``x[:, cols]`` and status."""
        self.b.q[:, self.cols] = qcols
        r = solve(self.b, self.f, self.settings, warm_start=self.warm)
        self.warm, self.last = (r.x, r.z, r.y), r
        out = StepOut(xcols=np.ascontiguousarray(r.x[:, self.cols]), status=np.asarray(r.status, dtype=np.int64))
        if np.any(r.status != 1):
            out.iterations = np.asarray(r.iterations, dtype=np.int64)
            out.prim_res, out.dual_res = np.asarray(r.prim_res, dtype=float), np.asarray(r.dual_res, dtype=float)
        return out

    def result(self) -> QPResult:
        """The full last solution (raises before the first :meth:`step`)."""
        if self.last is None:
            raise RuntimeError("no solve yet")
        return self.last

    def state(self) -> dict[str, np.ndarray]:
        """Step sizes and polishing active sets (for checkpoints and for moving the chunk)."""
        act, known = self.f.active_sets()
        return {"rho": np.array(self.f.rho, copy=True), "act": act, "known": known}

    def nbytes(self) -> int:
        """Bytes held: batch, factors and last solution (each array once, shared ones too)."""
        seen: dict[int, int] = {}
        for obj in (self.b, self.f, self.last):
            if obj is None:
                continue
            for v in vars(obj).values():
                arrays = [v] if isinstance(v, np.ndarray) else \
                    [a for a in vars(v).values() if isinstance(a, np.ndarray)] if hasattr(v, "__dict__") else []
                seen.update({id(a): a.nbytes for a in arrays})
        return int(sum(seen.values()))
