"""T&D scale: case118_200mva + N copies of ``case33bw_der`` (with ``ev_fleet``), 24 hours, one model.

    python -m benchmarks.td_scale [--sizes 20,50,100,...] [--hours 24] [--limit-s 600] [--mem-limit-gb 14]

Every size runs in a fresh subprocess (so its peak RSS is its own, from ``os.wait4``), killed
after ``--limit-s`` seconds of wall time or when its resident memory passes ``--mem-limit-gb``.
Sizes run in the given order (default: 20, 50, 100, then doubling) and the search stops at the
first size that times out, runs out of memory or fails; the largest size that finished within
the limit is reported.  Writes ``benchmarks/results/td_scale.md`` and ``td_scale.json``.

Placement: feeder ``i`` hangs from the ``i mod 40``-th of the 40 transmission buses with the most
load.  It replaces its own load (4.015 MW incl. the shiftable load) of the bus's load
(``replace=True``) while the bus has that much load left; copies beyond that come on top of the
bus load (``replace=False``) and are counted in the ``on top`` column.

Each run is instrumented (methods of :class:`nodalopt.distribution.TDOPF` / ``DCOPF`` wrapped
in the child process only, the package is not changed) to split the time into cvxpy problem
construction, cvxpy compilation, Clarabel, AC branch-flow sweeps, collection and the result
Dataset.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.registry import TD_TRANSMISSION, load, td_feeder
from benchmarks.runner import git_state
from benchmarks.subproc import supervise

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
CASE = TD_TRANSMISSION
N_BUSES = 40
DEFAULT_SIZES = (20, 50, 100, 200, 400, 800, 1600, 3200, 6400)


# ---------------------------------------------------------------------------------------- child
def _instrument() -> dict[str, Any]:
    """Wrap the phases of TDOPF in this (child) process; returns the accumulating timer dict."""
    from nodalopt.dcopf.model import DCOPF
    from nodalopt.distribution.model import TDOPF

    tm: dict[str, Any] = {"cvxpy_build_s": 0.0, "n_build": 0, "run_s": 0.0, "compile_s": 0.0, "clarabel_s": 0.0,
                          "clarabel_iters": [], "ac_sweep_s": 0.0, "collect_s": 0.0, "result_s": 0.0,
                          "add_feeders_s": 0.0, "update_losses_s": 0.0}

    def timed(cls: type, name: str, key: str, after: Any = None) -> None:
        orig = getattr(cls, name)

        def f(self: Any, *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = orig(self, *a, **k)
            tm[key] += time.perf_counter() - t0
            if after is not None:
                after(self, a, out)
            return out

        setattr(cls, name, f)

    def after_build(self: Any, a: Any, out: Any) -> None:
        tm["n_build"] += 1

    def after_run(self: Any, a: Any, out: Any) -> None:
        p = a[0].problem
        tm["compile_s"] += float(p.compilation_time or 0.0)
        tm["clarabel_s"] += float(p.solver_stats.solve_time or 0.0)
        tm["clarabel_iters"].append(int(p.solver_stats.num_iters or 0))

    timed(DCOPF, "_build", "cvxpy_build_s", after_build)
    timed(DCOPF, "_run", "run_s", after_run)  # TDOPF._run calls super()._run
    timed(TDOPF, "_ac_at", "ac_sweep_s")
    timed(TDOPF, "_collect", "collect_s")
    timed(DCOPF, "_result", "result_s")
    timed(TDOPF, "_add_feeders", "add_feeders_s")
    timed(TDOPF, "_update_losses", "update_losses_s")
    return tm


def place(n: int) -> tuple[list[int], list[bool], float]:
    """(bus, replace) of each of ``n`` copies, round-robin over the 40 largest-load buses."""
    import numpy as np

    from nodalopt.distribution.td import TDNetwork

    tn = TDNetwork(load(CASE)).transmission
    bus_load = np.bincount(tn.load_node, weights=tn.load_p, minlength=tn.n_node)[tn.bus_node]
    order = np.argsort(-bus_load, kind="stable")[:N_BUSES]
    f = td_feeder()
    feeder_mw = float(f.load.p_mw.sum())  # fixed + shiftable load: what replace=True takes off the bus
    left = {int(tn.bus_ids[k]): float(bus_load[k]) for k in order}
    buses, repl = [], []
    for i in range(n):
        b = int(tn.bus_ids[order[i % N_BUSES]])
        ok = left[b] >= feeder_mw * (1 + 1e-6)
        if ok:
            left[b] -= feeder_mw
        buses.append(b)
        repl.append(ok)
    return buses, repl, feeder_mw


def child(n: int, hours: int, out: Path, dlmp: bool) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")
    res: dict[str, Any] = {"n_feeders": n}
    try:
        import numpy as np
        import xarray as xr

        from nodalopt.distribution import TDOPF, TDNetwork
        from nodalopt.distribution.examples import ev_fleet

        tm = _instrument()
        buses, repl, feeder_mw = place(n)
        t0 = time.perf_counter()
        td = TDNetwork(load(CASE))
        f, ev = td_feeder(), ev_fleet()
        for i in range(n):
            td.add_feeder(f"f{i}", f, at_bus=buses[i], evs=ev, replace=repl[i])
        t1 = time.perf_counter()
        m = TDOPF(td, hours=hours)
        t2 = time.perf_counter()
        ds = m.solve()
        t3 = time.perf_counter()
        p = m._built.problem
        sm = p.size_metrics
        fo = m.fo
        res.update(
            status=str(p.status), ok=True, feeder_mw=feeder_mw, n_on_top=int(n - sum(repl)),
            n_buses_used=len(set(buses)), dnodes=int(fo.n_node), dbranches=int(fo.n_branch),
            ders=int(ds.sizes.get("der", 0)), node_hours=int(fo.n_node * hours), hours=hours,
            n_variables=int(sum(v.size for v in p.variables())),
            n_constraint_rows=int(sum(c.size for c in p.constraints)),
            n_eq_rows=int(sm.num_scalar_eq_constr), n_leq_rows=int(sm.num_scalar_leq_constr),
            n_parameters=int(sum(q.size for q in p.parameters())),
            attach_s=t1 - t0, build_s=float(ds.attrs["build_s"]), init_s=t2 - t1, solve_s=float(ds.attrs["solve_s"]),
            solve_call_s=t3 - t2, total_s=float(ds.attrs["total_s"]),
            loss_iterations=int(ds.attrs["loss_iterations"]), loss_gap_mw=float(ds.attrs["loss_gap_mw"]),
            loss_gap_vm_pu=float(ds.attrs["loss_gap_vm_pu"]),
            solver_time_last_s=float(ds.attrs["solver_time_s"]),
            dlmp_residual=float(ds.attrs.get("dlmp_decomposition_residual", float("nan"))),
            objective=float(ds.attrs.get("objective", float("nan"))) if "objective" in ds.attrs else None,
            shed_mwh=float(ds["shed"].sum()) if "shed" in ds else None,
            phases=tm)
        if dlmp:
            d = ds.dlmp
            pos = {s: k for k, s in enumerate(ds.substation.values)}
            sub_bus = ds.substation_bus.values[[pos[f] for f in ds.feeder.values]]  # (dnode,)
            lmp_root = ds.lmp.sel(bus=xr.DataArray(sub_bus, dims="dnode")).transpose("time", "dnode").values
            diff = np.abs(d.values - lmp_root)
            res["dlmp"] = dict(
                min=float(d.min()), max=float(d.max()), mean=float(d.mean()),
                lmp_root_min=float(lmp_root.min()), lmp_root_max=float(lmp_root.max()),
                max_abs_dlmp_minus_lmp_root=float(diff.max()),
                max_abs_energy_component_check=float(np.abs(ds.dlmp_energy.values - lmp_root).max()),
                max_loss_component=float(np.abs(ds.dlmp_loss).max()),
                max_congestion_component=float(np.abs(ds.dlmp_congestion).max()),
                max_voltage_component=float(np.abs(ds.dlmp_voltage).max()),
                vm_min=float(ds.vm_pu.min()), vm_max=float(ds.vm_pu.max()))
    except MemoryError:
        res.update(ok=False, status="MemoryError")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        res.update(ok=False, status=f"{type(exc).__name__}: {str(exc)[:300]}", traceback=traceback.format_exc()[-2000:])
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(res, default=float))


# ---------------------------------------------------------------------------------------- parent
def _rss_mb(pid: int) -> float:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_size(n: int, hours: int, limit_s: float, mem_mb: float, dlmp: bool, tmp: Path) -> dict[str, Any]:
    js = tmp / f"n{n}.json"
    cmd = [sys.executable, "-m", "benchmarks.td_scale", "--child", str(n), "--hours", str(hours), "--json", str(js)]
    if dlmp:
        cmd.append("--dlmp")
    sv = supervise(cmd, tmp / f"n{n}.err", limit_s, mem_mb, _rss_mb, poll_s=0.2)
    killed, peak_poll, code, ru, wall, err = sv.killed, sv.peak_mb, sv.code, sv.ru, sv.wall_s, sv.stderr
    out: dict[str, Any] = {"n_feeders": n}
    if killed == "timeout":
        out.update(ok=False, status=f"timeout: killed after {limit_s:.0f} s wall")
    elif killed == "memory":
        out.update(ok=False, status=f"memory: killed at {peak_poll:.0f} MB RSS (limit {mem_mb:.0f} MB)")
    elif js.is_file():
        out.update(json.loads(js.read_text()))
        if out.get("status") == "MemoryError":
            out["status"] = "memory: MemoryError"
    else:
        why = "killed by SIGKILL (likely the OOM killer)" if code == -signal.SIGKILL else f"exit {code}"
        out.update(ok=False, status=f"memory: {why}" if code == -signal.SIGKILL else f"died ({why}): "
                   f"{err.strip()[-300:]}")
    out["process_wall_s"] = wall
    out["peak_rss_mb"] = ru.ru_maxrss / 1024  # Linux: kB, this child only
    out["peak_rss_polled_mb"] = peak_poll
    if out.get("ok") and wall > limit_s:
        out.update(ok=False, status=f"timeout: finished in {wall:.0f} s > {limit_s:.0f} s")
    return out


def _fmt_row(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return (f"| {r['n_feeders']} | | | | | | | | | | | | {r['peak_rss_mb']:.0f} | "
                f"{r['process_wall_s']:.0f} | **{r['status']}** |")
    ph = r["phases"]
    return (f"| {r['n_feeders']} | {r['n_on_top']} | {r['dnodes']:,} | {r['node_hours']:,} | {r['n_variables']:,} | "
            f"{r['n_constraint_rows']:,} | {r['attach_s']:.1f} | {r['init_s']:.2f} | {r['solve_s']:.1f} | "
            f"{r['total_s']:.1f} | "
            f"{r['loss_iterations']} | {r['loss_gap_mw']:.1e} | {r['peak_rss_mb']:.0f} | {r['process_wall_s']:.0f} | "
            f"{r['status']} (Clarabel iters {'/'.join(map(str, ph['clarabel_iters']))}) |")


def _phase_row(r: dict[str, Any]) -> str:
    ph = r["phases"]
    tot = r["total_s"]
    other_run = ph["run_s"] - ph["compile_s"] - ph["clarabel_s"]
    known = ph["cvxpy_build_s"] + ph["run_s"] + ph["ac_sweep_s"] + ph["collect_s"] + ph["result_s"] \
        + ph["add_feeders_s"]
    cells = [ph["cvxpy_build_s"], ph["compile_s"], ph["clarabel_s"], other_run, ph["ac_sweep_s"],
             ph["collect_s"], ph["result_s"] + ph["add_feeders_s"], tot - known]
    pct = lambda x: f"{x:.1f} ({100 * x / tot:.0f} %)"  # noqa: E731
    return f"| {r['n_feeders']} | {ph['n_build']} | " + " | ".join(pct(c) for c in cells) + f" | {tot:.1f} |"


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "td_scale.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1, default=float))
    ok = [r for r in rows if r.get("ok")]
    bad = [r for r in rows if not r.get("ok")]
    best = max(ok, key=lambda r: r["n_feeders"]) if ok else None
    L = [
        "# T&D scale: case118_200mva + N × case33bw_der, 24 h, one centralized model",
        "",
        f"Command: `{meta['command'].strip()}`  ",
        f"Date: {meta['date']}, git {meta['git']['commit']} ({meta['git']['subject']})"
        + (f", uncommitted changes in nodalopt: {', '.join(meta['git']['nodalopt_changes'])}"
           if meta["git"]["nodalopt_changes"] else "") + "  ",
        *([f"Git at the end of the search: {meta['git_end']['commit']} ({meta['git_end']['subject']})  "]
          if meta.get("git_end") and meta["git_end"]["commit"] != meta["git"]["commit"] else []),
        f"Machine: {meta['machine']}; **2 cores, shared** with other jobs (load average before the search "
        f"{meta['loadavg']}), so times are noisy (±20 % is plausible).  ",
        f"Limits per run: {meta['limit_s']:.0f} s wall (whole subprocess incl. imports), "
        f"{meta['mem_limit_mb']:.0f} MB RSS.",
        "",
        f"Model: `TDOPF(td, hours={meta['hours']})` = transmission DC-OPF of `{CASE}` + N copies of "
        "`nodalopt.distribution.examples.case33bw_der()` (33 nodes, 6 PV, 1 battery, 1 shiftable load) each "
        "with `ev_fleet()` (4 EVs), LinDistFlow with AC loss terms iterated until they settle. Feeder i at "
        f"the (i mod {N_BUSES})-th of the {N_BUSES} largest-load buses; `replace=True` while the bus has "
        f"{rows[0].get('feeder_mw', 4.015):.3f} MW of its own load left, otherwise `replace=False` "
        "(*on top* column: number of such copies).",
        "",
        "*attach* = `TDNetwork(case)` + N × `add_feeder(...)`, *build* = `TDOPF(...)` construction (forest + first "
        "cvxpy problem), *solve* = `solve_s` (all loss "
        "iterations: cvxpy compile + Clarabel), *total* = `total_s` (build + solve + loss-term rebuilds + AC "
        "sweeps + result Dataset), *wall* = whole subprocess (imports, network set-up). Variables / rows: "
        "scalar cvxpy variables / constraint rows of the final problem. Peak RSS from `os.wait4` of the run's "
        "own subprocess.",
        "",
        "| N feeders | on top | feeder nodes | node-hours | variables | constraint rows | attach (s) | build (s) | "
        "solve (s) | total (s) | loss iters | loss gap (MW) | peak RSS (MB) | wall (s) | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[_fmt_row(r) for r in rows],
        "",
    ]
    if best is not None:
        L.append(f"**Largest N within {meta['limit_s']:.0f} s: {best['n_feeders']} feeders** "
                 f"({best['dnodes']:,} feeder nodes, {best['node_hours']:,} node-hours, "
                 f"{best['n_variables']:,} variables) in {best['process_wall_s']:.0f} s wall, "
                 f"{best['peak_rss_mb']:.0f} MB peak RSS.")
    if bad:
        b = bad[0]
        L.append(f"First failure: N = {b['n_feeders']}: {b['status']}; the search stopped there.")
    elif meta.get("stopped"):
        L.append(meta["stopped"])
    L.append("")
    d = next((r["dlmp"] for r in rows if r.get("ok") and "dlmp" in r), None)
    if d is not None:
        L += [f"DLMPs at N = {rows[0]['n_feeders']}: min {d['min']:.2f}, max {d['max']:.2f}, mean {d['mean']:.2f} "
              f"$/MWh; LMP at the feeder roots {d['lmp_root_min']:.2f} … {d['lmp_root_max']:.2f} $/MWh; "
              f"max |DLMP − LMP_root| = {d['max_abs_dlmp_minus_lmp_root']:.2f} $/MWh (largest components: loss "
              f"{d['max_loss_component']:.2f}, congestion {d['max_congestion_component']:.2f}, voltage "
              f"{d['max_voltage_component']:.2f}); feeder voltages {d['vm_min']:.3f} … {d['vm_max']:.3f} pu.", ""]
    if ok:
        L += ["## Where the time goes (instrumented phases, seconds and share of `total_s`)", "",
              "*cvxpy build* = constructing the cvxpy expressions/constraints (`DCOPF._build`, once in "
              "`TDOPF(...)` and once per loss update); *compile* = cvxpy canonicalisation + matrix stuffing "
              "(`problem.compilation_time`; every solve recompiles because the loss update rebuilds the "
              "problem); *Clarabel* = the solver's own `solve_time` (includes its set-up: KKT assembly, "
              "equilibration, ordering); *solve other* = rest of `problem.solve` (cvxpy's hand-over to and from "
              "Clarabel: format conversion, unpacking primal/dual values); *AC sweep* = branch-flow power "
              "flows; *collect* = reading values and duals; *result* = xarray Dataset incl. DLMP decomposition; "
              "*rest* = everything else in `total_s`.", "",
              "| N | problems built | cvxpy build | compile | Clarabel | solve other | AC sweep | collect | "
              "result | rest | total |",
              "|---|---|---|---|---|---|---|---|---|---|---|",
              *[_phase_row(r) for r in ok], ""]
    if meta.get("notes"):
        L += ["## Notes", "", meta["notes"].strip(), ""]
    (out / "td_scale.md").write_text("\n".join(L))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="comma-separated feeder counts, run in order until one fails (default 20,50,100,200,...)")
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--limit-s", type=float, default=600.0, help="wall-clock limit per size (default 600 s)")
    ap.add_argument("--mem-limit-gb", type=float, default=14.0, help="kill a run above this RSS (0: no limit)")
    ap.add_argument("--out", default=str(OUT), help="output folder (default benchmarks/results)")
    ap.add_argument("--notes", default=None, help="file whose text goes under 'Notes' in the report")
    ap.add_argument("--rewrite", action="store_true",
                    help="only re-render td_scale.md from td_scale.json (e.g. with new --notes)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dlmp", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child is not None:
        child(a.child, a.hours, Path(a.json), a.dlmp)
        return 0
    out = Path(a.out)
    if a.rewrite:
        old = json.loads((out / "td_scale.json").read_text())
        if a.notes:
            old["meta"]["notes"] = Path(a.notes).read_text()
        write_report(old["runs"], old["meta"], out)
        print((out / "td_scale.md").read_text())
        return 0
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    meta: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.td_scale", *(sys.argv[1:] if argv is None else argv)]),
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "git": git_state(),
        "machine": f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU(s) visible",
        "loadavg": ", ".join(f"{x:.2f}" for x in os.getloadavg()), "hours": a.hours, "limit_s": a.limit_s,
        "mem_limit_mb": a.mem_limit_gb * 1024, "sizes": sizes,
        "notes": Path(a.notes).read_text() if a.notes else None}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nodalopt-tdscale-") as tmp:
        for k, n in enumerate(sizes):
            r = run_size(n, a.hours, a.limit_s, a.mem_limit_gb * 1024, dlmp=k == 0, tmp=Path(tmp))
            rows.append(r)
            msg = (f"N={n}: {r['status']} build {r['init_s']:.1f} s solve {r['solve_s']:.1f} s total "
                   f"{r['total_s']:.1f} s, {r['loss_iterations']} loss iters, gap {r['loss_gap_mw']:.1e} MW"
                   if r.get("ok") else f"N={n}: {r['status']}")
            print(f"{msg}, wall {r['process_wall_s']:.0f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
            write_report(rows, meta, out)  # keep a partial report if the search is interrupted
            if not r.get("ok"):
                break
        else:
            meta["stopped"] = f"All requested sizes ({a.sizes}) finished within the limit."
    meta["git_end"] = git_state()
    write_report(rows, meta, out)
    print((out / "td_scale.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
