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
files are refused before parsing; both appear in the summary with the reason.
"""

from __future__ import annotations

import argparse
import math
import os
import re
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
                   "seconds", "error", "kind", "output"]
SUCCESS = ("optimal", "optimal_with_load_shedding")
_SCHEDULER_RE = re.compile(r"^(tcp|tls)://[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")


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
                kind=kind, output=output)


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

    if (r / "buses.csv").is_file():
        add(r, "csv_folder")
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


def solve_case_task(case: dict[str, Any], output: str, solve_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Solve one case and write its netCDF to ``output``; returns the summary row.

    Pure apart from writing ``output``: safe to run on any Dask worker.  Never raises for a
    bad case: the error is in the row.
    """
    from .results import to_netcdf

    t0 = time.perf_counter()
    row = _row(case["name"], case["kind"], "failed", "", output)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _solve(case, solve_kwargs)
            tmp = f"{output}.part"
            to_netcdf(ds, tmp)
            os.replace(tmp, output)
        lmp = np.asarray(ds["lmp"].values, dtype=float)
        finite = lmp[np.isfinite(lmp)]
        emis = float(ds.attrs["total_emissions_t"]) if "total_emissions_t" in ds.attrs else math.nan
        row.update(status=str(ds.attrs.get("status", "optimal")), objective=float(ds.attrs["objective"]),
                   lmp_min=float(finite.min()) if finite.size else math.nan,
                   lmp_mean=float(finite.mean()) if finite.size else math.nan,
                   lmp_max=float(finite.max()) if finite.size else math.nan, total_emissions=emis)
    except Exception as exc:  # noqa: BLE001 - a bad case must not stop the batch
        msg = str(exc).replace("\n", " ")
        row.update(status="failed", error=f"{type(exc).__name__}: {msg}"[:MAX_ERROR_CHARS], output="")
        try:
            os.remove(f"{output}.part")
        except OSError:
            pass
    row["seconds"] = time.perf_counter() - t0
    return row


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
              bar: Any) -> Iterable[dict[str, Any]]:
    from dask.distributed import as_completed

    futures = [client.submit(solve_case_task, c, o, solve_kwargs, pure=False,
                             key=f"nodalopt-case-{i}-{os.getpid()}-{time.time_ns()}")
               for i, (c, o) in enumerate(zip(cases, outputs, strict=True))]
    index = {f.key: i for i, f in enumerate(futures)}
    for fut in as_completed(futures):
        i = index[fut.key]
        try:
            row = fut.result()
        except Exception as exc:  # noqa: BLE001 - worker died, task lost, ...
            row = _row(cases[i]["name"], cases[i]["kind"], "failed",
                       f"{type(exc).__name__} on the Dask cluster: {exc}")
        if bar is not None:
            bar.update(1)
        fut.release()
        yield row


def run_batch(root: str | os.PathLike[str], outdir: str | os.PathLike[str], workers: int | None = None,
              scheduler: str | None = None, progress: bool = True, max_bytes: int = MAX_CASE_BYTES,
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
    **solve_kwargs
        Passed to :func:`nodalopt.solve` / :func:`nodalopt.io.solve_csv_folder` (``hours``,
        ``voll``, ``solver``, ``dc_model``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per case (also written to ``summary.csv``), columns :data:`SUMMARY_COLUMNS`.
    """
    if workers is not None and (int(workers) != workers or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}.")
    if scheduler is not None and not _SCHEDULER_RE.match(str(scheduler)):
        raise InputError(f"scheduler must look like 'tcp://HOST:PORT', got {scheduler!r}.")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    cases, rows = discover_cases(root, outdir=out, max_bytes=max_bytes)
    outputs = _outputs(cases, out)
    bar = _progress(len(cases), progress)
    try:
        if scheduler is None and (workers is None or workers == 1):
            for c, o in zip(cases, outputs, strict=True):
                rows.append(solve_case_task(c, o, solve_kwargs))
                if bar is not None:
                    bar.update(1)
        elif cases:
            from dask.distributed import Client, LocalCluster

            if scheduler is not None:
                with Client(scheduler, timeout="30s") as client:
                    rows.extend(_run_dask(client, cases, outputs, solve_kwargs, bar))
            else:
                import logging

                with LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                    rows.extend(_run_dask(client, cases, outputs, solve_kwargs, bar))
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    df = df.sort_values("case", kind="stable").reset_index(drop=True)
    df.to_csv(out / "summary.csv", index=False)
    return df


# ================================================================ CLI
def _cmd_batch(args: argparse.Namespace) -> int:
    kw: dict[str, Any] = {}
    for k in ("hours", "voll", "solver", "dc_model"):
        v = getattr(args, k, None)
        if v is not None:
            kw[k] = v
    df = run_batch(args.root, args.output, workers=args.workers, scheduler=args.scheduler,
                   progress=not args.no_progress, **kw)
    df = df.fillna({"error": ""})
    ok = df["status"].isin(SUCCESS)
    skipped = df["status"] == "skipped"
    print(f"{int(ok.sum())} of {int((~skipped).sum())} case(s) solved, {int(skipped.sum())} skipped; "
          f"summary in {Path(args.output) / 'summary.csv'}")
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
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_batch)
