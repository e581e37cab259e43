"""Issue 16 target: the price explanation (``nodalopt.explain``) of single-period case9241pegase in at
most the time of its solve; of 24-hour case1354pegase with ramps and storage in at most twice it.
Cases (with their fix-ups) come from :mod:`benchmarks.registry`.  Writes benchmarks/results/explain_speed.md.

    PYTHONPATH=. python benchmarks/explain_speed.py [--only case9241pegase]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

TARGETS = (("case9241pegase", 1, 1.0), ("case1354pegase+ramps+storage", 24, 2.0))


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", default=None, help="case name(s) of TARGETS")
    args = ap.parse_args(argv)
    import nodalopt
    from benchmarks.registry import select

    cases = {c.name: c for c in select(None, False)}
    rows = []
    for name, hours, target in TARGETS:
        if args.only and name not in args.only:
            continue
        net = cases[name].load()
        m = nodalopt.DCOPF(net, hours=hours)
        t0 = time.perf_counter()
        ds = m.solve()
        t_solve = time.perf_counter() - t0
        t1 = time.perf_counter()
        ex = nodalopt.explain(ds)
        t_ex = time.perf_counter() - t1
        n_int = int((ex.lmp_max - ex.lmp_min > 1e-6).sum())
        rows.append(f"| {name} | {hours} | {t_solve:.2f} | {t_ex:.2f} | {t_ex / t_solve:.2f} | {target:.0f} | "
                    f"{'yes' if t_ex <= target * t_solve else 'no'} | {ex.attrs['explain_lp_solves']} | "
                    f"{ex.attrs['explain_unresolved']} | {n_int} |")
        print(rows[-1], flush=True)
    out = Path(__file__).parent / "results" / "explain_speed.md"
    out.write_text("# Price explanation speed (issue 16)\n\n"
                   f"{platform.processor() or platform.machine()}, shared 2-core machine.\n\n"
                   "| case | hours | solve s | explain s | ratio | target | met | LP solves | unresolved | "
                   "intervals |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
