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
    ap.add_argument("--td", type=int, default=None, metavar="N",
                    help="instead of the DC-OPF suite: registry.td_network(N), case118_200mva + N case33bw_der feeders "
                         "(T&D, DLMPs)")
    ap.add_argument("--method", default="central", choices=["central", "admm"], help="T&D solve method (--td)")
    ap.add_argument("--workers", type=int, default=None, help="ADMM on a local Dask cluster with N workers (--td)")
    ap.add_argument("--hours", type=int, default=24, help="periods of the T&D run (--td)")
    a = ap.parse_args(argv)
    if a.td is not None:
        return _td_run(a)
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


def _td_run(a: argparse.Namespace) -> int:
    """One T&D solve through the public API (the same path as ``nodalopt solve --feeders``); appends to
    ``<out>/td_runs.md``."""
    import datetime
    import time

    import nodalopt

    from .registry import td_network

    t0 = time.perf_counter()
    td = td_network(a.td, evs=a.hours >= 24)  # the demo fleet charges 18:00-24:00
    kw: dict[str, object] = {}
    if a.method == "admm":
        kw = dict(method="admm", executor="dask" if a.workers else "inprocess", workers=a.workers)
    ds = nodalopt.solve(td, hours=a.hours, **kw)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    it = ds.attrs.get("admm_iterations", "")
    line = (f"| {datetime.datetime.now():%Y-%m-%d %H:%M} | {a.td} | {a.hours} | {a.method} | {a.workers or ''} | "
            f"{wall:.1f} | {it} | {float(ds.dlmp.min()):.3f} .. {float(ds.dlmp.max()):.3f} | "
            f"{ds.attrs['objective']:.8g} |")
    out = Path(a.out) / "td_runs.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        out.write_text("# T&D runs of `python -m benchmarks --td N [--method admm] [--workers W]`\n\n"
                       "| date | feeders | hours | method | Dask workers | wall s | ADMM iterations | DLMP range $/MWh "
                       "| objective $ |\n|---|---|---|---|---|---|---|---|---|\n")
    with out.open("a") as fh:
        fh.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
