"""Run one benchmark measurement in a child process, under a wall-time and memory watch.

Shared by :mod:`benchmarks.runner`, :mod:`benchmarks.td_scale` and :mod:`benchmarks.admm_scale`:
the child writes its result as JSON; the parent polls the child's RSS, kills it past
``limit_s`` seconds or ``mem_mb`` MB, and reports its resource usage (``os.wait4``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The environment with the repository first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@dataclass
class Supervised:
    """Outcome of :func:`supervise`."""

    killed: str | None  # "timeout", "memory" or None
    code: int  # exit code (negative: signal)
    ru: Any  # resource usage of the child (os.wait4)
    wall_s: float
    peak_mb: float  # largest polled RSS
    stderr: str


def supervise(cmd: list[str], err_path: Path, limit_s: float, mem_mb: float, rss_mb: Callable[[int], float],
              poll_s: float, own_session: bool = False,
              preexec_fn: Callable[[], None] | None = None) -> Supervised:
    """Run ``cmd`` (stdout discarded, stderr to ``err_path``) and watch its wall time and RSS.

    ``own_session``: the child gets its own session and the whole group (e.g. its Dask workers)
    is killed on a limit and after it ends.  ``preexec_fn`` runs in the child before ``cmd``
    (e.g. an address-space rlimit, so the child sees a MemoryError rather than a kill).
    """
    t0 = time.perf_counter()
    errf = err_path.open("w+b")  # a file, not a pipe: a chatty child cannot block on it
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=errf,
                            start_new_session=own_session, preexec_fn=preexec_fn)
    killed, peak = None, 0.0
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, rss_mb(proc.pid))
        if time.perf_counter() - t0 > limit_s:
            killed = "timeout"
        elif mem_mb > 0 and peak > mem_mb:
            killed = "memory"
        if killed:
            if own_session:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
            pid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    if own_session:
        try:  # leftover processes of the child's session (normally none)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    return Supervised(killed, os.waitstatus_to_exitcode(status), ru, wall, peak, err)
