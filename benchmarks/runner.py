"""Run the registry: one subprocess per (case, periods, tool), then compare and report."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .registry import Case, describe_profiles, fixup_docs
from .subproc import supervise

ROOT = Path(__file__).resolve().parents[1]
BIG = 2000  #: cases with more buses run peers once (they take seconds to minutes)


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _limit_memory(gb: float) -> Any:
    def f() -> None:
        if gb > 0:
            lim = int(gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    return f


def run_one(case: Case, T: int, tool: str, repeat: int, timeout: float, tmp: Path,
            mem_gb: float = 0.0) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    spec = {"case": case.name, "periods": T, "tool": tool, "repeat": repeat}
    prefix = tmp / f"{abs(hash((case.name, T, tool)))}"
    cmd = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec), str(prefix)]
    # memory: an address-space rlimit (the worker records the MemoryError), not an RSS kill
    run = supervise(cmd, prefix.with_suffix(".err"), limit_s=timeout, mem_mb=0.0, rss_mb=lambda pid: 0.0,
                    poll_s=0.05, preexec_fn=_limit_memory(mem_gb))
    timed_out, err, ru, wall = run.killed == "timeout", run.stderr, run.ru, run.wall_s
    js = prefix.with_suffix(".json")
    if timed_out:
        out: dict[str, Any] = {"ok": False, "status": f"timeout after {timeout:.0f} s"}
        lmp, bus = np.zeros((0, 0)), np.zeros(0)
    elif not js.is_file():
        out = {"ok": False, "status": f"worker died (exit {run.code}): {err.strip()[-300:]}"}
        lmp, bus = np.zeros((0, 0)), np.zeros(0)
    else:
        out = json.loads(js.read_text())
        z = np.load(prefix.with_suffix(".npz"))
        lmp, bus = z["lmp"], z["bus"]
        if "unique" in z.files:
            out["_unique"] = z["unique"]
    out.update(spec)
    out["process_peak_mb"] = ru.ru_maxrss / 1024  # Linux: kB
    out["process_wall_s"] = wall
    return out, lmp, bus


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
            unique: np.ndarray | None = None) -> dict[str, Any]:
    """max |LMP difference| over common buses and periods, and how many bus-periods differ by > 1e-3.

    ``unique`` (T, bus of ``a``): nodalopt's ``lmp_unique``; the ``*_unique`` entries
    restrict the comparison to prices nodalopt proves unique.
    """
    la, ba = a
    lb, bb = b
    if la.size == 0 or lb.size == 0:
        return {}
    common, ia, ib = np.intersect1d(ba, bb, return_indices=True)
    T = min(la.shape[0], lb.shape[0])
    d = np.abs(la[:T, ia] - lb[:T, ib])
    if not np.isfinite(d).all():
        return {"max_dlmp": float("nan"), "n_over_1e3": -1, "n_common": int(common.size)}
    k = np.unravel_index(int(d.argmax()), d.shape)
    out = {"max_dlmp": float(d.max()), "n_over_1e3": int((d > 1e-3).sum()), "n_common": int(common.size),
           "argmax_bus": int(common[k[1]]), "argmax_t": int(k[0])}
    if unique is not None and unique.shape == la.shape:
        u = unique[:T, ia]
        du = np.where(u, d, 0.0)
        out.update(max_dlmp_unique=float(du.max()), n_over_1e3_unique=int((du > 1e-3).sum()),
                   n_nonunique=int((~u).sum()))
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError):
        pass
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
               if ln.startswith("model name")]
        info["cpu"] = cpu[0] if cpu else ""
        mem = [ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")]
        info["mem_gib"] = round(float(mem[0].split()[1]) / 2**20, 1) if mem else None
    except OSError:
        pass
    vers = {}
    for p in ("nodalopt", "numpy", "scipy", "cvxpy", "clarabel", "pandapower", "pypsa", "linopy",
              "highspy", "xarray", "pandas"):
        try:
            vers[p] = md.version(p)
        except md.PackageNotFoundError:
            if p == "nodalopt":
                import nodalopt

                vers[p] = getattr(nodalopt, "__version__", "?")
            else:
                vers[p] = "not installed"
    info["versions"] = vers
    return info


def git_state() -> dict[str, Any]:
    """Commit of the working tree and the nodalopt files that differ from it (the tree is shared)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "subject": git("log", "-1", "--format=%s")[:120],
            "nodalopt_changes": [ln for ln in git("status", "--short", "nodalopt").splitlines() if ln]}


def run(cases: list[Case], quick: bool, out_dir: Path, repeat: int | None, timeout: float,
        argv: list[str], log: Any = print, tools: list[str] | None = None,
        mem_gb: float = 0.0, pglib_peer_max_buses: int = 3000) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    have_pypsa = _have("pypsa") and _have("highspy") and _have("linopy")
    rows: list[dict[str, Any]] = []
    git_start = git_state()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nodalopt-bench-") as td:
        tmp = Path(td)
        for case in cases:
            for T in case.periods:
                row: dict[str, Any] = {"case": case.name, "group": case.group, "periods": T,
                                       "buses": case.buses, "baseline_dc": case.baseline_dc,
                                       "fixups": [n for n, _ in fixup_docs(case)], "tools": {}}
                lmps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
                unique_mask = None
                case_tools = ["load", *case.tools] if case.group != "pglib" else list(case.tools)
                for tool in case_tools:
                    if tools and tool not in tools and tool != "load":
                        continue
                    if tool == "pandapower" and T > 1:
                        row["tools"][tool] = {"ok": False, "status": "n/a (single-period tool)"}
                        continue
                    if tool != "nodalopt" and case.group == "pglib" and case.buses > pglib_peer_max_buses:
                        row["tools"][tool] = {"ok": False, "status": f"skipped (> {pglib_peer_max_buses} buses)"}
                        continue
                    if tool == "pypsa" and not have_pypsa:
                        row["tools"][tool] = {"ok": False, "status": "n/a (pypsa not installed)"}
                        continue
                    big = case.buses > BIG or T > 1
                    k = repeat if repeat is not None else (1 if quick else (3 if tool == "nodalopt" or not big else 1))
                    if tool == "load":
                        k = 1
                    res, lmp, bus = run_one(case, T, tool, k, timeout, tmp, mem_gb)
                    uniq = res.pop("_unique", None)
                    if tool == "nodalopt":
                        unique_mask = uniq
                    row["tools"][tool] = res
                    if res.get("ok") and res.get("status") == "optimal" and tool != "load":
                        lmps[tool] = (lmp, bus)
                    msg = f"{res.get('total_s', float('nan')):.3f} s" if res.get("ok") else res.get("status")
                    log(f"  {case.name:<34} T={T:<3} {tool:<10} {msg}  "
                        f"[peak {res.get('peak_rss_mb', float('nan')):.0f} MB]")
                nd = row["tools"].get("nodalopt", {})
                for peer in ("pandapower", "pypsa"):
                    if "nodalopt" in lmps and peer in lmps:
                        c = compare(lmps["nodalopt"], lmps[peer], unique_mask)
                        pr = row["tools"][peer]
                        if nd.get("objective") and pr.get("objective") is not None:
                            c["obj_rel_diff"] = (pr["objective"] - nd["objective"]) / abs(nd["objective"])
                        if pr.get("total_s") and nd.get("total_s"):
                            c["speedup"] = pr["total_s"] / nd["total_s"]
                        row[f"vs_{peer}"] = c
                if case.baseline_dc and nd.get("ok"):
                    row["baseline_rel_diff"] = (nd["objective"] - case.baseline_dc) / case.baseline_dc
                rows.append(row)
    result = {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": "cd " + str(ROOT) + " && PYTHONPATH=. python -m benchmarks " + " ".join(
            shlex.quote(a) for a in argv),
        "quick": quick,
        "memory_limit_gb": mem_gb,
        "timeout_s": timeout,
        "pglib_peer_max_buses": pglib_peer_max_buses,
        "elapsed_s": time.perf_counter() - t_start,
        "machine": machine_info(),
        "git_start": git_start,
        "git_end": git_state(),
        "profiles": describe_profiles(),
        "fixups": {c.name: fixup_docs(c) for c in cases if c.fixups},
        "rows": rows,
        "runner_rusage_children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    (out_dir / "latest.json").write_text(json.dumps(result, indent=1, default=float))
    from .report import render

    (out_dir / "latest.md").write_text(render(result))
    return result
