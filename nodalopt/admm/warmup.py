"""Compile the QP kernels once per machine, not once per process.

Every kernel in :mod:`nodalopt.admm.kernels` is compiled with ``cache=True``: numba writes the
machine code next to the sources (``nodalopt/admm/__pycache__``) or, when ``NUMBA_CACHE_DIR`` is
set, under that folder, and any later process on the machine that imports the same files (same
path, same modification time, same numba and CPU) loads it instead of compiling.  Measured on
this project's 2-core machine: the first factorize + solve of a fresh process takes about 28 s
with a cold cache and 0.1 s with a warm one.

:func:`warm_kernels` compiles (or loads) every kernel specialization the ADMM uses on a
2-variable problem; :func:`warm_cluster` runs it on one Dask worker per host first (it compiles
and writes that host's cache) and then on the others (they load it), so a cluster compiles once
per machine.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from .qp import QPBatch, QPPattern, QPSettings, factorize, solve


def warm_kernels(settings: QPSettings | None = None) -> float:
    """Compile or load the batched QP kernels; the seconds it took.

    Solves ``min x0^2 + x1^2 - x0`` s.t. ``x0 + x1 = 1``, ``0 <= x0 <= 0.4`` twice (cold, then
    warm-started and polished), with ``settings`` (default: the ADMM feeder settings) and with
    Ruiz scaling, which covers every kernel specialization :func:`factorize` and :func:`solve` use.
    """
    t0 = time.perf_counter()
    if settings is None:
        from .coordinator import ADMMSettings

        settings = ADMMSettings().qp
    pat = QPPattern(n=2, m=2, P_indptr=np.array([0, 1, 2]), P_indices=np.array([0, 1]),
                    A_indptr=np.array([0, 2, 3]), A_indices=np.array([0, 1, 0]))
    b = QPBatch(pattern=pat, P_data=np.array([[2.0, 2.0]]), A_data=np.array([[1.0, 1.0, 1.0]]),
                q=np.array([[-1.0, 0.0]]), l=np.array([[1.0, 0.0]]), u=np.array([[1.0, 0.4]]))
    for s in (settings, QPSettings()):
        f = factorize(b, s)
        r = solve(b, f, s)
        solve(b, f, s, warm_start=(r.x, r.z, r.y))
    return time.perf_counter() - t0


def warm_cluster(client: Any) -> dict[str, float]:
    """:func:`warm_kernels` on one worker per host, then on the rest (loading that host's cache).

    Returns the seconds each worker took, by worker address.
    """
    hosts: dict[str, list[str]] = defaultdict(list)
    for addr, info in client.scheduler_info().get("workers", {}).items():
        hosts[str(info.get("host", addr))].append(addr)
    first = [ws[0] for ws in hosts.values()]
    rest = [w for ws in hosts.values() for w in ws[1:]]
    out: dict[str, float] = dict(client.run(warm_kernels, workers=first)) if first else {}
    if rest:
        out.update(client.run(warm_kernels, workers=rest))
    return out
