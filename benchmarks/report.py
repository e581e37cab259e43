"""Markdown report of a benchmark run (``benchmarks/results/latest.md``)."""

from __future__ import annotations

import math
from typing import Any


def _f(x: Any, fmt: str = "{:.3f}", na: str = "–") -> str:
    if x is None:
        return na
    try:
        if isinstance(x, float) and not math.isfinite(x):
            return na
        return fmt.format(x)
    except (TypeError, ValueError):
        return str(x)


def _s(x: Any) -> str:
    """Seconds with sensible precision."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _tool(row: dict[str, Any], tool: str) -> dict[str, Any]:
    return row["tools"].get(tool, {})


def _total(row: dict[str, Any], tool: str) -> str:
    t = _tool(row, tool)
    if not t:
        return "–"
    if not t.get("ok"):
        st = str(t.get("status", "failed"))
        return st if len(st) < 40 else st[:37] + "..."
    if t.get("status") not in ("optimal", "loaded", None):
        return f"{t['status']} after {_s(t.get('total_s'))}"
    return _s(t.get("total_s"))


def _mem(row: dict[str, Any], tool: str) -> str:
    t = _tool(row, tool)
    if not t or "peak_rss_mb" not in t:
        return "–"
    return f"{t['peak_rss_mb']:.0f} (+{t.get('increment_mb', float('nan')):.0f})"


def _cmp(row: dict[str, Any], peer: str, key: str, fmt: str = "{:.2e}") -> str:
    c = row.get(f"vs_{peer}")
    if not c or key not in c:
        return "–"
    return _f(c[key], fmt)


def _dl(c: dict[str, Any] | None) -> str:
    """'all (n > 1e-3) / unique-only' max |dLMP|."""
    if not c or "max_dlmp" not in c:
        return "–"
    out = f"{c['max_dlmp']:.2e} ({c['n_over_1e3']})"
    if "max_dlmp_unique" in c:
        out += f" / {c['max_dlmp_unique']:.2e} ({c['n_over_1e3_unique']})"
    return out


def _yes(b: bool | None) -> str:
    return "–" if b is None else ("**met**" if b else "**not met**")


def targets(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    big = [r for r in rows if r["case"] == "case9241pegase_fixed" and r["periods"] == 1]
    if big:
        r = big[0]
        for peer, label in (("pandapower", "rundcopp"), ("pypsa", "PyPSA+HiGHS")):
            sp = (r.get(f"vs_{peer}") or {}).get("speedup")
            out.append(f"- case9241pegase_fixed (1 period): nodalopt vs {label}: "
                       f"{_f(sp, '{:.1f}×')} faster (target ≥ 20×): {_yes(None if sp is None else sp >= 20)}")
    if big and _tool(big[0], "nodalopt").get("ok"):
        t = _tool(big[0], "nodalopt")
        out.append(f"- case9241pegase_fixed (1 period): nodalopt overhead (total − solver) {_s(t['overhead_s'])} s vs "
                   f"solver {_s(t['solver_s'])} s (target: overhead ≤ solver time): "
                   f"{_yes(t['overhead_s'] <= t['solver_s'])}")
    main = [r for r in rows if r["group"] == "main" and _tool(r, "nodalopt").get("ok")]
    if main:
        ok = [r for r in main if _tool(r, "nodalopt")["overhead_s"] <= _tool(r, "nodalopt")["solver_s"]]

        def overhead_ratio(r: dict) -> float:
            t = _tool(r, "nodalopt")
            return t["overhead_s"] / max(t["solver_s"], 1e-9)

        worst = max(main, key=overhead_ratio)
        w = _tool(worst, "nodalopt")
        out.append(f"- all main runs (reported, the target is case9241pegase_fixed's): overhead ≤ solver time in "
                   f"{len(ok)} of {len(main)}; the largest ratio is {worst['case']} T={worst['periods']}, "
                   f"overhead {_s(w['overhead_s'])} s vs solver {_s(w['solver_s'])} s (on small cases the "
                   "fixed costs of compiling and building dominate)")
    rs = [r for r in rows if "resolve_s" in _tool(r, "nodalopt")]
    for r in rs:
        t = _tool(r, "nodalopt")
        ratio = t["total_s"] / t["resolve_s"]
        out.append(f"- re-solve with new profiles, {r['case']} T={r['periods']}: first (build + solve) "
                   f"{_s(t['total_s'])} s, second solve {_s(t['resolve_s'])} s = {ratio:.1f}× faster "
                   f"(target ≥ 3×): {_yes(ratio >= 3)}")
    pg = [r for r in rows if r["group"] == "pglib"]
    if pg:
        solved = [r for r in pg if _tool(r, "nodalopt").get("ok")]
        close = [r for r in solved if r.get("baseline_rel_diff") is not None and abs(r["baseline_rel_diff"]) <= 1e-4]
        out.append(f"- PGLib TYP: nodalopt solved {len(solved)} of {len(pg)}; objective within 1e-4 "
                   f"(baseline has 5 significant digits) of BASELINE.md's DC column: {len(close)} of "
                   f"{sum(r.get('baseline_rel_diff') is not None for r in solved)} with a baseline")
    return out


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    m = res["machine"]
    L: list[str] = []
    L.append("# nodalopt benchmark results\n")
    L.append(f"Created {res['created']}, run time {res['elapsed_s'] / 60:.1f} min"
             f"{' (--quick)' if res['quick'] else ''}.\n")
    L.append("Command:\n\n```\n" + res["command"] + "\n```\n")
    for key, label in (("git_start", "at the start"), ("git_end", "at the end")):
        g = res.get(key) or {}
        if g:
            ch = ", ".join(g.get("nodalopt_changes", [])) or "none"
            L.append(f"nodalopt source {label}: commit `{g.get('commit')}` ({g.get('subject')}); "
                     f"uncommitted changes under nodalopt/: {ch}.\n")
    v = m.get("versions", {})
    L.append(f"Machine: `nproc` = {m.get('nproc')}, {m.get('cpu', '?')}, {m.get('mem_gib', '?')} GiB RAM, "
             f"{m.get('platform')}, Python {m.get('python')}. Other jobs shared the machine.\n")
    L.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".\n")

    L.append("## Targets (reported, not asserted)\n")
    L += targets(rows)
    L.append("")

    main = [r for r in rows if r["group"] == "main"]
    if main:
        L.append("## Built-in pandapower cases: time (s), median of the repetitions\n")
        L.append("nodalopt *total* = network object to result Dataset (compile + cvxpy build + solve + "
                 "prices); *build* = compile + cvxpy problem build; *solver* = Clarabel's own time; "
                 "*overhead* = total − solver. pandapower = `rundcopp` (PYPOWER/PIPS); PyPSA = "
                 "network from the same arrays + linopy model + HiGHS + reading prices (no PyPSA "
                 "post-processing, see notes). Speed-up = peer total / nodalopt total.\n")
        L.append("| case | T | buses | binding branches | nodalopt total | build | solver | overhead | "
                 "rundcopp | PyPSA+HiGHS | speed-up vs rundcopp | speed-up vs PyPSA |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in main:
            n = _tool(r, "nodalopt")
            L.append(f"| {r['case']} | {r['periods']} | {n.get('n_bus', r['buses'])} | {n.get('n_binding', '–')} | "
                     f"{_total(r, 'nodalopt')} | {_s(n.get('build_s'))} | {_s(n.get('solver_s'))} | "
                     f"{_s(n.get('overhead_s'))} | {_total(r, 'pandapower')} | {_total(r, 'pypsa')} | "
                     f"{_cmp(r, 'pandapower', 'speedup', '{:.1f}×')} | {_cmp(r, 'pypsa', 'speedup', '{:.1f}×')} |")
        L.append("")
        L.append("## Built-in cases: agreement and memory\n")
        L.append("max |ΔLMP| in $/MWh over all buses and periods (bus-periods with |Δ| > 1e-3 in "
                 "brackets), then the same over the prices nodalopt reports unique (`lmp_unique`; "
                 "*non-unique* = bus-periods it flags as degenerate, where any value in an interval is "
                 "optimal); objective difference relative to nodalopt's. Peak RSS in MB during the "
                 "timed section (increment over the RSS before it in brackets); *load* = imports + "
                 "loading the case only.\n")
        L.append("| case | T | max ΔLMP vs rundcopp: all / unique | vs PyPSA: all / unique | non-unique | "
                 "Δobj rundcopp | Δobj PyPSA | LMP range | peak MB nodalopt | rundcopp | PyPSA | load |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in main:
            n = _tool(r, "nodalopt")

            def d(peer: str, r: dict[str, Any] = r) -> str:
                return _dl(r.get(f"vs_{peer}"))

            rng = f"{n['lmp_min']:.2f} … {n['lmp_max']:.2f}" if n.get("ok") else "–"
            L.append(f"| {r['case']} | {r['periods']} | {d('pandapower')} | {d('pypsa')} | "
                     f"{n.get('n_nonunique', '–')} | {_cmp(r, 'pandapower', 'obj_rel_diff')} | {_cmp(r, 'pypsa', 'obj_rel_diff')} | {rng} | "
                     f"{_mem(r, 'nodalopt')} | {_mem(r, 'pandapower')} | {_mem(r, 'pypsa')} | {_mem(r, 'load')} |")
        L.append("")
        L.append("Details of the PyPSA runs (s): network from arrays / linopy model / HiGHS solve / "
                 "solution + duals; compiling the arrays (nodalopt's compiler, not timed for PyPSA):\n")
        L.append("| case | T | network | model | HiGHS | solution | arrays (untimed) |")
        L.append("|---|---|---|---|---|---|---|")
        for r in main:
            p = _tool(r, "pypsa")
            if p.get("ok"):
                L.append(f"| {r['case']} | {r['periods']} | {_s(p['network_s'])} | {_s(p['model_s'])} | "
                         f"{_s(p['highs_s'])} | {_s(p['post_s'])} | {_s(p['arrays_s'])} |")
        L.append("")

    rs = [r for r in rows if "resolve_s" in _tool(r, "nodalopt")]
    if rs:
        L.append("## Re-solve with new profiles (`DCOPF.solve` a second time)\n")
        L.append("| case | T | first: build + solve (s) | of which build | second solve (s) | solver (2nd) | "
                 "ratio | storage throughput (MWh) | largest ramp (MW/h) |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            n = _tool(r, "nodalopt")
            L.append(f"| {r['case']} | {r['periods']} | {_s(n['total_s'])} | {_s(n['build_s'])} | "
                     f"{_s(n['resolve_s'])} | {_s(n.get('resolve_solver_s'))} | "
                     f"{n['total_s'] / n['resolve_s']:.1f}× | {_f(n.get('storage_cycled_mwh'), '{:.0f}')} | "
                     f"{_f(n.get('max_ramp_mw'), '{:.0f}')} |")
        L.append("")

    pg = [r for r in rows if r["group"] == "pglib"]
    if pg:
        L.append("## PGLib-OPF TYP cases (`dc_model=\"pglib\"`, single period)\n")
        L.append("Objective compared with BASELINE.md's DC column (PowerModels DCPPowerModel, 5 "
                 "significant digits). PyPSA solves the same arrays (symmetric angle-difference limits "
                 "become the equivalent flow limits). rundcopp is not run on PGLib (see notes).\n")
        L.append("| case | buses | nodalopt status | objective ($/h) | baseline | rel. diff | "
                 "nodalopt total (s) | solver (s) | PyPSA+HiGHS (s) | speed-up | "
                 "max ΔLMP vs PyPSA: all / unique | non-unique | Δobj PyPSA | peak MB nodalopt / PyPSA |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in pg:
            n = _tool(r, "nodalopt")
            st = n.get("status", "–") if n.get("ok") else f"**{str(n.get('status', 'failed'))[:60]}**"
            dl = _dl(r.get("vs_pypsa"))
            L.append(f"| {r['case'].replace('pglib_opf_', '')} | {r['buses']} | {st} | "
                     f"{_f(n.get('objective'), '{:.5e}')} | {_f(r.get('baseline_dc'), '{:.4e}')} | "
                     f"{_f(r.get('baseline_rel_diff'), '{:+.1e}')} | {_total(r, 'nodalopt')} | "
                     f"{_s(n.get('solver_s'))} | {_total(r, 'pypsa')} | {_cmp(r, 'pypsa', 'speedup', '{:.1f}×')} | "
                     f"{dl} | {n.get('n_nonunique', '–')} | {_cmp(r, 'pypsa', 'obj_rel_diff')} | {_mem(r, 'nodalopt')} / {_mem(r, 'pypsa')} |")
        L.append("")

    fails = [(r["case"], r["periods"], t, v.get("status")) for r in rows for t, v in r["tools"].items()
             if not v.get("ok") and not str(v.get("status", "")).startswith(("n/a", "skipped"))]
    fails += [(r["case"], r["periods"], t, v.get("status")) for r in rows for t, v in r["tools"].items()
              if v.get("ok") and v.get("status") not in ("optimal", "loaded")]
    if fails:
        L.append("## Failures and non-optimal runs\n")
        L.append("| case | T | tool | status |")
        L.append("|---|---|---|---|")
        for c, T, t, st in fails:
            L.append(f"| {c} | {T} | {t} | {str(st).replace('|', '/')[:200]} |")
        L.append("")

    L.append("## How the numbers were made\n")
    L.append("- Each (case, periods, tool) runs in its own Python process (`python -m benchmarks.worker`); "
             "imports and loading the case are not timed. nodalopt is repeated 3× and PyPSA/rundcopp 3× "
             "on cases up to 2,000 buses (1× above, and for 24 periods); the median total is reported "
             "(`--quick`: once).")
    L.append("- Memory: before each timed section the worker resets the kernel's peak-RSS counter "
             "(`echo 5 > /proc/self/clear_refs`) and reads `VmHWM` afterwards (peak RSS of the process "
             "during the timed section, resident imports and network included); the increment is that "
             "peak minus `VmRSS` before. `latest.json` also has the whole-process `ru_maxrss` "
             "(`os.wait4`) as `process_peak_mb`.")
    L.append(f"- Limits: each tool process gets an address-space limit (RLIMIT_AS) of "
             f"{res.get('memory_limit_gb', 0):g} GB (0 = none) and {res.get('timeout_s', 0):.0f} s; a run "
             "that exceeds them is recorded as failed. Each tool first solves a tiny case (pandapower "
             "case9, or PGLib case5_pjm) untimed, so one-time initialization is not timed. PyPSA runs on "
             f"PGLib cases up to {res.get('pglib_peer_max_buses', '?')} buses.")
    L.append("- Profiles: " + res["profiles"])
    L.append("- PyPSA: built from nodalopt's compiled arrays by `benchmarks/peers.py::pypsa_from_arrays` "
             "(PyPSA's `import_from_pandapower_net` loses costs, limits and taps, see PEER-NOTES). "
             "Timed without PyPSA's post-processing (`n.optimize.create_model` + `m.solve` + "
             "`assign_solution` + `assign_duals`, prices divided by the snapshot weighting as "
             "`post_processing` does): the skipped part only computes voltage angles through a dense "
             "pseudo-inverse of B (O(n³), 241–355 s on case9241pegase per PEER-NOTES).")
    L.append("- pegase sgens are uncontrollable in pandapower: rundcopp keeps them fixed, nodalopt and "
             "PyPSA treat them as zero-cost curtailable injections; identical unless their LMP goes "
             "negative (curtailment is recorded as `curtailment_mwh` in latest.json).")
    L.append("- rundcopp is not run on PGLib: pandapower's converter (`from_mpc`) drops angle limits and "
             "rates RATE_A = 0 transformers, and pandapower's DC model (b = 1/(x·tap), phase shifts) "
             "differs from the baseline's DCPPowerModel (b = x/(r²+x²)), so neither prices nor "
             "objectives would be comparable.")
    L.append("- Bus-periods with |ΔLMP| > 1e-3 while objectives agree to ~1e-8 indicate either solver "
             "tolerance (an interior-point solver's duals carry an error of order gap tolerance x "
             "objective scale; HiGHS runs with a 1e-6 primal feasibility tolerance, see peers.py) or "
             "non-unique prices (dual degeneracy: an interior-point solver lands mid-interval, "
             "an active-set/simplex solver at a vertex).")
    L.append("")
    if res.get("fixups"):
        L.append("## Fix-ups applied to the built-in networks\n")
        users: dict[str, list[str]] = {}
        text: dict[str, str] = {}
        for case, docs in res["fixups"].items():
            for name, doc in docs:
                users.setdefault(name, []).append(case)
                text[name] = doc
        for name, cases in users.items():
            L.append(f"- `{name}` ({', '.join(cases)}): {text[name]}")
        L.append("")
    return "\n".join(L) + "\n"
