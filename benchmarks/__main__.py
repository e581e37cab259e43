"""``python -m benchmarks [--cases ...] [--quick] [--out benchmarks/results]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .registry import CASES, select
from .runner import run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description="nodalopt vs pandapower rundcopp vs PyPSA+HiGHS.")
    ap.add_argument("--cases", nargs="*", default=None,
                    help="'all' (default), 'main', 'pglib', case names or regexes; see --list")
    ap.add_argument("--quick", action="store_true", help="only the quick cases, each run once")
    ap.add_argument("--out", default="benchmarks/results", help="output folder (latest.md, latest.json)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per run (default 3 / 1)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per tool run")
    ap.add_argument("--tools", nargs="*", default=None, help="only these tools (nodalopt, pandapower, pypsa)")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0,
                    help="address-space limit per tool process (RLIMIT_AS); 0 = none")
    ap.add_argument("--pglib-peer-max-buses", type=int, default=3000,
                    help="run PyPSA on PGLib cases up to this many buses (nodalopt runs on all)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args(argv)
    if a.list:
        for c in CASES.values():
            print(f"{c.name:<36} {c.group:<6} periods={c.periods} tools={c.tools}{' quick' if c.quick else ''}")
        return 0
    cases = select(a.cases, a.quick)
    print(f"{len(cases)} case(s) -> {a.out}")
    res = run(cases, a.quick, Path(a.out), a.repeat, a.timeout, argv, tools=a.tools, mem_gb=a.mem_limit_gb,
              pglib_peer_max_buses=a.pglib_peer_max_buses)
    print(f"wrote {Path(a.out) / 'latest.md'} and latest.json ({res['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
