"""Batch throughput: cases per minute for N copies of a 300-bus, 24-hour case, 1 vs 2 workers.

Standalone::

    PYTHONPATH=. python benchmarks/batch_throughput.py [N] [--workers 1 2] [--out benchmarks/results]

Writes ``batch_throughput.md`` in the output folder.  The case is pandapower's
``case300`` saved as a pandapower JSON file; each copy is solved over 24 hours with
the shipped demo profiles (``nodalopt.run_batch(..., hours=24)``).  ``workers=1``
solves in-process one case after the other; ``workers=N > 1`` starts a local Dask
cluster (N single-threaded worker processes on 127.0.0.1), and its start-up time is
included in the wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _make_cases(root: Path, n: int) -> None:
    import pandapower as pp

    from benchmarks.registry import BATCH_CASE, load

    net = load(BATCH_CASE)
    src = root / f"{BATCH_CASE}_000.json"
    pp.to_json(net, str(src))
    data = src.read_bytes()
    for i in range(1, n):
        (root / f"{BATCH_CASE}_{i:03d}.json").write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=100, help="number of case copies (default 100)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error("n must be >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nodalopt.batch import run_batch

    warnings.simplefilter("ignore")
    rows = []
    load0 = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    with tempfile.TemporaryDirectory(prefix="nodalopt-batch-") as tmp:
        root = Path(tmp) / "cases"
        root.mkdir()
        _make_cases(root, a.n)
        for w in a.workers:
            out = Path(tmp) / f"out_{w}"
            t0 = time.perf_counter()
            df = run_batch(root, out, workers=w, progress=False, hours=a.hours)
            wall = time.perf_counter() - t0
            ok = int(df.status.str.startswith("optimal").sum())
            rows.append(dict(workers=w, cases=len(df), ok=ok, wall_s=wall, per_min=60.0 * len(df) / wall,
                             mean_case_s=float(df.seconds.mean())))
            print(f"workers={w}: {len(df)} cases ({ok} optimal) in {wall:.1f} s -> "
                  f"{rows[-1]['per_min']:.1f} cases/min", flush=True)
    base = rows[0]["per_min"]
    lines = [
        "# Batch throughput",
        "",
        f"{a.n} copies of pandapower `case300` (300 buses), {a.hours} hourly periods each (demo profiles), "
        "solved with `nodalopt.batch.run_batch` (one netCDF per case + summary.csv).",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s) visible, load average before the run {load0}. Wall time includes the "
        "Dask cluster start-up and each worker's first import of nodalopt/cvxpy/pandapower; on a "
        "machine shared with other work the speed-up is bounded by the idle cores.",
        "",
        "| workers | cases | optimal | wall s | cases / min | speed-up | mean s per case (in worker) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['cases']} | {r['ok']} | {r['wall_s']:.1f} | {r['per_min']:.1f} | "
                     f"{r['per_min'] / base:.2f} | {r['mean_case_s']:.2f} |")
    lines += ["", f"Command: `PYTHONPATH=. python benchmarks/batch_throughput.py {a.n}`", ""]
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "batch_throughput.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out_dir / 'batch_throughput.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
