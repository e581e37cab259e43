"""Issue target: computing the emission tensors adds at most 50 % to the solve time of a
24-hour case1354pegase_fixed run (``registry.CARBON_CASE``: the package's fixed PEGASE case,
the same network and costs as the DC-OPF suite).  Writes benchmarks/results/carbon_overhead.md.

    PYTHONPATH=. python benchmarks/carbon_overhead.py
"""

from __future__ import annotations

import platform
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    warnings.filterwarnings("ignore")
    import nodalopt
    from benchmarks.registry import CARBON_CASE, load
    from nodalopt.dcopf import carbon_terms as CT

    net = load(CARBON_CASE)
    rows = []
    for _ in range(3):
        m = nodalopt.DCOPF(net, hours=24, emission_factors="synthetic")
        t0 = time.perf_counter()
        m.ef, ef = None, m.ef  # solve without the carbon post-processing ...
        ds = m.solve()
        t_solve = time.perf_counter() - t0
        b = m._built
        t1 = time.perf_counter()  # ... then time the emission tensors alone on the same solution
        ds = CT.add_carbon(ds, m.last_state, ef, np.zeros(24), None, c1=np.asarray(b.par.c1.value))
        t_carbon = time.perf_counter() - t1
        rows.append((t_solve, t_carbon, int(ds.lme_unique.values.sum()), ds.lme.size,
                     float(ds.attrs["total_emissions_t"])))
    med = np.median(np.array([r[:2] for r in rows]), axis=0)
    out = Path(__file__).parent / "results" / "carbon_overhead.md"
    out.write_text(
        f"# Emission tensors on 24-hour {CARBON_CASE}\n\n"
        f"Command: `PYTHONPATH=. python benchmarks/carbon_overhead.py` ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.processor() or platform.machine()}, 2 cores shared with other jobs)\n\n"
        "Synthetic emission factors (`emission_factors='synthetic'`), demo 24-hour profiles. *solve* = "
        "`DCOPF.solve` (cvxpy compile + Clarabel + prices + Dataset); *emission tensors* = `lme` (adjoint KKT "
        "solve), `carbon_intensity` and `flow_carbon` (carbon emission flow), `emissions`, `lmp_carbon`.\n\n"
        "| run | solve (s) | emission tensors (s) | added | unique LME node-hours | total emissions (t) |\n"
        "|---|---|---|---|---|---|\n"
        + "".join(f"| {i + 1} | {a:.2f} | {c:.3f} | {100 * c / a:.1f} % | {u} / {n} | {e:.0f} |\n"
                  for i, (a, c, u, n, e) in enumerate(rows))
        + f"\nMedian: solve {med[0]:.2f} s, emission tensors {med[1]:.3f} s = **{100 * med[1] / med[0]:.1f} %** "
        "added (target ≤ 50 %).\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
