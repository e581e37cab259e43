"""One (case, periods, tool) measurement, run in its own process by the runner.

``python -m benchmarks.worker SPEC_JSON OUT_PREFIX`` writes ``OUT_PREFIX.json``
(timings, objective, status, memory) and ``OUT_PREFIX.npz`` (``lmp`` (T, bus)
in $/MWh and ``bus`` ids).

Each tool first solves pandapower's case9 once, untimed (:func:`warm_up`).

Memory: before each timed repetition the worker runs ``gc.collect()``, reads
``VmRSS`` and resets the kernel's peak-RSS counter (``echo 5 >
/proc/self/clear_refs``); after it, ``VmHWM`` is the peak resident set of the
process *during the timed section* (imports and the loaded network included,
since they are resident).  ``increment`` = that peak minus the RSS before.
The runner also records the whole-process ``ru_maxrss`` from ``os.wait4``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _status_kb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


class _Mem:
    """Peak RSS of a code section via /proc/self/clear_refs (Linux); NaN elsewhere."""

    def __enter__(self) -> _Mem:
        gc.collect()
        self.before_mb = _status_kb("VmRSS") / 1024
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.ok = True
        except OSError:
            self.ok = False
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak_mb = _status_kb("VmHWM") / 1024 if self.ok else float("nan")


def _median_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    order = sorted(range(len(records)), key=lambda i: records[i]["total_s"])
    rec = dict(records[order[len(order) // 2]])
    rec["total_s_all"] = [r["total_s"] for r in records]
    rec["peak_rss_mb"] = max(r["peak_rss_mb"] for r in records)
    rec["increment_mb"] = max(r["increment_mb"] for r in records)
    return rec


def run_nodalopt(case: Any, T: int, repeat: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    import nodalopt
    from benchmarks.registry import load_shape, resolve_shape

    records = []
    ds = None
    for _ in range(repeat):
        net = case.load()
        prof = {("load", "p_mw"): load_shape(T)} if T > 1 else None
        with _Mem() as mem:
            t0 = time.perf_counter()
            model = nodalopt.DCOPF(net, hours=T, dc_model=case.dc_model)
            ds = model.solve(prof)
            total = time.perf_counter() - t0
        rec: dict[str, Any] = dict(
            total_s=total, build_s=model.build_s, compile_s=model.compile_s,
            solver_s=model.solver_time, solve_wall_s=float(ds.attrs["solve_s"]),
            overhead_s=total - model.solver_time, peak_rss_mb=mem.peak_mb,
            increment_mb=mem.peak_mb - mem.before_mb, rss_before_mb=mem.before_mb)
        if case.resolve:
            t1 = time.perf_counter()
            ds2 = model.solve({("load", "p_mw"): resolve_shape(T)})
            rec.update(resolve_s=time.perf_counter() - t1, resolve_solver_s=model.solver_time,
                       resolve_status=ds2.attrs["status"], resolve_objective=float(ds2.attrs["objective"]))
        records.append(rec)
        del model
    assert ds is not None
    out = _median_record(records)
    mu = np.abs(ds.branch_mu.values)
    out.update(status=ds.attrs["status"], objective=float(ds.attrs["objective"]),
               n_binding=int((mu > 1e-6).any(axis=0).sum()),
               n_bus=int(ds.sizes["bus"]), n_branch=int(ds.sizes["branch"]),
               curtailment_mwh=float(ds.curtailment.values.sum() * ds.attrs["period_hours"]),
               lmp_min=float(ds.lmp.min()), lmp_max=float(ds.lmp.max()))
    unique = ds["lmp_unique"].values.astype(bool) if "lmp_unique" in ds else np.ones(ds.lmp.shape, bool)
    out["n_nonunique"] = int((~unique).sum()) if "lmp_unique" in ds else -1
    if "soc_mwh" in ds:
        soc = ds.soc_mwh.values
        out["storage_cycled_mwh"] = float(np.abs(np.diff(soc, axis=0)).sum())
    if "p_gen" in ds and T > 1:
        out["max_ramp_mw"] = float(np.abs(np.diff(ds.p_gen.values, axis=0)).max())
    out["_unique"] = unique
    return out, ds.lmp.values, ds.bus.values


def run_pandapower(case: Any, T: int, repeat: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    from benchmarks.peers import pandapower_rundcopp

    if T != 1:
        raise ValueError("rundcopp is single-period")
    records = []
    lam = None
    net = None
    for _ in range(repeat):
        net = case.load()
        with _Mem() as mem:
            lam, secs = pandapower_rundcopp(net)
        records.append(dict(total_s=secs, peak_rss_mb=mem.peak_mb,
                            increment_mb=mem.peak_mb - mem.before_mb, rss_before_mb=mem.before_mb))
    assert lam is not None and net is not None
    out = _median_record(records)
    out.update(status="optimal" if net.OPF_converged else "not converged",
               objective=float(net.res_cost))
    bus = net.bus.index.to_numpy(np.int64)
    return out, lam.reindex(bus).to_numpy(float)[None, :], bus


def run_pypsa(case: Any, T: int, repeat: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    from benchmarks.peers import pypsa_from_arrays, pypsa_solve
    from benchmarks.registry import load_shape
    from nodalopt.network import compile_network

    records = []
    res = arr = None
    for _ in range(repeat):
        net = case.load()
        t = time.perf_counter()
        arr = compile_network(net, dc_model=case.dc_model)
        arrays_s = time.perf_counter() - t
        shape = load_shape(T)
        load = arr.load_p[:, None] * shape[None, :]
        pmin = np.repeat(arr.gen_pmin[:, None], T, axis=1)
        pmax = np.repeat(arr.gen_pmax[:, None], T, axis=1)
        with _Mem() as mem:
            t0 = time.perf_counter()
            n = pypsa_from_arrays(arr, load, pmin, pmax, 1.0)
            t1 = time.perf_counter()
            res = pypsa_solve(n, post_processing=False)
            lmp = res.lmp[:, arr.bus_node]
            total = time.perf_counter() - t0
        records.append(dict(total_s=total, network_s=t1 - t0, model_s=res.build_s,
                            highs_s=res.solve_s, post_s=res.post_s, arrays_s=arrays_s,
                            peak_rss_mb=mem.peak_mb, increment_mb=mem.peak_mb - mem.before_mb,
                            rss_before_mb=mem.before_mb, lmp=lmp))
        del n
    assert res is not None and arr is not None
    out = _median_record(records)
    lmp = out.pop("lmp")
    for r in records:
        r.pop("lmp", None)
    out.update(status="optimal" if (res.status == "ok" and res.condition == "optimal")
               else f"{res.status}/{res.condition}", objective=res.objective,
               post_processing=False)
    return out, lmp, arr.bus_ids


def run_load(case: Any, T: int, repeat: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Baseline: imports + loading the case, nothing solved."""
    import nodalopt  # noqa: F401

    with _Mem() as mem:
        t0 = time.perf_counter()
        case.load()
        total = time.perf_counter() - t0
    return (dict(total_s=total, status="loaded", peak_rss_mb=mem.peak_mb,
                 increment_mb=mem.peak_mb - mem.before_mb, rss_before_mb=mem.before_mb),
            np.zeros((0, 0)), np.zeros(0, np.int64))


def warm_up(tool: str, case: Any) -> None:
    """Solve a tiny case once, untimed, so one-time library initialization is not timed.

    pandapower's case9 for the built-in cases; PGLib's case5_pjm for PGLib cases
    (so their processes need not import pandapower).
    """
    from benchmarks.registry import WARMUP_CASE, WARMUP_PGLIB, load

    net: Any = load(WARMUP_PGLIB if case.group == "pglib" else WARMUP_CASE)
    if tool == "nodalopt":
        import nodalopt

        nodalopt.DCOPF(net, hours=2, dc_model=case.dc_model).solve({("load", "p_mw"): np.array([1.0, 0.9])})
    elif tool == "pandapower":
        from benchmarks.peers import pandapower_rundcopp

        pandapower_rundcopp(net)
    elif tool == "pypsa":
        from benchmarks.peers import pypsa_from_arrays, pypsa_solve
        from nodalopt.network import compile_network

        arr = compile_network(net, dc_model=case.dc_model)
        rep = lambda a: np.repeat(a[:, None], 2, 1)  # noqa: E731
        pypsa_solve(pypsa_from_arrays(arr, rep(arr.load_p), rep(arr.gen_pmin), rep(arr.gen_pmax)),
                    post_processing=False)


TOOLS = {"nodalopt": run_nodalopt, "pandapower": run_pandapower, "pypsa": run_pypsa, "load": run_load}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    prefix = Path(argv[1])
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    from benchmarks.registry import CASES

    case = CASES[spec["case"]]
    try:
        warm_up(spec["tool"], case)
        out, lmp, bus = TOOLS[spec["tool"]](case, int(spec["periods"]), int(spec["repeat"]))
        out["ok"] = True
    except NotImplementedError as exc:
        out, lmp, bus = {"ok": False, "status": f"not supported: {exc}"}, np.zeros((0, 0)), np.zeros(0)
    except Exception as exc:  # record the failure, do not crash the run
        out = {"ok": False, "status": f"{type(exc).__name__}: {str(exc)[:300]}",
               "traceback": traceback.format_exc()[-2000:]}
        lmp, bus = np.zeros((0, 0)), np.zeros(0)
    out.update(spec)
    unique = out.pop("_unique", np.ones(np.shape(lmp), bool))
    prefix.with_suffix(".json").write_text(json.dumps(out, default=float))
    np.savez(prefix.with_suffix(".npz"), lmp=lmp, bus=bus, unique=unique)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
