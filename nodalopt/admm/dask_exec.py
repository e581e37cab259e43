"""Dask executor for the ADMM feeder updates: feeder state resident on the workers.

The copies of each QP batch are split into chunks (about two per worker).  Each chunk lives on
one worker as a :class:`nodalopt.admm.resident.ChunkState` in a worker-side registry
(``_REGISTRY``, keyed by run id, batch and chunk):

* ``install`` sends the static data once (matrices, bounds, warm start, active sets; the batch is
  factorized on the worker), at the start and after each loss update (new matrices);
* each ADMM iteration sends only the driven columns of ``q`` (``K x T`` numbers: the feeders'
  substation targets) and a pending penalty change, and receives the same columns of the
  solution and a status per feeder (:class:`~nodalopt.admm.resident.StepOut`);
* the full solutions are fetched only when the coordinator needs them (loss checks, the result,
  checkpoints).

Every byte sent and received is counted (:meth:`DaskExecutor.stats`).  The coordinator keeps,
for each chunk, its install data (views into its own batch) and the messages since; when a
worker is lost, its chunks are installed on a live worker and the messages replayed there.  The
kernels are deterministic, so the replayed chunk is in exactly the state the lost one was in
and the run continues with bit-identical iterates.  Tasks are pinned to their chunk's worker;
the executor notices a lost worker by polling the scheduler's worker list while it waits.

The local cluster listens on 127.0.0.1 only and has no dashboard; pass
``scheduler="tcp://..."`` for an existing cluster.

A local cluster starts its workers with ``spawn`` (Dask's default), and a spawned process
imports the script that started it.  A script that starts the cluster from top-level code,
not under ``if __name__ == "__main__":``, would run again in every worker; the executor
refuses to start from such a script (:func:`check_main_guard`).
"""

from __future__ import annotations

import ast
import itertools
import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import numpy as np

from ..errors import NodalOptError
from .qp import QPBatch, QPResult, QPSettings
from .resident import ChunkState, StepOut, Warm

#: reinstalls of one chunk within one step before the executor gives up
RETRIES = 3
#: seconds between checks of the worker list while waiting for a step
POLL_S = 0.5
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



# ---------------------------------------------------------------------- worker side
#: chunks resident in this (worker) process, by key "run/batch/chunk"
_REGISTRY: dict[str, ChunkState] = {}
#: one op of a chunk's log: ("P", value) a penalty change, ("q", qcols) a solve
Op = tuple[str, Any]


class ChunkLost(NodalOptError):
    """A step reached a worker that does not hold its chunk (the chunk's worker was lost)."""


def _worker_threads() -> None:
    """Numba threads of this task = the worker's threads (not every core of the machine per worker)."""
    import numba
    from distributed import get_worker

    try:
        n = int(get_worker().state.nthreads)
    except (ValueError, AttributeError):
        return
    numba.set_num_threads(max(1, min(n, int(numba.config.NUMBA_NUM_THREADS))))  # type: ignore[attr-defined]


def _apply(st: ChunkState, ops: list[Op]) -> StepOut | None:
    _worker_threads()
    out = None
    for kind, val in ops:
        if kind == "P":
            st.refactorize(float(val))
        else:
            out = st.step(val)
    return out


def _w_install(key: str, batch: QPBatch, settings: QPSettings, cols: np.ndarray, p_pos: np.ndarray,
               p0: np.ndarray, warm: Warm | None, act: np.ndarray | None, known: np.ndarray | None,
               rho: np.ndarray | None, ops: list[Op]) -> tuple[str, StepOut | None]:
    """Build a chunk in this worker's registry from its static data and replay ``ops``; its address and last step."""
    from distributed import get_worker

    b = QPBatch(pattern=batch.pattern, P_data=np.array(batch.P_data), A_data=batch.A_data, q=np.array(batch.q),
                l=batch.l, u=batch.u)
    b.P_data[:, p_pos] = p0
    st = ChunkState(b, settings, cols, p_pos, warm=warm, act=act, known=known, rho=rho)
    out = _apply(st, ops)
    _REGISTRY[key] = st
    return get_worker().address, out


@dataclass
class _Payload:
    """The arguments of :func:`_w_install`, scattered to the worker as one object."""

    args: tuple[Any, ...]


def _w_install_payload(p: _Payload) -> tuple[str, StepOut | None]:
    return _w_install(*p.args)


def _w_step(key: str, ops: list[Op]) -> StepOut:
    st = _REGISTRY.get(key)
    if st is None:
        raise ChunkLost(f"chunk {key} is not on this worker")
    out = _apply(st, ops)
    assert out is not None
    return out


def _w_full(key: str) -> tuple[QPResult, dict[str, np.ndarray]]:
    st = _REGISTRY.get(key)
    if st is None:
        raise ChunkLost(f"chunk {key} is not on this worker")
    return st.result(), st.state()


def _w_drop(prefix: str) -> int:
    gone = [k for k in _REGISTRY if k.startswith(prefix)]
    for k in gone:
        del _REGISTRY[k]
    return len(gone)


def _w_nbytes(prefix: str) -> int:
    return sum(st.nbytes() for k, st in _REGISTRY.items() if k.startswith(prefix))


# ---------------------------------------------------------------------- coordinator side
def _nbytes(obj: Any) -> int:
    """Bytes of the arrays in ``obj`` (arrays, tuples/lists/dicts of them, dataclasses)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v) for v in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, f)) for f in obj.__dataclass_fields__ if f != "pattern")
    return 8 if isinstance(obj, float | int) else 0


@dataclass
class _Chunk:
    """The coordinator's record of a chunk: where it lives, its install data and its ops since."""

    key: str
    lo: int
    hi: int
    addr: str
    batch: QPBatch  # views into the coordinator's batch (P entries at p_pos restored from p0)
    cols: np.ndarray
    p_pos: np.ndarray
    p0: np.ndarray
    warm: Warm | None = None
    act: np.ndarray | None = None
    known: np.ndarray | None = None
    rho: np.ndarray | None = None
    ops: list[Op] = field(default_factory=list)
    pending: list[Op] = field(default_factory=list)

    def install_args(self, settings: QPSettings, ops: list[Op]) -> tuple[Any, ...]:
        return (self.key, self.batch, settings, self.cols, self.p_pos, self.p0, self.warm, self.act, self.known,
                self.rho, ops)


def _view(b: QPBatch, lo: int, hi: int) -> QPBatch:
    return QPBatch(pattern=b.pattern, P_data=b.P_data[lo:hi], A_data=b.A_data[lo:hi], q=b.q[lo:hi],
                   l=b.l[lo:hi], u=b.u[lo:hi])


def _concat(parts: list[QPResult]) -> QPResult:
    if len(parts) == 1:
        return parts[0]
    from dataclasses import fields

    return QPResult(**{f.name: np.concatenate([getattr(p, f.name) for p in parts], axis=0) for f in fields(QPResult)})


class DaskExecutor:
    """Feeder QP chunks resident on a Dask cluster (a local one on 127.0.0.1 unless ``scheduler`` is given).

    Same interface as the in-process executor (``install``, ``refactorize``, ``step``,
    ``results``, ``qp_state``, ``restore``, ``stats``, ``close``); see the module docstring.
    """

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
        from .warmup import warm_cluster

        t0 = time.perf_counter()
        warm_cluster(self.client)  # compile once per host (or load the host's numba cache)
        self.warmup_s = time.perf_counter() - t0
        self.chunks_per_worker = chunks_per_worker
        self.run_id = f"{uuid.uuid4().hex[:12]}/"
        self.settings = QPSettings()
        self._chunks: dict[int, list[_Chunk]] = {}
        self._counter = itertools.count()
        self.reinstalls = 0
        self._bytes = {"install": 0, "step_in": 0, "step_out": 0, "fetch": 0, "replay": 0}
        self._steps = 0

    @property
    def cold_restarts(self) -> int:  # the name older benchmarks read
        return self.reinstalls

    def _workers(self) -> list[str]:
        return sorted(self.client.nthreads())

    # ------------------------------------------------------------ static data
    def install(self, k: int, b: QPBatch, settings: QPSettings, cols: np.ndarray, p_pos: np.ndarray) -> None:
        """Send batch ``k`` to the workers (once per new matrices); warm starts and active sets carry over."""
        self.settings = settings
        K = b.q.shape[0]
        prev = self._chunks.get(k)
        carry: list[tuple[Warm, dict[str, np.ndarray]] | None]
        if prev is not None and sum(c.hi - c.lo for c in prev) == K:
            bounds = [(c.lo, c.hi) for c in prev]
            addrs = [c.addr for c in prev]
            full = self._fetch(prev)
            carry = [((r.x, r.z, r.y), st) for r, st in full]
        else:
            ws = self._workers()
            n_chunks = max(1, min(K, len(ws) * self.chunks_per_worker))
            edges = np.linspace(0, K, n_chunks + 1).astype(int)
            bounds = [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
            addrs = [ws[i % len(ws)] for i in range(n_chunks)]
            carry = [None] * n_chunks
        chunks = []
        for (lo, hi), addr, cr in zip(bounds, addrs, carry, strict=True):
            v = _view(b, lo, hi)
            c = _Chunk(key=f"{self.run_id}{k}/{next(self._counter)}/", lo=lo, hi=hi, addr=addr, batch=v,
                       cols=np.asarray(cols), p_pos=np.asarray(p_pos), p0=np.array(v.P_data[:, p_pos]))
            if cr is not None:
                c.warm, c.act, c.known = cr[0], cr[1]["act"], cr[1]["known"]
            chunks.append(c)
        self._place(chunks, ops_of=lambda c: [])
        if prev is not None:
            for c in prev:
                try:
                    self.client.run(_w_drop, c.key, workers=[c.addr])
                except Exception:  # noqa: BLE001 - its worker is gone, and the chunk with it
                    pass
        self._chunks[k] = chunks

    def _place(self, chunks: list[_Chunk], ops_of: Any, replay: bool = False) -> list[StepOut | None]:
        """Install ``chunks`` (on their ``addr``, or a live worker if it is gone); the last step of each replay.

        The static data goes to the worker directly (``scatter``), not through the scheduler's task graph.
        """
        for attempt in range(RETRIES + 1):
            live = self._workers()
            if not live:
                raise NodalOptError("the Dask cluster has no workers left.")
            futs = []
            for i, c in enumerate(chunks):
                if c.addr not in live:
                    c.addr = live[i % len(live)]
                args = c.install_args(self.settings, ops_of(c))
                self._bytes["replay" if replay else "install"] += _nbytes(args[1:])
                data = self.client.scatter(_Payload(args), workers=[c.addr], hash=False)
                futs.append(self.client.submit(_w_install_payload, data, workers=[c.addr], allow_other_workers=True,
                                               pure=False))
            try:
                got = self.client.gather(futs)
            except Exception:  # noqa: BLE001 - a worker was lost while installing: place again
                if attempt == RETRIES:
                    raise
                continue
            outs = []
            for c, (addr, out) in zip(chunks, got, strict=True):
                c.addr = addr
                outs.append(out)
            return outs
        raise AssertionError("unreachable")

    def refactorize(self, k: int, value: float) -> None:
        """New penalty on the driven ``P`` entries of batch ``k``: sent with the next step."""
        for c in self._chunks[k]:
            c.pending.append(("P", float(value)))

    # ------------------------------------------------------------ iterations
    def step(self, qcols: list[np.ndarray]) -> list[StepOut]:
        """Solve every batch with new driven columns of ``q``; the driven columns of ``x`` and statuses back."""
        todo: list[tuple[_Chunk, Any]] = []
        for k, q in enumerate(qcols):
            for c in self._chunks[k]:
                ops = c.pending + [("q", np.ascontiguousarray(q[c.lo:c.hi]))]
                c.pending = []
                c.ops.extend(ops)
                self._bytes["step_in"] += _nbytes([v for _, v in ops])
                todo.append((c, self.client.submit(_w_step, c.key, ops, workers=[c.addr],
                                                   allow_other_workers=False, pure=False)))
        outs = self._collect(todo)
        self._steps += 1
        res = []
        for k in range(len(qcols)):
            res.append(StepOut.concat([outs[c.key] for c in self._chunks[k]]))
        return res

    def _collect(self, todo: list[tuple[_Chunk, Any]]) -> dict[str, StepOut]:
        """Gather the steps; chunks whose worker was lost are installed elsewhere and their ops replayed."""
        from distributed import wait

        outs: dict[str, StepOut] = {}
        tries: dict[str, int] = {}
        pending = list(todo)
        while pending:
            futs = [f for _, f in pending]
            try:
                wait(futs, timeout=POLL_S)
            except Exception:  # noqa: BLE001 - a timeout: some are still running
                pass
            live = set(self._workers())
            lost: list[_Chunk] = []
            still = []
            for c, f in pending:
                if f.status == "finished":
                    out = f.result()
                    self._bytes["step_out"] += out.nbytes
                    outs[c.key] = out
                elif f.status in ("error", "cancelled", "lost") or c.addr not in live:
                    if f.status == "error":
                        exc = f.exception()
                        if not isinstance(exc, ChunkLost | OSError) and "Comm" not in type(exc).__name__ \
                                and "KilledWorker" not in type(exc).__name__:
                            raise exc
                    f.cancel()
                    tries[c.key] = tries.get(c.key, 0) + 1
                    if tries[c.key] > RETRIES:
                        raise NodalOptError(f"ADMM feeder chunk {c.key}: its worker was lost {RETRIES} times "
                                            "in one iteration; the Dask cluster is unstable.")
                    lost.append(c)
                else:
                    still.append((c, f))
            if lost:
                self.reinstalls += len(lost)
                for c, out in zip(lost, self._place(lost, ops_of=lambda c: c.ops, replay=True), strict=True):
                    assert out is not None
                    self._bytes["step_out"] += out.nbytes
                    outs[c.key] = out
            pending = still
        return outs

    def _fetch(self, chunks: list[_Chunk]) -> list[tuple[QPResult, dict[str, np.ndarray]]]:
        got = []
        for c in chunks:  # a lost chunk is replayed first
            for attempt in range(RETRIES + 1):
                try:
                    f = self.client.submit(_w_full, c.key, workers=[c.addr], allow_other_workers=True, pure=False)
                    out = f.result()
                    break
                except Exception as exc:  # noqa: BLE001
                    if attempt == RETRIES or not (isinstance(exc, ChunkLost | OSError)
                                                  or "Comm" in type(exc).__name__
                                                  or "KilledWorker" in type(exc).__name__):
                        raise
                    self.reinstalls += 1
                    self._place([c], ops_of=lambda c: c.ops, replay=True)
            self._bytes["fetch"] += _nbytes(out[0]) + _nbytes(out[1])
            got.append(out)
        return got

    def results(self) -> list[QPResult]:
        """Full last solutions of every batch (fetched from the workers)."""
        return [_concat([r for r, _ in self._fetch(self._chunks[k])]) for k in sorted(self._chunks)]

    def qp_state(self) -> list[dict[str, np.ndarray]]:
        out = []
        for k in sorted(self._chunks):
            sts = [s for _, s in self._fetch(self._chunks[k])]
            out.append({key: np.concatenate([s[key] for s in sts]) for key in ("rho", "act", "known")})
        return out

    def restore(self, k: int, warm: Warm | None, state: dict[str, np.ndarray]) -> None:
        """Start batch ``k`` from a checkpoint's warm start, step sizes and active sets."""
        chunks = self._chunks[k]
        for c in chunks:
            sl = slice(c.lo, c.hi)
            c.warm = tuple(np.asarray(a)[sl] for a in warm) if warm is not None else None  # type: ignore[assignment]
            c.rho = state["rho"][sl] if "rho" in state else None
            if "act" in state and "known" in state:
                c.act, c.known = state["act"][sl], state["known"][sl]
            c.ops = []
        self._place(chunks, ops_of=lambda c: [])

    def stats(self) -> dict[str, float]:
        """Bytes moved (install, per-iteration steps, fetches, replays) and the steps made."""
        n = max(self._steps, 1)
        K = sum(c.hi - c.lo for cs in self._chunks.values() for c in cs)
        step = (self._bytes["step_in"] + self._bytes["step_out"]) / n
        return {**{f"bytes_{k}": float(v) for k, v in self._bytes.items()}, "steps": float(self._steps),
                "bytes_per_iteration": float(step), "bytes_per_iteration_per_feeder": float(step / max(K, 1)),
                "reinstalls": float(self.reinstalls), "warmup_s": self.warmup_s,
                "resident_bytes": float(self.resident_nbytes())}

    def resident_nbytes(self) -> int:
        """Bytes of the chunks held by all workers."""
        return int(sum(self.client.run(_w_nbytes, self.run_id).values()))

    def close(self) -> None:
        """Drop this run's chunks from the workers and close the client (and the local cluster)."""
        log = logging.getLogger("distributed")
        try:
            self.client.run(_w_drop, self.run_id)
        except Exception:  # noqa: BLE001 - a cluster that is already gone holds nothing
            pass
        self._chunks.clear()
        old = log.level
        if self._cluster is not None:
            log.setLevel(logging.CRITICAL)  # workers closing while the client disconnects log comm errors
        try:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()
        finally:
            log.setLevel(old)
