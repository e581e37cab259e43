"""Command line: a thin layer over the public API.

Exit codes: 0 success, 1 a case failed (batch) or an unexpected internal error, 2 bad
input (including an output path that cannot be written and an unreachable
``--scheduler``), 3 infeasible or unbounded, 4 solver trouble (including running out of
memory).  Every failure is one line on stderr, ``error: ...``, naming the file (and the
line, for text formats) where known; set ``NODALOPT_TRACEBACK=1`` to get the traceback
of an unexpected error as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, errors
from .log import logger, progress_enabled, set_progress

EXIT_OK, EXIT_CASE_FAILED, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_SOLVER = 0, 1, 2, 3, 4
#: largest ``--hours``: ten leap years of hourly periods (memory grows linearly with it)
MAX_HOURS = 87_840


def check_hours(hours: int | None) -> None:
    """Refuse ``--hours`` outside ``1..MAX_HOURS`` before anything is built."""
    if hours is not None and not 1 <= hours <= MAX_HOURS:
        raise errors.InputError(f"--hours {hours}: give 1 <= hours <= {MAX_HOURS} (ten leap years of hourly "
                                "periods; raise nodalopt.cli.MAX_HOURS for longer horizons).")


def _probe_writable(folder: Path, what: str) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nodalopt-probe-"):
            pass
    except OSError as exc:
        raise errors.InputError(f"{what}: cannot write in the folder {folder} ({exc.strerror or exc}); "
                                "choose a writable folder.") from None


def check_output_file(output: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Check before the solve that the result can be written to ``output``.

    Refused: an existing folder, a path whose folder is missing, is a file or is not
    writable, an existing non-regular file (a FIFO), and any path that is one of
    ``inputs`` or lies inside an input folder (the input would be overwritten).
    """
    o = Path(output)
    if o.is_dir():
        raise errors.InputError(f"-o {o}: is a folder; give the name of the netCDF file to write.")
    if o.exists() and not o.is_file():
        raise errors.InputError(f"-o {o}: exists and is not a regular file; give another name.")
    parent = o.parent if str(o.parent) else Path(".")
    if not parent.exists():
        anc = parent
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if anc.exists() and not anc.is_dir():
            raise errors.InputError(f"-o {o}: {anc} is a file, not a folder.")
        raise errors.InputError(f"-o {o}: the folder {parent} does not exist; create it first.")
    if not parent.is_dir():
        raise errors.InputError(f"-o {o}: {parent} is a file, not a folder.")
    target = o.resolve()
    for inp in inputs:
        ip = Path(inp)
        if not ip.exists():
            continue
        same = target == ip.resolve() or (o.exists() and os.path.samefile(o, ip))
        inside = ip.is_dir() and ip.resolve() in target.parents
        if same or inside:
            raise errors.InputError(f"-o {o}: {'is the input ' if same else 'lies inside the input folder '}"
                                    f"{ip}; writing there would overwrite or alter the input. Choose another "
                                    "output path.")
    _probe_writable(parent, f"-o {o}")
    return o


def write_result(ds: Any, output: str | os.PathLike[str]) -> None:
    """Write ``ds`` to ``output`` atomically: a ``.part`` file in the same folder, then a rename."""
    from . import to_netcdf

    o = Path(output)
    tmp = o.with_name(f".{o.name}.{os.getpid()}.part")
    try:
        to_netcdf(ds, str(tmp))
        os.replace(tmp, o)
    finally:
        tmp.unlink(missing_ok=True)


def _load(case: str) -> Any:
    """``load_case`` with parser failures that are not InputErrors turned into one naming the file."""
    from . import load_case

    try:
        return load_case(case)
    except errors.NodalOptError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError, KeyError, TypeError) as exc:
        raise errors.InputError(f"{case}: cannot read the case ({type(exc).__name__}: "
                                f"{_one_line(str(exc))[:300]}).") from None


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
    from .dcopf import DCOPF

    check_hours(args.hours)
    if args.scheduler is not None:
        from .batch import check_scheduler

        check_scheduler(args.scheduler)
    case_path = Path(args.case)
    if args.output:
        check_output_file(args.output, [case_path] if case_path.exists() else [])
    kw = dict(hours=args.hours, period_hours=args.period_hours, voll=args.voll, solver=args.solver,
              dc_model=args.dc_model, carbon_price=args.carbon_price, co2_cap=args.co2_cap,
              emission_factors=args.emission_factors)
    if case_path.is_dir():  # CSV network folder: its own snapshots and time series
        from .io.csv_folder import solve_csv_folder

        if args.explain:
            raise errors.InputError("--explain does not apply to CSV network folders yet; solve a pandapower, "
                                    "MATPOWER or JSON case.")
        ds = solve_csv_folder(args.case, **kw)
    else:
        net = _load(args.case)
        if args.feeders or args.method != "central":
            if args.explain:
                raise errors.InputError("--explain applies to transmission networks; feeder DLMP explanations "
                                        "are not implemented yet.")
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
        write_result(ds, args.output)
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

        st = ADMMSettings(progress=progress_enabled())
        return ADMM(td, st, executor="dask" if args.workers else "inprocess", workers=args.workers,
                    scheduler=args.scheduler, **kw).solve()
    from .distribution import TDOPF

    return TDOPF(td, **kw).solve()


def _checkout() -> Any:
    """The nodalopt checkout whose ``benchmarks/`` folder ``nodalopt bench`` runs, or None.

    An installed ``nodalopt`` script does not have the working directory on ``sys.path`` (only
    ``python -m`` does), so ``import benchmarks`` failed even inside a checkout.  Looked for: the
    working directory and its parents, then the folder above the imported package (an editable
    install); a checkout is a folder with ``benchmarks/__main__.py`` and a ``pyproject.toml`` that
    names the project nodalopt.
    """
    from pathlib import Path

    here = Path.cwd().resolve()
    for root in (here, *here.parents, Path(__file__).resolve().parents[1]):
        pyproject = root / "pyproject.toml"
        if (root / "benchmarks" / "__main__.py").is_file() and pyproject.is_file():
            try:
                named = 'name = "nodalopt"' in pyproject.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                named = False
            if named:
                return root
    return None


def _cmd_bench(args: argparse.Namespace) -> int:
    root = _checkout()
    if root is None:
        logger.error("the benchmark runner lives in the benchmarks/ folder of a nodalopt checkout; run "
                     "`nodalopt bench` inside one (git clone, then pip install -e .).")
        return EXIT_INPUT
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench_main

    return int(bench_main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nodalopt", description="Nodal electricity prices from power networks.")
    p.add_argument("--version", action="version", version=f"nodalopt {__version__}")
    _verbosity(p, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve one case and print a summary")
    _verbosity(s, argparse.SUPPRESS)
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
        _verbosity(sub.choices["batch"], argparse.SUPPRESS)
    from .distribution.single import register_cli as register_feeder_cli  # nodalopt feeder
    register_feeder_cli(sub)
    _verbosity(sub.choices["feeder"], argparse.SUPPRESS)
    return p


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(code: int, msg: str) -> int:
    print(f"error: {_one_line(msg)}", file=sys.stderr)
    return code


def _verbosity(p: argparse.ArgumentParser, default: Any) -> None:
    """``-v/--verbose`` and ``-q/--quiet`` (accepted before and after the subcommand)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="count", default=default,
                   help="log progress messages (-v: steps and timings, -vv: every solver call)")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="only errors: no warnings, no progress bars")


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    logger.warning("warning: %s", message)


def _configure_logging(verbose: int, quiet: bool) -> logging.Handler:
    """Log records of the ``nodalopt`` logger to stderr at the level the flags ask for."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose >= 2
                                           else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    set_progress(False if quiet else None)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring), never raises."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after 'bench' belongs to the benchmark runner
        return _cmd_bench(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    level = logger.level
    handler = _configure_logging(int(getattr(args, "verbose", 0) or 0), bool(getattr(args, "quiet", False)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            # warnings become log records of the nodalopt logger: shown by default, dropped by --quiet
            warnings.showwarning = _log_warning
            return int(args.func(args))
    except errors.InputError as exc:
        return _fail(EXIT_INPUT, str(exc))
    except (errors.InfeasibleError, errors.UnboundedError) as exc:
        return _fail(EXIT_INFEASIBLE, str(exc))
    except (errors.SolverError, errors.ConvergenceError) as exc:
        return _fail(EXIT_SOLVER, str(exc))
    except errors.NodalOptError as exc:
        return _fail(EXIT_SOLVER, f"{type(exc).__name__}: {exc}")
    except MemoryError:
        return _fail(EXIT_SOLVER, "out of memory; solve fewer hours or a smaller case, or add memory.")
    except OSError as exc:  # a file that vanished, a full disk, a refused connection, ...
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(EXIT_INPUT, f"{where}{exc.strerror or exc} ({type(exc).__name__}).")
    except KeyboardInterrupt:
        return _fail(130, "interrupted.")
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        if os.environ.get("NODALOPT_TRACEBACK"):
            import traceback

            traceback.print_exc()
        return _fail(EXIT_CASE_FAILED, f"unexpected {type(exc).__name__}: {exc} (a bug in nodalopt: please "
                                       "report it; NODALOPT_TRACEBACK=1 shows the traceback).")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        set_progress(None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
