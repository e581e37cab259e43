"""ADMM T&D runs.

``python -m benchmarks.admm_run N [inprocess|dask] [WORKERS]``
    case118_200mva + N ``case33bw_der`` feeders with EVs (``spread_feeders``), 24 h, default
    ``ADMMSettings``; prints progress every 10 iterations and a JSON line with the measurements.

``python -m benchmarks.admm_run sweep N ITERS EXECUTORS``
    The same model, built once, solved for a fixed ``ITERS`` ADMM iterations by each executor of
    the comma-separated ``EXECUTORS`` (``inprocess``, ``dask1``, ``dask2``, ... for a local cluster
    of that many workers).  Per executor one JSON line: seconds per iteration (median over the
    iterations after the first two), of which the coordinator (transmission subproblem and
    bookkeeping: everything but the feeder step) and the feeder step; the serial fraction
    (coordinator / iteration); bytes moved per iteration and per feeder; the resident QP state
    per feeder; the executor's start (cluster start + kernel warm-up).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np


def main() -> None:
    from benchmarks.registry import td_network
    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    n = int(sys.argv[1])
    executor = sys.argv[2] if len(sys.argv) > 2 else "inprocess"
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else None
    t0 = time.perf_counter()
    td = td_network(n)
    t1 = time.perf_counter()

    def progress(it: int, admm: object) -> None:
        if it % 10 == 0:
            print(f"  it {it} t={time.perf_counter() - t1:.0f}s", flush=True)

    ds = ADMM(td, ADMMSettings(max_iter=400, callback=progress), executor=executor, workers=workers,
              hours=24).solve()
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    a = ds.attrs
    print(json.dumps(dict(
        n=n, executor=executor, workers=workers, attach_s=round(t1 - t0, 1), solve_s=round(t2 - t1, 1),
        iterations=a["admm_iterations"], loss_updates=a["loss_iterations"], converged=a["admm_converged"],
        s_per_it=round(float(np.mean(ds.admm_seconds.values)), 3), peak_rss_mb=round(rss),
        dlmp_min=round(float(ds.dlmp.min()), 3), dlmp_max=round(float(ds.dlmp.max()), 3),
        node_hours=int(ds.sizes["dnode"] * 24), objective=a["objective"])), flush=True)


def sweep(n: int, iters: int, executors: list[str]) -> list[dict[str, object]]:
    """Fixed-iteration ADMM runs of one model by several executors (see the module docstring)."""
    from benchmarks.registry import td_network
    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    t0 = time.perf_counter()
    td = td_network(n)
    attach = time.perf_counter() - t0
    rows = []
    m = ADMM(td, ADMMSettings(max_iter=iters, return_unconverged=True), hours=24)  # built once, solved per executor
    orig = m._solve_feeders
    for ex in executors:
        workers = int(ex[4:]) if ex.startswith("dask") else None
        m.executor_name, m.workers, m.rho = "dask" if workers else "inprocess", workers, m.settings.rho
        feeder: list[float] = []

        def timed(orig: object = orig, feeder: list[float] = feeder) -> object:
            t = time.perf_counter()
            out = orig()  # type: ignore[operator]
            feeder.append(time.perf_counter() - t)
            return out

        m._solve_feeders = timed  # type: ignore[method-assign]
        t1 = time.perf_counter()
        ds = m.solve()
        wall = time.perf_counter() - t1
        secs = np.asarray(ds.admm_seconds.values)[2:]
        fs = np.asarray(feeder)[2:]
        a = ds.attrs
        it_s, f_s = float(np.median(secs)), float(np.median(fs))
        row = dict(n=n, executor=ex, iterations=int(a["admm_iterations"]), wall_s=round(wall, 2),
                   s_per_it=round(it_s, 4), feeder_s_per_it=round(f_s, 4),
                   coordinator_s_per_it=round(it_s - f_s, 4), serial_fraction=round((it_s - f_s) / it_s, 3),
                   bytes_per_it=a.get("executor_bytes_per_iteration"),
                   bytes_per_it_per_feeder=a.get("executor_bytes_per_iteration_per_feeder"),
                   install_bytes=a.get("executor_bytes_install"), executor_start_s=a.get("executor_warmup_s"),
                   resident_mb_per_feeder=round(float(a.get("executor_resident_bytes", 0.0)) / n / 2**20, 3),
                   attach_s=round(attach, 1), cpus=os.cpu_count(), load=[round(x, 2) for x in os.getloadavg()],
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                   price_max=round(float(ds.lmp.max()), 6))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":  # the guard matters: Dask's local cluster spawns worker processes
    if len(sys.argv) > 1 and sys.argv[1] == "sweep":
        sweep(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","))
    else:
        main()
