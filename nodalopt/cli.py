"""Command line: a thin layer over the public API.

Exit codes: 0 success, 1 a case failed (batch), 2 bad input, 3 infeasible or
unbounded, 4 solver trouble.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import errors

EXIT_OK, EXIT_CASE_FAILED, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_SOLVER = 0, 1, 2, 3, 4


def summarize(ds: Any) -> str:
    """A short human-readable summary of a result Dataset."""
    lmp = ds.lmp.values
    a = ds.attrs
    binding = [b for b in str(a.get("binding_branches", "")).split(",") if b]
    lines = [
        f"network      {a.get('network', '')}  ({ds.sizes['bus']} buses, {ds.sizes['branch']} branches, "
        f"{ds.sizes['gen']} generators, {ds.sizes['time']} period(s) of {a.get('period_hours')} h)",
        f"status       {a['status']}   solver {a['solver']}",
        f"objective    {a['objective']:.6g} $",
        f"LMP          min {np.nanmin(lmp):.4f}  mean {np.nanmean(lmp):.4f}  max {np.nanmax(lmp):.4f} $/MWh",
        f"binding      {len(binding)} branch(es)" + (f": {', '.join(binding[:10])}" if binding else "")
        + (" ..." if len(binding) > 10 else ""),
        f"time         build {a.get('build_s', 0):.3f} s, solve {a.get('solve_s', 0):.3f} s "
        f"(solver {a.get('solver_time_s', 0):.3f} s)",
    ]
    if "emissions" in ds:
        cap = f"   carbon price from the cap {a['co2_cap_price']:.4g} $/tCO2" if "co2_cap_price" in a else ""
        lines.append(f"emissions    {a.get('total_emissions_t', 0):.6g} tCO2 over the horizon{cap}")
        lines.append(f"LME          min {float(ds.lme.min()):.4f}  max {float(ds.lme.max()):.4f} tCO2/MWh   "
                     f"carbon intensity min {float(ds.carbon_intensity.min()):.4f}  "
                     f"max {float(ds.carbon_intensity.max()):.4f} tCO2/MWh")
    if "dlmp" in ds:
        lines.append(f"DLMP         min {float(ds.dlmp.min()):.4f}  max {float(ds.dlmp.max()):.4f} $/MWh at "
                     f"{ds.sizes['dnode']} feeder nodes of {ds.sizes['substation']} feeders; vm "
                     f"{float(ds.vm_pu.min()):.4f}..{float(ds.vm_pu.max()):.4f} pu; loss iterations "
                     f"{a.get('loss_iterations')}" + (f"; ADMM iterations {a['admm_iterations']}"
                                                      if "admm_iterations" in a else ""))
    if "load_shed" in ds and float(ds.load_shed.sum()) > 0:
        lines.append(f"load shed    {float(ds.load_shed.sum()) * a.get('period_hours', 1):.3f} MWh")
    return "\n".join(lines)


def _cmd_solve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import load_case, to_netcdf
    from .dcopf import DCOPF

    kw = dict(hours=args.hours, period_hours=args.period_hours, voll=args.voll, solver=args.solver,
              dc_model=args.dc_model, carbon_price=args.carbon_price, co2_cap=args.co2_cap,
              emission_factors=args.emission_factors)
    if Path(args.case).is_dir():  # CSV network folder: its own snapshots and time series
        from .io.csv_folder import solve_csv_folder

        ds = solve_csv_folder(args.case, **kw)
        print(summarize(ds))
        if args.output:
            to_netcdf(ds, args.output)
            print(f"written      {args.output}")
        return EXIT_OK
    net = load_case(args.case)
    if args.feeders or args.method != "central":
        ds = _solve_td(net, args)
    else:
        model = DCOPF(net, hours=args.hours, period_hours=args.period_hours, voll=args.voll,
                      solver=args.solver, dc_model=args.dc_model, carbon_price=args.carbon_price,
                      co2_cap=args.co2_cap, emission_factors=args.emission_factors)
        ds = model.solve()
        if args.explain:
            from .signals import with_explanation

            ds = ex = with_explanation(ds)
            up, down = float(ex.valid_up_mw.median()), float(ex.valid_down_mw.median())
            print(f"explain      {int((ex.lmp_max - ex.lmp_min > 1e-6).sum())} bus-hour(s) with a price interval; "
                  f"median valid range +{up:.4g} / -{down:.4g} MW")
    print(summarize(ds))
    if args.output:
        to_netcdf(ds, args.output)
        print(f"written      {args.output}")
    return EXIT_OK


def _solve_td(net: Any, args: argparse.Namespace) -> Any:
    """Transmission + feeders (``--feeders NAME:COUNT``), centralized or by ADMM (``--method admm``)."""
    from .distribution import TDNetwork
    from .distribution.examples import FEEDERS, ev_fleet, spread_feeders

    if not args.feeders:
        raise errors.InputError("--method admm needs feeders: add --feeders case33bw_der:20 (names: "
                                f"{sorted(FEEDERS)}).")
    td = TDNetwork(net, dc_model=args.dc_model)
    for spec in args.feeders:
        name, _, count = spec.partition(":")
        if name not in FEEDERS:
            raise errors.InputError(f"--feeders {spec!r}: unknown feeder {name!r}; known: {sorted(FEEDERS)}.")
        try:
            n = int(count or 1)
        except ValueError:
            raise errors.InputError(f"--feeders {spec!r}: COUNT must be an integer.") from None
        spread_feeders(td, FEEDERS[name](), n, prefix=f"{name}_", evs=ev_fleet() if name == "case33bw_der" else None)
    kw = dict(hours=args.hours, period_hours=args.period_hours, voll=args.voll, solver=args.solver)
    if args.method == "admm":
        from .admm.coordinator import ADMM, ADMMSettings

        st = ADMMSettings(progress=True)
        return ADMM(td, st, executor="dask" if args.workers else "inprocess", workers=args.workers,
                    scheduler=args.scheduler, **kw).solve()
    from .distribution import TDOPF

    return TDOPF(td, **kw).solve()


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        print("the benchmark runner lives in the repository's benchmarks/ folder: run "
              "`python -m benchmarks` from a checkout.", file=sys.stderr)
        return EXIT_INPUT
    return int(bench_main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nodalopt", description="Nodal electricity prices from power networks.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve one case and print a summary")
    s.add_argument("case", help="built-in case (case118), PGLib name, .m file, pandapower .json or a CSV folder")
    s.add_argument("--hours", type=int, default=None, help="number of periods (demo profiles if > 1)")
    s.add_argument("--period-hours", type=float, default=1.0, help="length of a period in hours")
    s.add_argument("--voll", type=float, default=None, help="value of lost load, $/MWh (allows shedding)")
    s.add_argument("--solver", default="CLARABEL", help="any solver cvxpy has installed")
    s.add_argument("--dc-model", default="pandapower", choices=["pandapower", "pglib"])
    s.add_argument("--carbon-price", type=float, default=None, help="carbon price, $/tCO2")
    s.add_argument("--co2-cap", type=float, default=None, help="CO2 cap over the horizon, tCO2")
    s.add_argument("--emission-factors", default="network", choices=["network", "synthetic"],
                   help="'network': co2_t_per_mwh / fuel columns; 'synthetic': documented assignment by cost")
    s.add_argument("--feeders", action="append", default=[], metavar="NAME:COUNT",
                   help="attach COUNT copies of a distribution feeder (case33bw, case33bw_der, cigre_mv) to the "
                        "largest-load buses; the result gains DLMPs (repeatable)")
    s.add_argument("--method", default="central", choices=["central", "admm"],
                   help="T&D solve: one centralized model, or ADMM between transmission and feeders")
    s.add_argument("--workers", type=int, default=None,
                   help="ADMM feeder updates on a local Dask cluster with this many workers (else in-process)")
    s.add_argument("--scheduler", default=None, help="ADMM on an existing Dask scheduler (tcp://host:port)")
    s.add_argument("--explain", action="store_true", help="add price intervals, valid MW ranges and price setters")
    s.add_argument("-o", "--output", default=None, help="write the result Dataset to this netCDF file")
    s.set_defaults(func=_cmd_solve)
    b = sub.add_parser("bench", help="run the benchmark suite (python -m benchmarks)")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark runner")
    b.set_defaults(func=_cmd_bench)
    try:  # batch solves (CSV folders, .m, .json) live in nodalopt.batch
        from .batch import register_cli
    except ImportError:
        pass
    else:
        register_cli(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after 'bench' belongs to the benchmark runner
        return _cmd_bench(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(args.func(args))
    except errors.InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (errors.InfeasibleError, errors.UnboundedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INFEASIBLE
    except (errors.SolverError, errors.ConvergenceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SOLVER


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
