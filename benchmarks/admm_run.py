"""One ADMM T&D run: ``python -m benchmarks.admm_run N [inprocess|dask] [WORKERS]``.

case118_200mva + N ``case33bw_der`` feeders with EVs (``spread_feeders``), 24 h, default
``ADMMSettings``; prints progress every 10 iterations and a JSON line with the measurements.
"""

from __future__ import annotations

import json
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


if __name__ == "__main__":  # the guard matters: Dask's local cluster spawns worker processes
    main()
