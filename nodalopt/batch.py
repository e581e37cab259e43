"""Batch solves: every case under a folder, in parallel, one netCDF per case plus ``summary.csv``.

A *case* is a CSV network folder (a folder holding ``buses.csv``, see
:mod:`nodalopt.io.csv_folder`), a MATPOWER ``.m`` file or a pandapower ``.json``
file anywhere under the root.  Each case is solved by a pure task (paths in,
a summary row out; the task itself writes the netCDF), serially in this
process, on a local Dask cluster (``workers=N``) or on an existing Dask
scheduler (``scheduler="tcp://host:port"``; the workers must be able to import
nodalopt and to read the inputs and write ``outdir`` at the same paths).

A failing case is reported in the summary and does not stop the others.
Symbolic links and names resolving outside the root are skipped, oversized
files are refused before parsing, cases nested inside a case folder are refused;
all appear in the summary with the reason.

No result is lost or silently kept: ``summary.csv`` gets each row as its case
finishes (flushed to disk), a case that fails has its ``.nc`` from an earlier run
removed, ``resume=True`` keeps only outputs whose recorded input SHA-256 and
solve options match, and ``case_timeout`` / ``case_memory`` run each case in its
own process, killed past the limit.  Text cells of the summary are neutralised
against spreadsheet formulas.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .log import get_logger, progress_bar

log = get_logger(__name__)

#: largest case file (or sum of a case folder's CSV files) solved, in bytes
MAX_CASE_BYTES = 200 * 1024 * 1024
#: longest error message kept in the summary
MAX_ERROR_CHARS = 2000
SUMMARY_COLUMNS = ["case", "status", "objective", "lmp_min", "lmp_mean", "lmp_max", "total_emissions",
                   "seconds", "error", "kind", "output", "input_sha256", "resumed"]
SUCCESS = ("optimal", "optimal_with_load_shedding")
_SCHEDULER_RE = re.compile(r"^(tcp|tls)://[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """Refuse a Dask scheduler address that is malformed or does not accept a TCP connection.

    Checked before any case is solved, so an unreachable ``--scheduler`` is one clear
    :class:`InputError` instead of a 30-second Dask timeout and a traceback.
    """
    import socket

    if not _SCHEDULER_RE.match(str(address)):
        raise InputError(f"--scheduler {address!r}: must look like 'tcp://HOST:PORT'.")
    hostport = str(address).split("://", 1)[1]
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not 0 < int(port) < 65536:
        raise InputError(f"--scheduler {address!r}: port {port} is not in 1..65535.")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise InputError(f"--scheduler {address}: cannot connect ({exc.strerror or exc}); check the address and "
                         "that the Dask scheduler is running.") from None


# ================================================================ discovery
def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _safe_name(rel: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.replace("/", "__")).strip("._") or "case"
    return s[:150]


def _row(name: str, kind: str, status: str, error: str, output: str = "") -> dict[str, Any]:
    return dict(case=name, status=status, objective=math.nan, lmp_min=math.nan, lmp_mean=math.nan,
                lmp_max=math.nan, total_emissions=math.nan, seconds=0.0, error=error[:MAX_ERROR_CHARS],
                kind=kind, output=output, input_sha256="", resumed=False)


def _folder_bytes(folder: Path) -> int:
    total = 0
    for e in os.scandir(folder):
        if e.name.endswith(".csv") and e.is_file(follow_symlinks=False):
            total += e.stat(follow_symlinks=False).st_size
    return total


def discover_cases(root: str | os.PathLike[str], outdir: str | os.PathLike[str] | None = None,
                   max_bytes: int = MAX_CASE_BYTES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Find the cases under ``root``.

    Returns ``(cases, skipped)``: each case is a dict ``name, kind, path, root``
    (``kind`` one of ``"csv_folder"``, ``"matpower"``, ``"pandapower_json"``);
    ``skipped`` are summary rows for symbolic links, paths outside the root and
    oversized inputs.  Hidden entries (``.git``) and ``outdir`` are ignored.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"{r}: not a folder; give the folder that holds the cases.")
    root_res = r.resolve()
    out_res = Path(outdir).resolve() if outdir is not None else None
    cases: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []

    def rel(p: Path) -> str:
        return p.relative_to(r).as_posix() if p != r else (r.resolve().name or ".")

    def add(p: Path, kind: str) -> None:
        name = rel(p)
        if not _inside(p, root_res):
            skipped.append(_row(name, kind, "skipped", f"resolves to {p.resolve()}, outside the batch root"))
            return
        size = _folder_bytes(p) if kind == "csv_folder" else p.stat(follow_symlinks=False).st_size
        if size > max_bytes:
            skipped.append(_row(name, kind, "refused", f"{size} bytes, over the {max_bytes}-byte limit; "
                                                       "not parsed"))
            return
        cases.append(dict(name=name, kind=kind, path=str(p), root=str(root_res)))

    def nested(folder: Path) -> None:
        """Cases inside a case folder are not solved (a case folder is not searched further): report them."""
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = sorted(dn for dn in dirnames if not dn.startswith("."))
            found = [(d / dn, "csv_folder") for dn in dirnames if (d / dn / "buses.csv").exists()]
            found += [(d / fn, {"m": "matpower", "json": "pandapower_json"}[fn.rsplit(".", 1)[-1].lower()])
                      for fn in sorted(filenames) if not fn.startswith(".") and "." in fn
                      and fn.rsplit(".", 1)[-1].lower() in ("m", "json") and d != folder]
            for p, kind in found:
                skipped.append(_row(rel(p), kind, "refused",
                                    f"inside the case folder {rel(folder)}, which is solved as one case and not "
                                    "searched further; move it out of that folder to solve it"))

    if (r / "buses.csv").exists():
        add(r, "csv_folder")
        nested(r)
        return cases, skipped
    for dirpath, dirnames, filenames in os.walk(r, followlinks=False):
        d = Path(dirpath)
        keep = []
        for dn in sorted(dirnames):
            p = d / dn
            if dn.startswith(".") or (out_res is not None and p.resolve() == out_res):
                continue
            if p.is_symlink():
                skipped.append(_row(rel(p), "folder", "skipped", "symbolic link; not followed"))
                continue
            if (p / "buses.csv").exists():
                add(p, "csv_folder")
                nested(p)
                continue  # a case folder is not searched further
            keep.append(dn)
        dirnames[:] = keep
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            suffix = fn.rsplit(".", 1)[-1].lower() if "." in fn else ""
            kind = {"m": "matpower", "json": "pandapower_json"}.get(suffix)
            if kind is None:
                continue
            p = d / fn
            if p.is_symlink():
                skipped.append(_row(rel(p), kind, "skipped", "symbolic link; not followed"))
                continue
            if not p.is_file():
                skipped.append(_row(rel(p), kind, "refused", "not a regular file (a FIFO, socket or device?); "
                                                             "not read"))
                continue
            add(p, kind)
    cases.sort(key=lambda c: c["name"])
    return cases, skipped


# ================================================================ the task
def _solve(case: dict[str, Any], solve_kwargs: dict[str, Any]) -> Any:
    p = Path(case["path"])
    if p.is_symlink() or not _inside(p, Path(case["root"])):
        raise InputError(f"{p}: became a symbolic link or moved outside the batch root; not solved.")
    kw = dict(solve_kwargs)
    if case["kind"] == "csv_folder":
        from .io.csv_folder import solve_csv_folder

        dc_model = kw.pop("dc_model", "pypsa")
        return solve_csv_folder(p, dc_model="pypsa" if dc_model == "pandapower" else dc_model, **kw)
    from .dcopf import solve
    from .network import load_case

    return solve(load_case(p), **kw)


def _open_input(path: Path) -> int | None:
    """A read-only descriptor of a regular file, opened without blocking (``None`` for anything else)."""
    from .io.csv_folder import open_regular

    try:
        return open_regular(path, "case input")
    except InputError:
        return None


def input_hash(case: dict[str, Any]) -> str:
    """SHA-256 of a case's input: the file, or every regular file directly in a CSV folder (names and bytes)."""
    h = hashlib.sha256()
    p = Path(case["path"])
    files = [p] if case["kind"] != "csv_folder" else [Path(e.path) for e in sorted(os.scandir(p), key=lambda e: e.name)
                                                       if e.is_file(follow_symlinks=False)]
    for f in files:
        fd = _open_input(f)
        if fd is None:
            h.update(b"\0unreadable\0" + f.name.encode())
            continue
        h.update(f.name.encode() + b"\0")
        with os.fdopen(fd, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023 - fh is the loop's own file
                h.update(chunk)
    return h.hexdigest()


def settings_hash(solve_kwargs: dict[str, Any]) -> str:
    """SHA-256 of the solve options (``repr`` of the sorted items): a resumed case must have been solved alike."""
    return hashlib.sha256(repr(sorted(solve_kwargs.items())).encode()).hexdigest()


def _summarize(row: dict[str, Any], ds: Any) -> None:
    lmp = np.asarray(ds["lmp"].values, dtype=float)
    finite = lmp[np.isfinite(lmp)]
    emis = float(ds.attrs["total_emissions_t"]) if "total_emissions_t" in ds.attrs else math.nan
    row.update(status=str(ds.attrs.get("status", "optimal")), objective=float(ds.attrs["objective"]),
               lmp_min=float(finite.min()) if finite.size else math.nan,
               lmp_mean=float(finite.mean()) if finite.size else math.nan,
               lmp_max=float(finite.max()) if finite.size else math.nan, total_emissions=emis)


def _remove_stale(output: str) -> None:
    """A case that failed keeps no result file from an earlier run (nor a partial one)."""
    for f in (output, f"{output}.part"):
        try:
            os.remove(f)
        except OSError:
            pass


def solve_case_task(case: dict[str, Any], output: str, solve_kwargs: dict[str, Any],
                    limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Solve one case and write its netCDF to ``output``; returns the summary row.

    Pure apart from writing ``output``: safe to run on any Dask worker.  Never raises for a
    bad case: the error is in the row, and an ``output`` left from an earlier run is removed.
    ``limits`` (``timeout_s``, ``memory_mb``, ``input_sha256``, ``settings_sha256``): with a
    time or memory limit the case runs in a child process that is killed past either.
    """
    limits = dict(limits or {})
    if limits.get("timeout_s") or limits.get("memory_mb"):
        return _supervised(case, output, solve_kwargs, limits)
    from .results import to_netcdf

    t0 = time.perf_counter()
    row = _row(case["name"], case["kind"], "failed", "", output)
    row["input_sha256"] = limits.get("input_sha256", "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _solve(case, solve_kwargs)
            ds.attrs["nodalopt_input_sha256"] = limits.get("input_sha256", "")
            ds.attrs["nodalopt_settings_sha256"] = limits.get("settings_sha256", "")
            tmp = f"{output}.part"
            to_netcdf(ds, tmp)
            os.replace(tmp, output)
        _summarize(row, ds)
    except Exception as exc:  # noqa: BLE001 - a bad case must not stop the batch
        msg = str(exc).replace("\n", " ")
        row.update(status="failed", error=f"{type(exc).__name__}: {msg}"[:MAX_ERROR_CHARS], output="")
        _remove_stale(output)
    row["seconds"] = time.perf_counter() - t0
    return row


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, MB (0 when it is gone)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        total = 0
        for q in procs:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20
    except ImportError:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0
    except Exception:  # noqa: BLE001 - psutil.Error: the process is gone
        return 0.0


#: seconds between two looks at a supervised case's wall time and memory
POLL_S = 0.05


def _supervised(case: dict[str, Any], output: str, solve_kwargs: dict[str, Any],
                limits: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`solve_case_task` for one case in a child process, killed past its time or memory limit."""
    import json
    import signal
    import subprocess
    import tempfile

    timeout = float(limits.get("timeout_s") or 0)
    mem_mb = float(limits.get("memory_mb") or 0)
    inner = {k: v for k, v in limits.items() if k not in ("timeout_s", "memory_mb")}
    t0 = time.perf_counter()
    row = _row(case["name"], case["kind"], "failed", "", "")
    row["input_sha256"] = limits.get("input_sha256", "")
    with tempfile.TemporaryDirectory(prefix="nodalopt-case-") as tmpd:
        spec, result, err = Path(tmpd, "spec.json"), Path(tmpd, "row.json"), Path(tmpd, "stderr.txt")
        try:
            spec.write_text(json.dumps(dict(case=case, output=output, solve_kwargs=solve_kwargs, limits=inner,
                                            result=str(result))))
        except TypeError as exc:
            row["error"] = f"InputError: the solve options must be plain values to run a case under limits ({exc})"
            return row
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([pkg_root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        with err.open("wb") as errf:
            proc = subprocess.Popen([sys.executable, "-m", "nodalopt.batch", "--run-case", str(spec)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf, env=env,
                                    start_new_session=True)
            killed, peak = "", 0.0
            while proc.poll() is None:
                peak = max(peak, tree_rss_mb(proc.pid)) if mem_mb else 0.0
                elapsed = time.perf_counter() - t0
                if timeout and elapsed > timeout:
                    killed = f"timeout: killed after {elapsed:.1f} s, over the case time limit of {timeout:g} s"
                elif mem_mb and peak > mem_mb:
                    killed = (f"memory: killed at {peak:.0f} MB resident, over the case memory limit of "
                              f"{mem_mb:g} MB")
                if killed:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        proc.kill()
                    proc.wait()
                    break
                time.sleep(POLL_S)
            try:  # leftovers of the child's session (normally none)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not killed and result.exists():
            try:
                got = json.loads(result.read_text())
            except ValueError:
                got = None
            if isinstance(got, dict):
                row.update({k: got.get(k, row[k]) for k in row})
                row["seconds"] = time.perf_counter() - t0
                return row
        if not killed:
            tail = err.read_bytes()[-600:].decode(errors="replace").strip().splitlines()
            killed = (f"the case's process ended with code {proc.returncode} without a result"
                      + (f": {tail[-1]}" if tail else ""))
    _remove_stale(output)
    row.update(status="failed", error=killed[:MAX_ERROR_CHARS], output="", seconds=time.perf_counter() - t0)
    return row


def _child_main(spec_path: str) -> int:
    """Entry of a supervised case's child process: solve, write the row as JSON."""
    import json

    spec = json.loads(Path(spec_path).read_text())
    row = solve_case_task(spec["case"], spec["output"], spec["solve_kwargs"], spec["limits"])
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    tmp = Path(spec["result"] + ".part")
    tmp.write_text(json.dumps(clean))
    os.replace(tmp, spec["result"])
    return 0


# ================================================================ running
def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    # shown when stderr is a terminal and progress is not switched off (nodalopt.log, --quiet)
    return progress_bar(total, "cases", "case", delay=0.0)


def _outputs(cases: list[dict[str, Any]], out: Path) -> list[str]:
    used: set[str] = set()
    paths = []
    for c in cases:
        base = _safe_name(c["name"])
        name, k = base, 1
        while name.lower() in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name.lower())
        paths.append(str((out / f"{name}.nc").resolve()))
    return paths


def _run_dask(client: Any, cases: list[dict[str, Any]], outputs: list[str], solve_kwargs: dict[str, Any],
              limits: list[dict[str, Any]], bar: Any) -> Iterable[dict[str, Any]]:
    from dask.distributed import as_completed

    futures = [client.submit(solve_case_task, c, o, solve_kwargs, lim, pure=False,
                             key=f"nodalopt-case-{i}-{os.getpid()}-{time.time_ns()}")
               for i, (c, o, lim) in enumerate(zip(cases, outputs, limits, strict=True))]
    index = {f.key: i for i, f in enumerate(futures)}
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            row = fut.result()
        except Exception as exc:  # noqa: BLE001 - worker died, task lost, ...
            row = _row(cases[i]["name"], cases[i]["kind"], "failed",
                       f"{type(exc).__name__} on the Dask cluster: {exc}")
            row["input_sha256"] = limits[i].get("input_sha256", "")
            _remove_stale(outputs[i])
        if bar is not None:
            bar.update(1)
        fut.release()
        yield row


class SummaryWriter:
    """``summary.csv`` written as the batch goes: the header at once, each row when its case finishes.

    Each row is flushed and fsync'ed, so a killed batch leaves every finished case in the
    file.  Text cells are neutralised against spreadsheet formulas.  :meth:`finish` rewrites
    the file sorted by case (atomically).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(SUMMARY_COLUMNS)

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[Any]:
        from .io.csv_folder import neutralise_cell

        out = []
        for c in SUMMARY_COLUMNS:
            v = row.get(c, "")
            if isinstance(v, float) and math.isnan(v) or v is None:
                v = ""
            out.append(neutralise_cell(v) if isinstance(v, str) else repr(v) if isinstance(v, float) else v)
        return out

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(self._cells(row))
            fh.flush()
            os.fsync(fh.fileno())

    def finish(self, df: pd.DataFrame) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(SUMMARY_COLUMNS)
            for row in df.to_dict("records"):
                w.writerow(self._cells(row))
        os.replace(tmp, self.path)


def _resumable(case: dict[str, Any], output: str, h: str, settings: str) -> dict[str, Any] | None:
    """The summary row of a case whose result is complete and whose input and settings are unchanged."""
    p = Path(output)
    if not h or not p.is_file() or p.is_symlink():
        return None
    try:
        import xarray as xr

        with xr.open_dataset(p) as ds:
            if (ds.attrs.get("nodalopt_input_sha256") != h or ds.attrs.get("nodalopt_settings_sha256") != settings
                    or str(ds.attrs.get("status", "")) not in SUCCESS):
                return None
            row = _row(case["name"], case["kind"], "failed", "", str(p))
            _summarize(row, ds)
    except Exception:  # noqa: BLE001 - unreadable or partial output: solve the case again
        return None
    row.update(input_sha256=h, resumed=True)
    return row


def check_outdir(outdir: str | os.PathLike[str]) -> Path:
    """Create ``outdir`` if needed and check that it is a writable folder (before any case is solved)."""
    out = Path(outdir)
    anc = out
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise InputError(f"-o {out}: {anc} is a file, not a folder; give a folder for the results.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".nodalopt-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"-o {out}: cannot write in this folder ({exc.strerror or exc}); choose a writable "
                         "folder.") from None
    return out


def run_batch(root: str | os.PathLike[str], outdir: str | os.PathLike[str], workers: int | None = None,
              scheduler: str | None = None, progress: bool = True, max_bytes: int = MAX_CASE_BYTES,
              resume: bool = False, case_timeout: float | None = None, case_memory: float | None = None,
              **solve_kwargs: Any) -> pd.DataFrame:
    """Solve every case under ``root``; one netCDF per case in ``outdir`` plus ``summary.csv``.

    Parameters
    ----------
    root : path
        Folder searched recursively for CSV network folders, ``.m`` and ``.json`` files.
    outdir : path
        Created if needed; receives ``<case>.nc`` and ``summary.csv``.
    workers : int, optional
        ``None`` or 1: solve in this process, one case after the other.  ``N > 1``: a local
        Dask cluster of N single-threaded worker processes bound to 127.0.0.1.
    scheduler : str, optional
        Address of an existing Dask scheduler (``"tcp://host:port"``); overrides ``workers``.
    progress : bool
        Show a tqdm progress bar (silently none when tqdm is not installed).
    max_bytes : int
        Cases larger than this are refused before parsing.
    resume : bool
        Keep the result of every case whose ``<case>.nc`` is complete and was solved from the
        same input (SHA-256 of its file(s)) with the same options; solve only the others.
    case_timeout : float, optional
        Seconds one case may take (wall time of its own child process, start included); past it
        the case is killed and reported as failed, and the batch goes on.  No limit by default.
    case_memory : float, optional
        MB of resident memory one case may use (its process and children, polled every
        :data:`POLL_S` s); past it the case is killed and reported as failed.  No limit by default.
    **solve_kwargs
        Passed to :func:`nodalopt.solve` / :func:`nodalopt.io.solve_csv_folder` (``hours``,
        ``voll``, ``solver``, ``dc_model``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per case (also written to ``summary.csv``, row by row as the cases finish),
        columns :data:`SUMMARY_COLUMNS`.
    """
    if workers is not None and (int(workers) != workers or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}.")
    for name, v in (("case_timeout", case_timeout), ("case_memory", case_memory)):
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number, got {v!r}.")
    if scheduler is not None:
        check_scheduler(scheduler)
    out = check_outdir(outdir)
    cases, rows = discover_cases(root, outdir=out, max_bytes=max_bytes)
    outputs = _outputs(cases, out)
    settings = settings_hash(solve_kwargs)
    summary = SummaryWriter(out / "summary.csv")
    for r in rows:
        summary.append(r)
    todo: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    for c, o in zip(cases, outputs, strict=True):
        h = input_hash(c)
        prev = _resumable(c, o, h, settings) if resume else None
        if prev is not None:
            rows.append(prev)
            summary.append(prev)
            continue
        todo.append((c, o, dict(input_sha256=h, settings_sha256=settings, timeout_s=case_timeout,
                                memory_mb=case_memory)))
    bar = _progress(len(todo), progress)

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        summary.append(row)
        if bar is not None:
            bar.update(1)

    try:
        if scheduler is None and (workers is None or workers == 1):
            for c, o, lim in todo:
                done(solve_case_task(c, o, solve_kwargs, lim))
        elif todo:
            from dask.distributed import Client, LocalCluster

            tc, to, tl = [t[0] for t in todo], [t[1] for t in todo], [t[2] for t in todo]
            if scheduler is not None:
                with Client(scheduler, timeout="30s") as client:
                    for row in _run_dask(client, tc, to, solve_kwargs, tl, None):
                        done(row)
            else:
                import logging

                from .admm.dask_exec import check_main_guard

                check_main_guard()  # a script without the __main__ guard would be re-run by every worker
                with LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                    for row in _run_dask(client, tc, to, solve_kwargs, tl, None):
                        done(row)
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    df = df.sort_values("case", kind="stable").reset_index(drop=True)
    df["resumed"] = df["resumed"].fillna(False).astype(bool)
    summary.finish(df)
    return df


# ================================================================ CLI
def _cmd_batch(args: argparse.Namespace) -> int:
    kw: dict[str, Any] = {}
    for k in ("hours", "voll", "solver", "dc_model"):
        v = getattr(args, k, None)
        if v is not None:
            kw[k] = v
    from .cli import check_hours

    check_hours(args.hours)
    df = run_batch(args.root, args.output, workers=args.workers, scheduler=args.scheduler,
                   progress=not args.no_progress, resume=args.resume, case_timeout=args.case_timeout,
                   case_memory=args.case_memory, **kw)
    df = df.fillna({"error": ""})
    ok = df["status"].isin(SUCCESS)
    skipped = df["status"] == "skipped"
    resumed = int(df["resumed"].sum())
    print(f"{int(ok.sum())} of {int((~skipped).sum())} case(s) solved"
          + (f" ({resumed} kept from the previous run)" if resumed else "")
          + f", {int(skipped.sum())} skipped; summary in {Path(args.output) / 'summary.csv'}")
    for _, r in df[~ok].iterrows():
        log.error("  %-8s %s: %s", r["status"], r["case"], r["error"])
    if not len(df):
        log.error("error: no cases (CSV folders with buses.csv, .m or .json files) under %s", args.root)
        return 2
    return 0 if bool((ok | skipped).all()) else 1


def register_cli(sub: Any) -> None:
    """Add ``nodalopt batch DIR -o OUTDIR [--workers N] [--scheduler tcp://...]``.

    Exit code 0 when every case solved (symbolic links skipped by policy do not count),
    1 when any case failed or was refused, 2 when DIR holds no case.
    """
    b = sub.add_parser("batch", help="solve every case under a folder (CSV folders, .m, .json)",
                       description="Solve every case under DIR; one netCDF per case and summary.csv in "
                                   "OUTDIR. Exit code 0 if every case solved, 1 if any failed.")
    b.add_argument("root", metavar="DIR", help="folder searched for cases")
    b.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    b.add_argument("--workers", type=int, default=None, help="local Dask worker processes (default: serial)")
    b.add_argument("--scheduler", default=None, help="existing Dask scheduler, tcp://HOST:PORT")
    b.add_argument("--hours", type=int, default=None, help="periods (CSV folders: first HOURS snapshots)")
    b.add_argument("--voll", type=float, default=None, help="value of lost load, $/MWh")
    b.add_argument("--solver", default=None, help="solver name (default CLARABEL)")
    b.add_argument("--dc-model", default=None, choices=["pandapower", "pglib"],
                   help="branch susceptance convention")
    b.add_argument("--resume", action="store_true",
                   help="keep every case whose .nc is complete and whose input and options are unchanged "
                        "(SHA-256); solve only the others")
    b.add_argument("--case-timeout", type=float, default=None, metavar="SECONDS",
                   help="fail a case that runs longer than this (it runs in its own process, killed on the "
                        "limit) and go on; default: no limit")
    b.add_argument("--case-memory", type=float, default=None, metavar="MB",
                   help="fail a case whose process uses more resident memory than this and go on; "
                        "default: no limit")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_batch)


if __name__ == "__main__":  # the child process of a case run under --case-timeout / --case-memory
    if sys.argv[1:2] == ["--run-case"] and len(sys.argv) == 3:
        sys.exit(_child_main(sys.argv[2]))
    print("usage: python -m nodalopt.batch --run-case SPEC.json (internal; use `nodalopt batch`)", file=sys.stderr)
    sys.exit(2)
