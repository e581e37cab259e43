"""Dask executor for the ADMM feeder updates.

The copies of each QP batch are split into chunks (about two per worker).  Every task is
pure (inputs in, outputs out, no worker state):

* ``_static_chunk(batch_chunk, settings)`` -> ``(batch_chunk, factors)``, submitted once per
  factorization (new loss terms or a new penalty); its inputs live in the task itself, so
  the scheduler can recompute it on another worker if the one holding it dies;
* ``_solve_chunk(static, q, settings, previous)`` -> QP result of the chunk, warm-started from
  the previous iteration's result future.

Tasks are retried (``retries``) when a worker is lost; if a warm-start result was lost with
its worker (its lineage is released after each iteration), the chunk is re-solved cold,
which converges to the same optimum.  The local cluster listens on 127.0.0.1 only and has
no dashboard; pass ``scheduler="tcp://..."`` for an existing cluster.

A local cluster starts its workers with ``spawn`` (Dask's default), and a spawned process
imports the script that started it.  A script that starts the cluster from top-level code,
not under ``if __name__ == "__main__":``, would run again in every worker; the executor
refuses to start from such a script (:func:`check_main_guard`).
"""

from __future__ import annotations

import ast
import copy
import operator
import sys
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import numpy as np

from ..errors import NodalOptError
from .qp import QPBatch, QPResult, QPSettings, factorize, solve

RETRIES = 3
#: what the error about a missing ``if __name__ == "__main__":`` guard tells the user to do
GUARD_ADVICE = ('Put the code that starts the solve under `if __name__ == "__main__":` (a spawned Dask '
                "worker imports the script that started it and would run that code again), or pass "
                'executor="inprocess" or scheduler="tcp://HOST:PORT".')


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    consts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and consts == ["__main__"]


def _module_frame(main: ModuleType, frame: FrameType | None) -> FrameType | None:
    """The outermost frame running ``main``'s top-level code, if the call stack has one."""
    top = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            top = frame
        frame = frame.f_back
    return top


def unguarded_main_line(frame: FrameType | None = None) -> int | None:
    """Line of the ``__main__`` script's top-level statement running now, when it is not inside an
    ``if __name__ == "__main__":`` block; None when it is, or when there is no script to read
    (an interactive session, a notebook) or the call does not come from its top-level code.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None
    top = _module_frame(main, frame if frame is not None else sys._getframe(1))
    if top is None:
        return None
    line = top.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in tree.body:  # the guard is a top-level statement
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body \
                and node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno):
            return None
    return line


def check_main_guard() -> None:
    """Refuse to start a local cluster from a script without an ``if __name__ == "__main__":`` guard.

    Raises
    ------
    NodalOptError
        In the script's process, before any worker starts, naming the script and line; or in a
        spawned worker that is importing such a script (the ``__mp_main__`` module), so it stops.
    """
    import dask

    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return  # forked workers do not import the script
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:  # a spawned process runs the parent's script as "__mp_main__" while it starts
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            raise NodalOptError(f"{frame.f_globals.get('__file__', 'the script')} is being re-run by a Dask "
                                f"worker process it started. {GUARD_ADVICE}")
        frame = frame.f_back
    main = sys.modules.get("__main__")
    line = unguarded_main_line(sys._getframe(1))
    if line is not None:
        raise NodalOptError(f'executor="dask" with a local cluster, started from line {line} of '
                            f"{getattr(main, '__file__', '__main__')} outside `if __name__ == \"__main__\":`. "
                            f"{GUARD_ADVICE}")


def _slice(b: QPBatch, lo: int, hi: int) -> QPBatch:
    return QPBatch(pattern=b.pattern, P_data=np.ascontiguousarray(b.P_data[lo:hi]),
                   A_data=np.ascontiguousarray(b.A_data[lo:hi]), q=np.ascontiguousarray(b.q[lo:hi]),
                   l=np.ascontiguousarray(b.l[lo:hi]), u=np.ascontiguousarray(b.u[lo:hi]))


def _static_chunk(b: QPBatch, settings: QPSettings) -> tuple[QPBatch, Any]:
    return b, factorize(b, settings)


def _solve_chunk(static: tuple[QPBatch, Any], q: np.ndarray, settings: QPSettings,
                 previous: tuple[QPResult, Any] | None) -> tuple[QPResult, Any]:
    """One chunk's QPs, warm-started from ``previous`` = (result, factors) of the last iteration.

    The solver adapts its step size in the factors object; a copy is adapted and returned, so
    the task never changes its inputs (tasks stay pure and can be recomputed anywhere).
    """
    b, factors = static
    if previous is not None and _compatible(previous[1], factors):
        factors = copy.deepcopy(previous[1])
    else:
        factors = copy.deepcopy(factors)
        if previous is not None and previous[1].K == factors.K:  # new matrices: the old active sets stay a guess
            factors.set_active_sets(*previous[1].active_sets())
    b2 = QPBatch(pattern=b.pattern, P_data=b.P_data, A_data=b.A_data, q=q, l=b.l, u=b.u)
    warm = (previous[0].x, previous[0].z, previous[0].y) if previous is not None else None
    return solve(b2, factors, settings, warm_start=warm), factors


def _compatible(f_prev: Any, f_new: Any) -> bool:
    """The previous factors belong to the same matrices (a new penalty or new loss terms refactorize)."""
    return bool(np.array_equal(f_prev.P_data, f_new.P_data) and np.array_equal(f_prev.A_data, f_new.A_data))


def _concat(parts: list[QPResult]) -> QPResult:
    if len(parts) == 1:
        return parts[0]
    from dataclasses import fields

    return QPResult(**{f.name: np.concatenate([getattr(p, f.name) for p in parts], axis=0) for f in fields(QPResult)})


class DaskExecutor:
    """Run feeder QP chunks on a Dask cluster (a local one on 127.0.0.1 unless ``scheduler`` is given)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 chunks_per_worker: int = 2) -> None:
        from dask.distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            check_main_guard()
            self._cluster = LocalCluster(n_workers=int(workers or 2), threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None)
            self.client = Client(self._cluster)
        self.chunks_per_worker = chunks_per_worker
        self._static: dict[int, list[tuple[int, int, Any]]] = {}
        self._prev: dict[int, list[Any]] = {}
        self.cold_restarts = 0

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def factorize(self, b: QPBatch, settings: QPSettings, previous: Any = None) -> int:
        K = b.q.shape[0]
        n_chunks = max(1, min(K, self.n_workers * self.chunks_per_worker))
        bounds = np.linspace(0, K, n_chunks + 1).astype(int)
        chunks = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):  # a handful of chunks, not feeders
            fut = self.client.submit(_static_chunk, _slice(b, int(lo), int(hi)), settings, pure=False,
                                     retries=RETRIES)
            chunks.append((int(lo), int(hi), fut))
        self._static[id(b)] = chunks
        return id(b)

    def solve(self, b: QPBatch, handle: int, settings: QPSettings, warm: Any) -> QPResult:
        chunks = self._static[handle]
        prev = self._prev.get(handle)
        if prev is None or len(prev) != len(chunks):
            prev = [None] * len(chunks)
        futs = [self.client.submit(_solve_chunk, fut, np.ascontiguousarray(b.q[lo:hi]), settings, pf, pure=False,
                                   retries=RETRIES) for (lo, hi, fut), pf in zip(chunks, prev, strict=True)]
        try:
            parts = self.client.gather([self.client.submit(operator.getitem, f, 0, pure=False) for f in futs])
        except Exception:  # a warm start died with its worker: solve the chunks cold from their static data
            self.cold_restarts += 1
            futs = [self.client.submit(_solve_chunk, fut, np.ascontiguousarray(b.q[lo:hi]), settings, None,
                                       pure=False, retries=RETRIES) for (lo, hi, fut) in chunks]
            parts = self.client.gather([self.client.submit(operator.getitem, f, 0, pure=False) for f in futs])
        self._prev[handle] = futs
        return _concat(parts)

    def qp_state(self, factors: list[Any]) -> list[dict[str, np.ndarray]]:
        return []  # step sizes and active sets live in the workers' factor copies; a resumed run re-adapts them

    def set_qp_state(self, factors: list[Any], states: list[dict[str, np.ndarray]]) -> None:
        return None

    def close(self) -> None:
        self._static.clear()
        self._prev.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
