"""ADMM benchmarks: accuracy against the centralized T&D model, feeder QP kernel speed, scale, Dask.

    python -m benchmarks.admm_scale [--only NAME[,NAME...]] [--big N] [--huge N] [--dask-n N]
                                    [--limit-s 1800] [--mem-limit-gb 16]

Runs (each in a fresh subprocess; peak RSS from ``os.wait4`` plus the polled RSS of the whole
process tree, which includes Dask workers):

``accuracy_central``, ``accuracy_admm``
    case118_200mva + 100 feeders x 24 h: 90 ``case33bw_der()`` copies with ``ev_fleet()`` attached
    by ``spread_feeders`` and 10 copies of a DG variant (no battery, a 1 MW dispatchable DG at node 17)
    with ``vm_min_pu=0.93`` (binding voltage limit), centralized (:class:`TDOPF`) and by ADMM;
    the prices are compared at buses / feeder roots whose LMP is unique (``lmp_unique``) and separately
    at degenerate ones.
``kernel100``, ``kernel_huge``
    The feeder subproblems of an ADMM iteration (captured from a running ADMM at iteration
    ``--capture-iter``): numba ``factorize`` + ``solve`` of all of them (cold, and warm-started as
    in ADMM) against cvxpy + Clarabel one problem at a time on a sample (same QP data:
    ``feeder_qp.build_batch`` output via ``feeder_qp.as_scipy``), extrapolated to all problems.
``central_big``, ``admm_big``
    The ``benchmarks.td_scale`` model (case118_200mva + N x ``case33bw_der`` with ``ev_fleet``,
    ``spread_feeders``) at the largest N it solved centrally (``--big``, default read from
    ``benchmarks/results/td_scale.json``), centralized vs ADMM in-process, with a per-phase profile.
``admm_huge``
    The same model with ``--huge`` feeders (default 1600, where the centralized run of td_scale ran
    out of memory), ADMM only.
``admm_dask_ref``, ``dask1``, ``dask2``
    The same model with ``--dask-n`` feeders: ADMM in-process, and with ``executor="dask"`` on a
    local cluster (127.0.0.1) of 1 and 2 worker processes.

Results are merged into ``benchmarks/results/admm_scale.json`` (one entry per run, so ``--only``
re-runs just those) and the report ``admm_scale.md`` is rewritten from it.  Price arrays for the
comparisons are kept in ``$TMPDIR/nodalopt-admm-scale/*.npz``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
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

from benchmarks.registry import TD_TRANSMISSION as CASE
from benchmarks.registry import load
from benchmarks.runner import git_state
from benchmarks.subproc import supervise
from nodalopt.batch import tree_rss_mb

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
CACHE = Path(tempfile.gettempdir()) / "nodalopt-admm-scale"
#: the scale-out section (issue 15), appended to the report as written
SCALE_OUT = OUT / "admm_scale_out" / "section.md"
HOURS = 24
VBUSES = (58, 79, 115)  # buses of the DG / vm_min variant feeders
VMIN = 0.93
PRICE_TOL = 0.01  # $/MWh
OBJ_TOL = 1e-5
KERNEL_TARGET = 50.0
WALL_TARGET = 1 / 3


def run_specs(a: argparse.Namespace) -> dict[str, dict[str, Any]]:
    big = a.big or _td_scale_largest() or 400
    s = dict(max_iter=a.max_iter)
    fx = dict(fixed_iter=a.dask_iter) if a.dask_iter else {}
    huge = [int(x) for x in str(a.huge).split(",") if x.strip()]
    return {
        "accuracy_central": dict(kind="central", n=100, n_var=10, section="accuracy"),
        "accuracy_admm": dict(kind="admm", n=100, n_var=10, section="accuracy", **s),
        "kernel100": dict(kind="kernel", n=100, n_var=10, capture_iter=a.capture_iter, sample=a.sample, reps=3,
                          section="kernel"),
        "central_big": dict(kind="central", n=big, n_var=0, section="big"),
        "admm_big": dict(kind="admm", n=big, n_var=0, section="big", **s),
        **{f"admm_huge_{n}": dict(kind="admm", n=n, n_var=0, section="huge", limit_s=a.huge_limit_s, **s)
           for n in huge},
        "tcheck": dict(kind="tcheck", n=0, n_var=0, sizes=sorted({200, 400, 800, 1000, 1200, 1600, *huge}),
                       section="huge"),
        "kernel_huge": dict(kind="kernel", n=huge[0], n_var=0, capture_iter=a.capture_iter, sample=a.sample,
                            reps=2, section="kernel"),
        "dask1": dict(kind="admm", n=100, n_var=10, executor="dask", workers=1, section="dask", **s),
        "dask2": dict(kind="admm", n=100, n_var=10, executor="dask", workers=2, section="dask", **s),
        "inproc_n": dict(kind="admm", n=a.dask_n, n_var=0, section="dask", **fx, **s),
        "dask1_n": dict(kind="admm", n=a.dask_n, n_var=0, executor="dask", workers=1, section="dask", **fx, **s),
        "dask2_n": dict(kind="admm", n=a.dask_n, n_var=0, executor="dask", workers=2, section="dask", **fx, **s),
    }


def _td_scale_largest() -> int | None:
    try:
        runs = json.loads((OUT / "td_scale.json").read_text())["runs"]
        ok = [int(r["n_feeders"]) for r in runs if r.get("ok")]
        return max(ok) if ok else None
    except (OSError, ValueError, KeyError):
        return None


def _td_scale_run(n: int) -> dict[str, Any] | None:
    try:
        runs = json.loads((OUT / "td_scale.json").read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return None
    return next((r for r in runs if int(r.get("n_feeders", -1)) == n), None)


# ============================================================================ child: the model
def make_td(n: int, n_var: int) -> Any:
    """case118_200mva + (n - n_var) case33bw_der copies with EVs (spread_feeders) + n_var DG / vm_min copies."""
    import pandapower as pp

    from benchmarks.registry import td_feeder, td_network

    td = td_network(n - n_var)
    if n_var:
        g = td_feeder(battery=False)
        pp.create_sgen(g, 17, p_mw=0.0, min_p_mw=0.0, max_p_mw=1.0, controllable=True, name="DG 17")
        pp.create_poly_cost(g, len(g.sgen) - 1, "sgen", cp1_eur_per_mw=20.0, cp2_eur_per_mw2=30.0)
        for k in range(n_var):
            td.add_feeder(f"v{k}", g, at_bus=VBUSES[k % len(VBUSES)], vm_min_pu=VMIN, replace=False)
    return td


def _binding(ds: Any) -> list[dict[str, Any]]:
    import numpy as np

    from nodalopt.results import BINDING_MU

    mu = np.abs(ds.branch_mu.values)  # (time, branch)
    out = []
    for j in np.flatnonzero((mu > BINDING_MU).any(axis=0)):
        out.append(dict(branch=str(ds.branch.values[j]), hours=int((mu[:, j] > BINDING_MU).sum()),
                        max_mu=float(mu[:, j].max()), rating_mw=float(ds.rating.values[j]),
                        max_loading=float(ds.loading.values[:, j].max())))
    return out


def _feeder_stats(ds: Any) -> dict[str, Any]:
    import numpy as np

    fe = ds.feeder.values.astype(str)
    var = np.char.startswith(fe, "v")
    vm, dv = ds.vm_pu.values, np.abs(ds.dlmp_voltage.values)
    out = dict(dlmp_min=float(ds.dlmp.min()), dlmp_max=float(ds.dlmp.max()), vm_min=float(vm.min()),
               max_abs_dlmp_voltage=float(dv.max()), max_abs_dlmp_loss=float(np.abs(ds.dlmp_loss).max()))
    if var.any():
        out.update(vm_min_variant=float(vm[:, var].min()), max_abs_dlmp_voltage_variant=float(dv[:, var].max()),
                   node_hours_voltage_price=int((dv[:, var] > 1e-3).sum()))
    return out


def _save_prices(name: str, ds: Any) -> str:
    import numpy as np

    CACHE.mkdir(parents=True, exist_ok=True)
    pos = {s: k for k, s in enumerate(ds.substation.values)}
    sub_bus = ds.substation_bus.values[[pos[f] for f in ds.feeder.values]]
    path = CACHE / f"{name}.npz"
    np.savez(path, lmp=ds.lmp.values, lmp_unique=ds.lmp_unique.values, bus=ds.bus.values, dlmp=ds.dlmp.values,
             dlmp_voltage=ds.dlmp_voltage.values, dnode=ds.dnode.values.astype(str), dnode_bus=sub_bus,
             vm=ds.vm_pu.values, p_sub=ds.p_substation.values, objective=np.array(float(ds.attrs["objective"])))
    return str(path)


def _warmup() -> float:
    """Compile / load the numba kernels (and warm cvxpy) on a tiny T&D model; returns seconds."""
    from benchmarks.registry import WARMUP_CASE, td_feeder
    from nodalopt.admm.coordinator import ADMM, ADMMSettings
    from nodalopt.distribution import TDNetwork
    from nodalopt.distribution.examples import ev_fleet

    t0 = time.perf_counter()
    td = TDNetwork(load(WARMUP_CASE))
    td.add_feeder("w", td_feeder(), at_bus=4, evs=ev_fleet())
    ADMM(td, ADMMSettings(max_iter=3, return_unconverged=True), hours=HOURS).solve()
    return time.perf_counter() - t0


class _Timer:
    """Inclusive and exclusive (nested wrapped calls subtracted) seconds of wrapped methods."""

    def __init__(self) -> None:
        self.incl: dict[str, float] = {}
        self.excl: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.extra: dict[str, Any] = {"transmission_clarabel_s": 0.0, "transmission_compile_s": 0.0,
                                      "transmission_clarabel_iters": [], "qp_iters_mean": [], "qp_iters_max": []}
        self._stack: list[float] = []

    def wrap(self, cls: type, name: str, key: str, after: Any = None) -> None:
        orig = getattr(cls, name)
        tm = self

        def f(self_: Any, *a: Any, **k: Any) -> Any:
            tm._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                out = orig(self_, *a, **k)
            finally:
                el = time.perf_counter() - t0
                child = tm._stack.pop()
                if tm._stack:
                    tm._stack[-1] += el
                tm.incl[key] = tm.incl.get(key, 0.0) + el
                tm.excl[key] = tm.excl.get(key, 0.0) + el - child
                tm.calls[key] = tm.calls.get(key, 0) + 1
            if after is not None:
                after(self_, out)
            return out

        setattr(cls, name, f)


def _instrument_admm() -> _Timer:
    import numpy as np

    from nodalopt.admm import coordinator as C
    from nodalopt.admm import dask_exec as D

    tm = _Timer()

    def after_t(self: Any, out: Any) -> None:
        p = self.tsub._built.problem
        tm.extra["transmission_clarabel_s"] += float(p.solver_stats.solve_time or 0.0)
        tm.extra["transmission_compile_s"] += float(p.compilation_time or 0.0)
        tm.extra["transmission_clarabel_iters"].append(int(p.solver_stats.num_iters or 0))

    def after_f(self: Any, res: Any) -> None:
        tot = tm.incl["feeder_qp_solve"]
        tm.extra.setdefault("qp_call_s", []).append(tot - tm.extra.get("_qp_prev", 0.0))
        tm.extra["_qp_prev"] = tot
        full = self._exec.results() if self.executor_name == "inprocess" else []  # resident: no fetch for Dask
        if not full:
            return
        it = np.concatenate([r.iterations for r in full])
        tm.extra["qp_iters_mean"].append(float(it.mean()))
        tm.extra["qp_iters_max"].append(int(it.max()))

    def after_b(self: Any, out: Any) -> None:
        tm.extra.setdefault("feeder_builds_at_iteration", []).append(tm.calls.get("feeder_qp_solve", 0))

    tm.wrap(C.ADMM, "_solve_transmission", "transmission", after_t)
    tm.wrap(C._Transmission, "_run", "transmission_solve_call")
    tm.wrap(C.ADMM, "_solve_feeders", "feeder_qp_solve", after_f)
    tm.wrap(C.ADMM, "_build_feeders", "feeder_qp_build", after_b)
    tm.wrap(C.ADMM, "_set_target", "set_target")
    def after_fz(self: Any, out: Any) -> None:
        at = tm.extra.setdefault("factorized_at", [])
        i = tm.calls.get("feeder_qp_solve", 0)
        if not at or at[-1] != i:
            at.append(i)

    tm.wrap(C._InProcess, "install", "factorize", after_fz)
    tm.wrap(C._InProcess, "refactorize", "factorize", after_fz)
    tm.wrap(D.DaskExecutor, "install", "factorize", after_fz)
    tm.wrap(D.DaskExecutor, "__init__", "executor_start")
    tm.wrap(D.DaskExecutor, "close", "executor_close")
    tm.wrap(C.ADMM, "_ac_at", "ac_sweep")
    tm.wrap(C.ADMM, "_feeder_raw", "feeder_raw")
    tm.wrap(C.ADMM, "_imports", "bookkeeping")
    tm.wrap(C.ADMM, "_check_feeders", "bookkeeping")
    tm.wrap(C.ADMM, "_update_losses", "bookkeeping")
    tm.wrap(C._Transmission, "_result", "result")
    tm.wrap(C.ADMM, "_add_feeders", "result")
    tm.wrap(C.ADMM, "_objective", "result")
    return tm


def _phases(tm: _Timer) -> dict[str, Any]:
    import numpy as np

    e = tm.extra
    return dict(incl=dict(tm.incl), excl=dict(tm.excl), calls=dict(tm.calls),
                transmission_clarabel_s=e["transmission_clarabel_s"],
                transmission_compile_s=e["transmission_compile_s"],
                transmission_clarabel_iters_mean=float(np.mean(e["transmission_clarabel_iters"]))
                if e["transmission_clarabel_iters"] else None,
                qp_iters_mean=float(np.mean(e["qp_iters_mean"])) if e["qp_iters_mean"] else None,
                qp_iters_max=int(max(e["qp_iters_max"])) if e["qp_iters_max"] else None,
                feeder_builds_at_iteration=list(e.get("feeder_builds_at_iteration", [])),
                qp_calls=_qp_calls(e))


def _qp_calls(e: dict[str, Any]) -> dict[str, Any]:
    """Feeder QP time of cold solves (first after a (re)build), of the first solves after a rho change
    (refactorization with the initial OSQP step size, warm x, z, y) and of all other (warm) solves."""
    import numpy as np

    t = np.asarray(e.get("qp_call_s", []))
    if not t.size:
        return {}
    builds = sorted({i for i in e.get("feeder_builds_at_iteration", []) if i < t.size})
    refac = sorted({i for i in e.get("factorized_at", []) if i < t.size} - set(builds))
    cold, rf = np.zeros(t.size, bool), np.zeros(t.size, bool)
    cold[builds] = True
    rf[refac] = True
    warm = ~cold & ~rf
    its = np.asarray(e["qp_iters_max"])
    order = np.argsort(t)[::-1][:8]
    return dict(cold_calls=int(cold.sum()), cold_s=float(t[cold].sum()), cold_iters_max=its[cold].tolist(),
                rho_calls=int(rf.sum()), rho_s=float(t[rf].sum()), rho_iters_max=its[rf].tolist()[:40],
                warm_calls=int(warm.sum()), warm_s=float(t[warm].sum()),
                warm_mean_s=float(t[warm].mean()) if warm.any() else None,
                warm_median_s=float(np.median(t[warm])) if warm.any() else None,
                slowest=[dict(call=int(i) + 1, s=round(float(t[i]), 3), kind="cold" if cold[i] else "rho" if rf[i]
                              else "warm", iters_max=int(its[i])) for i in order])


def _history(ds: Any) -> dict[str, Any]:
    """Where the ADMM iterations go: rho changes, and when the price change first fell below 1e-2 .. 1e-4."""
    import numpy as np

    dp = ds.admm_max_price_change.values
    out: dict[str, Any] = {}
    for tol in (1.0, 1e-1, 1e-2, 1e-3, 1e-4):
        hit = np.flatnonzero(dp <= tol)
        out[f"first_dprice_le_{tol:g}"] = int(hit[0]) + 1 if hit.size else None
    rho = ds.admm_rho.values
    ch = np.flatnonzero(np.diff(rho) != 0) + 2
    out["rho_changes_at"] = ch.tolist()[:200]
    k = max(1, dp.size // 60)
    out["sample"] = dict(iteration=list(range(1, dp.size + 1, k)), primal=ds.admm_primal_residual.values[::k].tolist(),
                         dual=ds.admm_dual_residual.values[::k].tolist(), dprice=dp[::k].tolist(),
                         rho=rho[::k].tolist(), seconds=ds.admm_seconds.values[::k].tolist())
    return out


def child_central(spec: dict[str, Any], res: dict[str, Any]) -> None:
    from nodalopt.distribution import TDOPF

    t0 = time.perf_counter()
    td = make_td(spec["n"], spec["n_var"])
    t1 = time.perf_counter()
    m = TDOPF(td, hours=HOURS)
    t2 = time.perf_counter()
    ds = m.solve()
    t3 = time.perf_counter()
    p = m._built.problem
    res.update(ok=True, status=str(p.status), attach_s=t1 - t0, init_s=t2 - t1, solve_s=t3 - t2, time_s=t3 - t1,
               total_s_attr=float(ds.attrs["total_s"]), loss_iterations=int(ds.attrs["loss_iterations"]),
               objective=float(ds.attrs["objective"]), dnodes=int(m.fo.n_node),
               n_variables=int(sum(v.size for v in p.variables())),
               n_constraint_rows=int(sum(c.size for c in p.constraints)),
               binding=_binding(ds), feeders=_feeder_stats(ds),
               lmp_degenerate_points=int((~ds.lmp_unique.values).sum()), prices=_save_prices(spec["name"], ds))


def child_admm(spec: dict[str, Any], res: dict[str, Any], progress: Path) -> None:
    import numpy as np

    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    res["warmup_s"] = _warmup()
    tm = _instrument_admm()
    t0 = time.perf_counter()
    td = make_td(spec["n"], spec["n_var"])
    t1 = time.perf_counter()
    last = [time.perf_counter()]

    def report(it: int, admm: Any) -> None:  # progress file: what is known if the run is killed
        if time.perf_counter() - last[0] < 20.0:
            return
        last[0] = time.perf_counter()
        progress.write_text(json.dumps(dict(iteration=it, rho=admm.rho, elapsed_s=last[0] - t1,
                                            solve_elapsed_s=last[0] - t2, phases=_phases(tm)), default=float))

    fixed = spec.get("fixed_iter")
    st = ADMMSettings(max_iter=int(fixed or spec["max_iter"]), return_unconverged=bool(fixed), callback=report)
    if spec.get("qp"):  # what-if: other feeder QP settings
        import dataclasses

        st.qp = dataclasses.replace(st.qp, **spec["qp"])
    m = ADMM(td, st, executor=spec.get("executor", "inprocess"), workers=spec.get("workers"), hours=HOURS)
    t2 = time.perf_counter()
    res.update(attach_s=t1 - t0, init_s=t2 - t1, dnodes=int(m.fo.n_node),
               settings=dict(rho=st.rho, alpha=st.alpha, eps_abs=st.eps_abs, eps_rel=st.eps_rel,
                             price_tol=st.price_tol, max_iter=st.max_iter, qp_eps_abs=st.qp.eps_abs,
                             qp_eps_rel=st.qp.eps_rel, qp_max_iter=st.qp.max_iter,
                             qp_polish_interval=st.qp.polish_interval, fixed_iter=fixed))
    try:
        ds = m.solve()
    finally:
        res["solve_s"] = time.perf_counter() - t2
        res["phases"] = _phases(tm)
        res["iterations_done"] = tm.calls.get("feeder_qp_solve", 0)
    secs = ds.admm_seconds.values
    rho = ds.admm_rho.values
    conv = bool(ds.attrs["admm_converged"])
    res.update(ok=True, status="converged" if conv else f"stopped after {fixed} iterations (fixed)" if fixed
               else "not converged", converged=conv, time_s=res["init_s"] + res["solve_s"],
               iterations=int(ds.attrs["admm_iterations"]),
               loss_iterations=int(ds.attrs["loss_iterations"]), loss_gap_mw=float(ds.attrs["loss_gap_mw"]),
               total_s_attr=float(ds.attrs["total_s"]), loop_s=float(secs.sum()), s_per_iter_mean=float(secs.mean()),
               s_per_iter_median=float(np.median(secs)), rho_final=float(rho[-1]),
               rho_changes=int((np.diff(rho) != 0).sum()), primal_residual=float(ds.admm_primal_residual[-1]),
               dual_residual=float(ds.admm_dual_residual[-1]), objective=float(ds.attrs["objective"]),
               history=_history(ds), feeders=_feeder_stats(ds),
               lmp_degenerate_points=int((~ds.lmp_unique.values).sum()),
               transmission_vars=int(sum(v.size for v in m.tsub._built.problem.variables())),
               groups=[int(g.members.size) for g in m._groups])
    if conv:
        res["prices"] = _save_prices(spec["name"], ds)
    if spec.get("executor") == "dask":
        res["dask_cold_restarts"] = int(getattr(m._exec, "cold_restarts", 0))


def child_tcheck(spec: dict[str, Any], res: dict[str, Any]) -> None:
    """Is the transmission side feasible at these feeder counts?  case118_200mva DC-OPF, 24 h, with each
    feeder copy replaced by a fixed demand equal to its base load (same placement as ``spread_feeders``;
    replaced copies change nothing, copies on top add their load); PV, battery and EVs ignored."""
    import nodalopt

    from .td_scale import place

    rows = []
    for n in spec["sizes"]:
        buses, repl, mw = place(n)
        net = load(CASE)
        extra: dict[int, float] = {}
        for b, r in zip(buses, repl, strict=True):
            extra[b] = extra.get(b, 0.0) + (0.0 if r else mw)
        for b, e in extra.items():
            if e:
                k = len(net.load)
                net.load.loc[k] = net.load.iloc[0]
                net.load.loc[k, ["bus", "p_mw", "q_mvar", "name"]] = [b, e, 0.0, f"feeders on top {b}"]
        row: dict[str, Any] = dict(n=n, on_top_mw=sum(extra.values()), base_load_mw=float(net.load.p_mw.sum()))
        try:
            ds = nodalopt.solve(net, hours=HOURS)
            row.update(status=str(ds.attrs["status"]), lmp_max=float(ds.lmp.max()), feasible=True)
        except Exception as exc:  # noqa: BLE001 - the answer
            row.update(status=f"{type(exc).__name__}: {str(exc)[:240]}", feasible=False)
        rows.append(row)
    res.update(ok=True, status="ok", rows=rows)


class _Captured(Exception):
    pass


def _clarabel_one(b: Any, k: int, xref: Any) -> dict[str, Any]:
    """Problem k of batch b with cvxpy + Clarabel: build, first solve, re-solve (DPP, q a Parameter)."""
    import cvxpy as cp
    import numpy as np
    import scipy.sparse as sp

    from nodalopt.admm import feeder_qp as FQ

    P, A = FQ.as_scipy(b, k)
    q, lo, hi = b.q[k], b.l[k], b.u[k]
    t0 = time.perf_counter()
    Pf = (P + P.T - sp.diags(P.diagonal())).tocsc()
    A = A.tocsr()
    x = cp.Variable(P.shape[0])
    qp = cp.Parameter(P.shape[0], value=q)
    eq = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
    lw = ~eq & np.isfinite(lo)
    up = ~eq & np.isfinite(hi)
    cons = []
    if eq.any():
        cons.append(A[eq] @ x == lo[eq])
    if lw.any():
        cons.append(A[lw] @ x >= lo[lw])
    if up.any():
        cons.append(A[up] @ x <= hi[up])
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(Pf)) + qp @ x), cons)
    t1 = time.perf_counter()
    prob.solve(solver=cp.CLARABEL)
    t2 = time.perf_counter()
    first_clar = float(prob.solver_stats.solve_time or 0.0)
    prob.solve(solver=cp.CLARABEL)  # what a cvxpy ADMM would pay per iteration: compiled once, q changes
    t3 = time.perf_counter()
    obj_ref = float(0.5 * xref @ (Pf @ xref) + q @ xref)
    return dict(status=str(prob.status), build_s=t1 - t0, first_solve_s=t2 - t1, resolve_s=t3 - t2,
                clarabel_s=float(prob.solver_stats.solve_time or 0.0), clarabel_first_s=first_clar,
                clarabel_iters=int(prob.solver_stats.num_iters or 0), n=int(P.shape[0]), m=int(A.shape[0]),
                obj_rel_diff=abs(float(prob.value) - obj_ref) / max(1.0, abs(obj_ref)),
                max_abs_dx=float(np.abs(x.value - xref).max()))


def child_kernel(spec: dict[str, Any], res: dict[str, Any]) -> None:

    import numba
    import numpy as np

    from nodalopt.admm.coordinator import ADMM, ADMMSettings
    from nodalopt.admm.qp import factorize, solve

    res["warmup_s"] = _warmup()
    res["numba_threads"] = int(numba.get_num_threads())
    td = make_td(spec["n"], spec["n_var"])
    m = ADMM(td, ADMMSettings(max_iter=spec["capture_iter"] + 10), hours=HOURS)
    cap: dict[str, Any] = {"calls": 0}
    orig = m._solve_feeders

    def capture() -> Any:
        cap["calls"] += 1
        if cap["calls"] < spec["capture_iter"]:
            return orig()
        chunks = [m._exec._chunks[k] for k in sorted(m._exec._chunks)]  # in-process: one resident chunk per batch
        cap.update(batches=copy.deepcopy([c.b for c in chunks]), factors=copy.deepcopy([c.f for c in chunks]),
                   warm=copy.deepcopy([c.warm for c in chunks]), groups=m._groups)
        t = time.perf_counter()
        orig()
        cap["in_admm_s"] = time.perf_counter() - t
        cap["res"] = m._exec.results()
        raise _Captured

    m._solve_feeders = capture  # type: ignore[method-assign]
    t0 = time.perf_counter()
    try:
        m.solve()
    except _Captured:
        pass
    res["admm_to_capture_s"] = time.perf_counter() - t0
    if "batches" not in cap:
        raise RuntimeError(f"ADMM ended before iteration {spec['capture_iter']}")
    st = m.settings.qp
    B, G, W = cap["batches"], cap["groups"], cap["warm"]
    res.update(capture_iter=spec["capture_iter"], warm_start_available=all(w is not None for w in W),
               in_admm_solve_s=cap["in_admm_s"], qp_settings=dict(eps_abs=st.eps_abs, eps_rel=st.eps_rel,
                                                                 scaling=st.scaling, max_iter=st.max_iter),
               groups=[dict(K=int(g.members.size), n=int(b.pattern.n), m=int(b.pattern.m),
                            nnz_A=int(b.pattern.nnz_A), nnz_P=int(b.pattern.nnz_P)) for g, b in zip(G, B, strict=True)])
    K = sum(g.members.size for g in G)
    reps = int(spec["reps"])
    tf, tc, tw = [], [], []
    rc = rw = None
    for _ in range(reps):
        t = time.perf_counter()
        fs = [factorize(b, st) for b in B]
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        rc = [solve(b, f, st) for b, f in zip(B, fs, strict=True)]
        tc.append(time.perf_counter() - t)
        del fs
        fw = copy.deepcopy(cap["factors"])
        t = time.perf_counter()
        rw = [solve(b, f, st, warm_start=w) for b, f, w in zip(B, fw, W, strict=True)]
        tw.append(time.perf_counter() - t)
        del fw
    assert rc is not None and rw is not None

    def its(rs: list[Any]) -> dict[str, Any]:
        i = np.concatenate([r.iterations for r in rs])
        s = np.concatenate([r.status for r in rs])
        pol = np.concatenate([r.polished for r in rs])
        return dict(iters_mean=float(i.mean()), iters_max=int(i.max()), solved=int((s == 1).sum()), K=int(s.size),
                    polished=int((pol == 1).sum()),
                    polish_attempts_mean=float(np.concatenate([r.polish_attempts for r in rs]).mean()),
                    refactorizations_mean=float(np.concatenate([r.refactorizations for r in rs]).mean()))

    same = max(float(np.abs(a.x - b.x).max()) for a, b in zip(rw, cap["res"], strict=True))
    nt = numba.get_num_threads()
    numba.set_num_threads(1)  # one core, as Clarabel
    fw = copy.deepcopy(cap["factors"])
    t = time.perf_counter()
    [solve(b, f, st, warm_start=w) for b, f, w in zip(B, fw, W, strict=True)]
    res["warm_solve_1thread_s"] = time.perf_counter() - t
    numba.set_num_threads(nt)
    del fw
    res.update(K=int(K), factorize_s=min(tf), factorize_all_s=tf, cold_solve_s=min(tc), cold_all_s=tc,
               warm_solve_s=min(tw), warm_all_s=tw, cold=its(rc), warm=its(rw), warm_vs_in_admm_max_dx=same)
    # ---- cvxpy + Clarabel, one problem at a time, on a sample spread over the groups
    ns = int(spec["sample"])
    per_group = [max(1, round(ns * g.members.size / K)) for g in G]
    samples, ext = [], dict(build_s=0.0, first_solve_s=0.0, resolve_s=0.0, clarabel_s=0.0)
    for gi, (g, b, r, cnt) in enumerate(zip(G, B, rw, per_group, strict=True)):
        ks = np.unique(np.linspace(0, g.members.size - 1, cnt).round().astype(int))
        rows = []
        for k in ks:
            d = _clarabel_one(b, int(k), r.x[k])
            d.update(group=gi, k=int(k))
            rows.append(d)
            samples.append(d)
        for key in ext:  # extrapolate: group size x mean of its sample
            ext[key] += g.members.size * float(np.mean([d[key] for d in rows]))
    res.update(clarabel_samples=samples, clarabel_extrapolated=ext, clarabel_sampled=len(samples),
               speedup_warm_vs_resolve=ext["resolve_s"] / min(tw),
               speedup_warm_1thread_vs_clarabel_only=ext["clarabel_s"] / res["warm_solve_1thread_s"],
               speedup_warm_vs_clarabel_only=ext["clarabel_s"] / min(tw),
               speedup_cold_vs_first=(ext["build_s"] + ext["first_solve_s"]) / (min(tf) + min(tc)),
               speedup_cold_vs_clarabel_only=ext["clarabel_s"] / (min(tf) + min(tc)),
               clarabel_max_obj_rel_diff=max(d["obj_rel_diff"] for d in samples),
               clarabel_max_abs_dx=max(d["max_abs_dx"] for d in samples), ok=True, status="ok")


def child(name: str, spec: dict[str, Any], out: Path) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")
    spec = dict(spec, name=name)
    res: dict[str, Any] = {"name": name, "spec": spec, "ok": False}
    try:
        if spec["kind"] == "admm":
            child_admm(spec, res, out.with_suffix(".progress"))
        else:
            {"central": child_central, "kernel": child_kernel, "tcheck": child_tcheck}[spec["kind"]](spec, res)
    except MemoryError:
        res.update(ok=False, status="memory: MemoryError")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        res.update(ok=False, status=f"{type(exc).__name__}: {str(exc)[:600]}", traceback=traceback.format_exc()[-3000:])
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(res, default=float))


# ============================================================================ parent
def run_one(name: str, spec: dict[str, Any], limit_s: float, mem_mb: float, tmp: Path) -> dict[str, Any]:
    js = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "benchmarks.admm_scale", "--child", name, "--spec", json.dumps(spec),
           "--json", str(js)]
    load0 = os.getloadavg()
    sv = supervise(cmd, tmp / f"{name}.err", limit_s, mem_mb, tree_rss_mb, poll_s=0.25, own_session=True)
    killed, peak_tree, code, ru, wall, err = sv.killed, sv.peak_mb, sv.code, sv.ru, sv.wall_s, sv.stderr
    out: dict[str, Any] = {"name": name, "spec": spec}
    if killed == "timeout":
        out.update(ok=False, status=f"timeout: killed after {limit_s:.0f} s wall")
    elif killed == "memory":
        out.update(ok=False, status=f"memory: killed at {peak_tree:.0f} MB RSS (limit {mem_mb:.0f} MB)")
    elif js.is_file():
        out.update(json.loads(js.read_text()))
    else:
        why = "killed by SIGKILL (likely the OOM killer)" if code == -signal.SIGKILL else f"exit {code}"
        out.update(ok=False, status=f"died ({why}): {err.strip()[-400:]}")
    prog = js.with_suffix(".progress")
    if not out.get("ok") and prog.is_file() and "phases" not in out:
        out["progress"] = json.loads(prog.read_text())  # the last progress report of the killed run
    out.update(process_wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, peak_rss_mb=ru.ru_maxrss / 1024,
               peak_tree_rss_mb=peak_tree,
               loadavg_before=list(load0), loadavg_after=list(os.getloadavg()),
               date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), git=git_state(), admm_md5=admm_md5())
    return out


def compare(c_name: str, a_name: str) -> dict[str, Any] | None:
    """Centralized vs ADMM prices from the runs' .npz files."""
    import numpy as np

    pc, pa = CACHE / f"{c_name}.npz", CACHE / f"{a_name}.npz"
    if not (pc.is_file() and pa.is_file()):
        return None
    c, a = dict(np.load(pc)), dict(np.load(pa))
    if c["dnode"].shape != a["dnode"].shape or not (c["dnode"] == a["dnode"]).all() or \
            not (c["bus"] == a["bus"]).all():
        return {"error": "the two runs have different buses / feeder nodes"}
    uni = c["lmp_unique"] & a["lmp_unique"]  # (time, bus)
    e = np.abs(a["lmp"] - c["lmp"])
    bpos = {int(b): k for k, b in enumerate(c["bus"])}
    root = np.array([bpos[int(b)] for b in c["dnode_bus"]])
    du = uni[:, root]  # (time, dnode): the feeder's root price is unique
    ed = np.abs(a["dlmp"] - c["dlmp"])
    i = np.unravel_index(int(e.argmax()), e.shape)

    def mx(x: Any, mask: Any) -> float | None:
        return float(x[mask].max()) if mask.any() else None

    co, ao = float(c["objective"]), float(a["objective"])
    return dict(
        lmp_max_all=float(e.max()), lmp_max_unique=mx(e, uni), lmp_max_degenerate=mx(e, ~uni),
        lmp_degenerate_points=int((~uni).sum()), lmp_points=int(uni.size),
        lmp_degenerate_buses=sorted({int(c["bus"][j]) for j in np.flatnonzero((~uni).any(axis=0))}),
        lmp_worst=dict(hour=int(i[0]), bus=int(c["bus"][i[1]]), err=float(e[i]),
                       unique_central=bool(c["lmp_unique"][i]), unique_admm=bool(a["lmp_unique"][i])),
        dlmp_max_all=float(ed.max()), dlmp_max_unique_root=mx(ed, du), dlmp_max_degenerate_root=mx(ed, ~du),
        dlmp_points=int(ed.size), dlmp_degenerate_root_points=int((~du).sum()),
        dlmp_voltage_max=float(np.abs(a["dlmp_voltage"] - c["dlmp_voltage"]).max()),
        vm_max=float(np.abs(a["vm"] - c["vm"]).max()), p_sub_max_mw=float(np.abs(a["p_sub"] - c["p_sub"]).max()),
        objective_central=co, objective_admm=ao, objective_rel=abs(ao - co) / abs(co))


def admm_md5() -> dict[str, str]:
    d = ROOT / "nodalopt" / "admm"
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest()[:10] for p in sorted(d.glob("*.py"))}


# ============================================================================ report
def _f(x: Any, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float):
        return format(x, fmt)
    return str(x)


def _run_line(r: dict[str, Any]) -> str:
    sp = r["spec"]
    model = f"{sp['n']} feeders" if sp["kind"] != "tcheck" else f"transmission only, N = {sp['sizes']}"
    if sp["n_var"]:
        model += f" ({sp['n'] - sp['n_var']} der+EV, {sp['n_var']} DG/vm_min)"
    ex = sp.get("executor", "")
    if ex == "dask":
        ex = f"dask, {sp['workers']} worker(s)"
    la = ", ".join(f"{x:.2f}" for x in r["loadavg_before"])
    return (f"| `{r['name']}` | {sp['kind']}{' (' + ex + ')' if ex else ''} | {model} | {_f(r.get('dnodes'))} | "
            f"{r['process_wall_s']:.0f} | {_f(r.get('cpu_s'), '.0f')} | {_f(r['peak_rss_mb'], '.0f')} / "
            f"{r['peak_tree_rss_mb']:.0f} | {la} | {r['date']} "
            f"| {r['git']['commit']} | {'ok' if r.get('ok') else '**' + r['status'][:200] + '**'} |")


def _phase_table(r: dict[str, Any]) -> list[str]:
    """Per-phase table of an ADMM run (or of the last progress report of a killed one)."""
    ph = r.get("phases") or (r.get("progress") or {}).get("phases") or {}
    if not ph:
        return []
    ex, calls = ph.get("excl", {}), ph.get("calls", {})
    tot = r.get("solve_s") or (r.get("progress") or {}).get("solve_elapsed_s") or 1.0
    it = max(1, calls.get("feeder_qp_solve", 1))
    rows = [("transmission: `problem.solve` (cvxpy + Clarabel)", "transmission_solve_call"),
            ("transmission: set parameters, read values / duals", "transmission"),
            ("feeder QP solves (`qp.solve`, all feeders)", "feeder_qp_solve"),
            ("feeder QP build (`feeder_qp.build_batch`)", "feeder_qp_build"),
            ("feeder KKT factorizations (`qp.factorize`)", "factorize"),
            ("ADMM target update", "set_target"), ("AC branch-flow sweeps", "ac_sweep"),
            ("feeder solution / duals collection", "feeder_raw"), ("imports, checks, loss terms", "bookkeeping"),
            ("result Dataset + objective", "result"), ("Dask cluster start / close", "executor_start")]
    known = sum(ex.values())
    L = ["| phase | calls | seconds | per iteration (s) | share of solve |", "|---|---|---|---|---|"]
    for label, key in rows:
        v = ex.get(key, 0.0) + (ex.get("executor_close", 0.0) if key == "executor_start" else 0.0)
        if key not in ex:
            continue
        L.append(f"| {label} | {calls.get(key, 0)} | {v:.2f} | {v / it:.4f} | {100 * v / tot:.0f} % |")
    rest = tot - known
    L.append(f"| rest (ADMM vector arithmetic, residuals, rho balancing) | | {rest:.2f} | {rest / it:.4f} | "
             f"{100 * rest / tot:.0f} % |")
    L.append(f"| **ADMM.solve() total** ({it} iterations) | | **{tot:.2f}** | {tot / it:.4f} | 100 % |")
    L.append("")
    if calls.get("transmission"):
        n = calls["transmission"]
        sc = ex.get("transmission_solve_call", 0.0)
        ci = _f(ph.get("transmission_clarabel_iters_mean"), ".1f")
        L.append(f"Transmission: {1e3 * sc / n:.0f} ms per `problem.solve` ({ci} "
                 f"Clarabel iterations on average; cvxpy `compilation_time` {ph['transmission_compile_s']:.1f} s in "
                 f"total; Clarabel's self-reported `solve_time` sums to {ph['transmission_clarabel_s']:.1f} s, which "
                 "can exceed the measured wall time under CPU contention, so the wall time is what is shown). "
                 f"Feeder QPs: {_f(ph.get('qp_iters_mean'), '.1f')} OSQP iterations per problem and ADMM iteration on "
                 f"average, max {_f(ph.get('qp_iters_max'))}.")
        qc = ph.get("qp_calls") or {}
        if qc:
            slow = ", ".join(f"{d['s']:.2f} s ({d['kind']}, {d['iters_max']} it.)" for d in qc["slowest"][:5])
            L[-1] += (f" Feeder QP time by kind of solve: {qc['cold_calls']} cold starts (first solve after each "
                      f"(re)build, max OSQP iterations {qc['cold_iters_max']}) {qc['cold_s']:.1f} s; "
                      f"{qc.get('rho_calls', 0)} first solves after an ADMM rho change (KKT refactorized, OSQP step "
                      f"size reset; warm x, z, y) {qc.get('rho_s', 0):.1f} s; {qc.get('warm_calls', '')} other warm "
                      f"solves {qc['warm_s']:.1f} s (mean {_f(qc['warm_mean_s'], '.3f')} s, median "
                      f"{_f(qc['warm_median_s'], '.3f')} s). Slowest: {slow}.")
        L.append("")
    h = r.get("history")
    if h:
        tols = ", ".join(f"≤ {t} at {h.get(f'first_dprice_le_{t}')}" for t in ("1", "0.1", "0.01", "0.001", "0.0001"))
        L.append(f"Iterations: feeder QPs (re)built at iterations {ph.get('feeder_builds_at_iteration')} (initial "
                 f"+ AC loss-term updates, each followed by cold QP starts); rho changed {len(h['rho_changes_at'])} "
                 f"times; the largest substation price change between iterations first fell {tols} ($/MWh).")
        L.append("")
    return L


def _admm_line(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"| `{r['name']}` | {r['spec']['n']} | **{r['status'][:300]}** | | | | | | | |"
    return (f"| `{r['name']}` | {r['spec']['n']} | {r['status']} | {r['iterations']} | {r['loss_iterations']} | "
            f"{r['s_per_iter_mean']:.3f} | {r['init_s']:.1f} | {r['solve_s']:.1f} | {r['time_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |")


def _summary(runs: dict[str, Any], cmp_: dict[str, Any]) -> list[str]:
    """Targets: met or not, from whatever runs are present."""
    def yes(ok: bool) -> str:
        return "met" if ok else "**not met**"

    L = ["## Targets", "", "| # | target | result | status |", "|---|---|---|---|"]
    ca = cmp_.get("accuracy")
    if ca and "error" not in ca:
        d, lm, ob = ca["dlmp_max_unique_root"] or 0.0, ca["lmp_max_unique"] or 0.0, ca["objective_rel"]
        L.append(f"| 1 | max \\|ΔDLMP\\|, \\|ΔLMP\\| ≤ {PRICE_TOL} $/MWh at unique prices, objective ≤ {OBJ_TOL:g} "
                 f"(100 feeders) | {d:.1e} / {lm:.1e} $/MWh (degenerate bus 8: {_f(ca['lmp_max_degenerate'], '.1e')}), "
                 f"{ob:.1e} | {yes(d <= PRICE_TOL and lm <= PRICE_TOL and ob <= OBJ_TOL)} |")
    for key in ("kernel100", "kernel_huge"):
        r = runs.get(key)
        if r and r.get("ok") and "warm_solve_1thread_s" in r:
            sp = min(r["speedup_warm_vs_resolve"], r["speedup_warm_vs_clarabel_only"])
            L.append(f"| 2 | numba feeder update ≥ {KERNEL_TARGET:.0f}× faster than cvxpy + Clarabel ({r['K']} QPs) | "
                     f"warm {r['speedup_warm_vs_resolve']:.0f}× vs cvxpy re-solve, "
                     f"{r['speedup_warm_vs_clarabel_only']:.0f}× vs Clarabel solve_time (2 threads; 1 thread "
                     f"{r['speedup_warm_1thread_vs_clarabel_only']:.1f}×); cold incl. factorization "
                     f"{r['speedup_cold_vs_clarabel_only']:.1f}× | {yes(sp >= KERNEL_TARGET)} |")
    c, a = runs.get("central_big"), runs.get("admm_big")
    if c and a and c.get("ok") and a.get("ok"):
        ratio = a["time_s"] / c["time_s"]
        L.append(f"| 3 | ADMM ≤ 1/3 of the centralized wall time ({a['spec']['n']} feeders) | ADMM {a['time_s']:.0f} s "
                 f"vs centralized {c['time_s']:.0f} s = {ratio:.2f} | {yes(ratio <= WALL_TARGET)} |")
    hs = sorted([r for k, r in runs.items() if k.startswith("admm_huge")], key=lambda r: r["spec"]["n"])
    for r in hs:
        if r.get("ok"):
            L.append(f"| 4 | ADMM at ≥ 1,000 feeders × 33 nodes × 24 h | {r['spec']['n']} feeders: {r['status']} in "
                     f"{r['time_s']:.0f} s, {r['iterations']} iterations, {r['peak_rss_mb']:.0f} MB peak RSS | "
                     f"{yes(bool(r.get('converged')) and r['spec']['n'] >= 1000)} |")
        else:
            L.append(f"| 4 | (ADMM at {r['spec']['n']} feeders) | {r['status'][:240]} | not converged (infeasible "
                     "model) |")
    for r1, r2 in ((runs.get("dask1"), runs.get("dask2")), (runs.get("dask1_n"), runs.get("dask2_n"))):
        if r1 and r2 and r1.get("ok") and r2.get("ok"):
            L.append(f"| 5 | Dask 1 vs 2 workers ({r1['spec']['n']} feeders) | {r1['time_s']:.0f} s vs "
                     f"{r2['time_s']:.0f} s: {r1['time_s'] / r2['time_s']:.2f}× | reported (no target) |")
    L.append("")
    return L


def write_report(db: dict[str, Any]) -> None:
    runs: dict[str, dict[str, Any]] = db["runs"]
    cmp_: dict[str, Any] = db.get("comparisons", {})
    meta = db["meta"]
    inv = ", ".join("`" + c.replace("python -m benchmarks.admm_scale ", "") + "`" for c in meta["commands"])
    L = ["# ADMM benchmarks: accuracy, feeder QP kernel, scale, Dask", "",
         "Reproduce: `python -m benchmarks.admm_scale` (every run, one after the other) or `python -m "
         "benchmarks.admm_scale --only NAME[,NAME]` (re-runs those and merges them into the json); the runs below "
         f"came from the invocations {inv}.  ",
         f"Last update: {meta['date']}, git {meta['git']['commit']} ({meta['git']['subject']})"
         + (f", uncommitted: {', '.join(meta['git']['nodalopt_changes'])}" if meta["git"]["nodalopt_changes"]
            else "") + "  ",
         f"Machine: {meta['machine']}; **2 cores shared with other jobs** (other helpers' benchmarks ran at the "
         "same time; load averages per run below), so timings are noisy (±20–30 % is plausible).  ",
         "Each run is a fresh subprocess (`python -m benchmarks.admm_scale --child NAME`); peak RSS = the "
         "subprocess's `ru_maxrss` from `os.wait4` / the largest polled sum over its process tree (incl. Dask "
         "workers). ADMM runs first solve a tiny case9 model to compile / load the numba kernels (`warm-up`, not "
         "counted). Times: *init* = `ADMM(...)` / `TDOPF(...)` construction, *solve* = `.solve()`, *time* = "
         "init + solve (network attach excluded in both).",
         "",
         "| run | kind | model | feeder nodes | wall (s) | CPU (s) | peak RSS (MB) own / tree | load avg before | "
         "date | git | status |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = list(db.get("order", runs))
    order += [k for k in runs if k not in order]
    L += [_run_line(runs[k]) for k in order if k in runs]
    L.append("")
    L += _summary(runs, cmp_)
    # ---------------------------------------------------------------- 1. accuracy
    c, a, cp_ = runs.get("accuracy_central"), runs.get("accuracy_admm"), cmp_.get("accuracy")
    L += ["## 1. Accuracy: ADMM vs centralized, 100 feeders × 33 nodes × 24 h", "",
          "Model: `case118_200mva` + 90 × `case33bw_der()` with `ev_fleet()` (`spread_feeders`) + 10 × the DG "
          f"variant (`case33bw_der(battery=False)` + 1 MW DG at node 17, 20 $/MWh + 30 $/MW²h) with "
          f"`vm_min_pu={VMIN}` at buses {', '.join(map(str, VBUSES))} (`replace=False`), 24 h, AC loss terms. "
          "ADMM: `ADMMSettings()` defaults (rho 5, alpha 1.6, eps_abs 1e-5, eps_rel 1e-6, price_tol 1e-4).", ""]
    if c and c.get("ok"):
        b = c["binding"]
        L.append("Binding transmission branches (centralized, |mu| > 1e-4): " + ", ".join(
            f"`{x['branch']}` ({x['hours']} h, max loading {x['max_loading']:.3f}, max mu {x['max_mu']:.2f})"
            for x in b) + ".  ")
        fs = c["feeders"]
        L.append(f"Binding feeder voltage limit: the DG-variant feeders reach vm = {fs.get('vm_min_variant', 0):.4f} "
                 f"pu (limit {VMIN}) with a voltage DLMP component of up to "
                 f"{fs.get('max_abs_dlmp_voltage_variant', 0):.2f} $/MWh at {fs.get('node_hours_voltage_price', 0)} "
                 f"node-hours; DLMPs {fs['dlmp_min']:.2f} … {fs['dlmp_max']:.2f} $/MWh.")
        L.append("")
    if cp_ and "error" not in cp_:
        ok_d = (cp_["dlmp_max_unique_root"] or 0) <= PRICE_TOL
        ok_l = (cp_["lmp_max_unique"] or 0) <= PRICE_TOL
        ok_o = cp_["objective_rel"] <= OBJ_TOL
        L += ["| metric | value | target | met |", "|---|---|---|---|",
              f"| max \\|ΔDLMP\\| at feeder nodes whose root LMP is unique ($/MWh) | "
              f"{_f(cp_['dlmp_max_unique_root'], '.2e')} | ≤ {PRICE_TOL} | {'yes' if ok_d else '**no**'} |",
              f"| max \\|ΔDLMP\\| at nodes under a degenerate root LMP ({cp_['dlmp_degenerate_root_points']:,} of "
              f"{cp_['dlmp_points']:,} node-hours) | {_f(cp_['dlmp_max_degenerate_root'], '.2e')} | (not unique) | |",
              f"| max \\|ΔDLMP\\| all node-hours | {cp_['dlmp_max_all']:.2e} | | |",
              f"| max \\|ΔLMP\\| at unique bus-hours ($/MWh) | {_f(cp_['lmp_max_unique'], '.2e')} | ≤ {PRICE_TOL} | "
              f"{'yes' if ok_l else '**no**'} |",
              f"| max \\|ΔLMP\\| at degenerate bus-hours ({cp_['lmp_degenerate_points']} of {cp_['lmp_points']:,}; "
              f"buses {', '.join(map(str, cp_['lmp_degenerate_buses']))}) | {_f(cp_['lmp_max_degenerate'], '.2e')} | "
              "(not unique) | |",
              f"| max \\|ΔLMP\\| all bus-hours | {cp_['lmp_max_all']:.2e} | | |",
              f"| max \\|Δ voltage DLMP component\\| ($/MWh) | {cp_['dlmp_voltage_max']:.2e} | | |",
              f"| max \\|Δ substation import\\| (MW) / \\|Δvm\\| (pu) | {cp_['p_sub_max_mw']:.2e} / "
              f"{cp_['vm_max']:.2e} | | |",
              f"| objective relative difference | {cp_['objective_rel']:.2e} | ≤ {OBJ_TOL:g} | "
              f"{'yes' if ok_o else '**no**'} |", ""]
        w = cp_["lmp_worst"]
        L.append(f"Largest LMP difference: hour {w['hour']}, bus {w['bus']}, {w['err']:.2e} $/MWh (unique: "
                 f"centralized {w['unique_central']}, ADMM {w['unique_admm']}).")
        L.append("")
    if c and a:
        L += ["| run | iterations | loss updates | s / iteration | init (s) | solve (s) | time (s) | peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|"]
        if c.get("ok"):
            L.append(f"| centralized | | {c['loss_iterations']} | | {c['init_s']:.1f} | {c['solve_s']:.1f} | "
                     f"{c['time_s']:.1f} | {c['peak_rss_mb']:.0f} |")
        else:
            L.append(f"| centralized | **{c['status']}** | | | | | | |")
        if a.get("ok"):
            L.append(f"| ADMM | {a['iterations']} | {a['loss_iterations'] - 1} | {a['s_per_iter_mean']:.3f} | "
                     f"{a['init_s']:.1f} | {a['solve_s']:.1f} | {a['time_s']:.1f} | {a['peak_rss_mb']:.0f} |")
        else:
            L.append(f"| ADMM | **{a['status']}** | | | | | | |")
        L.append("")
        if a.get("ok"):
            L += ["ADMM profile (exclusive seconds of instrumented methods):", "", *_phase_table(a)]
    # ---------------------------------------------------------------- 2. kernel
    L += ["## 2. Feeder QP kernel: numba batch vs cvxpy + Clarabel one at a time", "",
          "The feeder subproblems of one ADMM iteration, captured from a running `ADMM` (the batches, "
          "factorizations and warm starts as they were at that iteration).  *factorize* = "
          "`qp.factorize` of every group (Ruiz scaling + numeric LDLᵀ of all KKT matrices), *cold* = `qp.solve` "
          "from zero after a fresh factorization, *warm* = `qp.solve` with the ADMM iteration's factors and the "
          "previous iteration's solution as warm start (what ADMM pays per iteration); best of the repetitions. "
          "cvxpy + Clarabel: the same QP (`feeder_qp.as_scipy` P and A, q, l, u) as a cvxpy problem with q a "
          "Parameter; *first* = build + compile + solve, *re-solve* = second `solve()` of the compiled problem "
          "(what a cvxpy-based ADMM would pay per feeder and iteration), *Clarabel only* = Clarabel's own "
          "`solve_time` (no cvxpy overhead at all); timed on a sample and extrapolated to all problems "
          "(group size × sample mean). Numba runs on "
          "all visible cores (`prange` over problems), Clarabel on one.", ""]
    for key in ("kernel100", "kernel_huge"):
        r = runs.get(key)
        if not r:
            continue
        if not r.get("ok"):
            L += [f"`{key}` ({r['spec']['n']} feeders): **{r['status']}**", ""]
            continue
        if "warm_solve_1thread_s" not in r:
            L += [f"`{key}`: result from an older version of this script, re-run it.", ""]
            continue
        e = r["clarabel_extrapolated"]
        g = "; ".join(f"{x['K']} × (n {x['n']:,}, m {x['m']:,}, nnz(A) {x['nnz_A']:,})" for x in r["groups"])
        L += [f"**{r['spec']['n']} feeders** ({r['K']} QPs: {g}), captured at ADMM iteration {r['capture_iter']}, "
              f"numba threads {r['numba_threads']}:", "",
              "| | seconds for all QPs | OSQP iterations mean / max | solved |", "|---|---|---|---|",
              f"| numba factorize | {r['factorize_s']:.3f} | | |",
              f"| numba solve, cold | {r['cold_solve_s']:.3f} | {r['cold']['iters_mean']:.0f} / "
              f"{r['cold']['iters_max']} | {r['cold']['solved']}/{r['cold']['K']} |",
              f"| numba solve, warm (as in ADMM) | {r['warm_solve_s']:.3f} | {r['warm']['iters_mean']:.0f} / "
              f"{r['warm']['iters_max']} | {r['warm']['solved']}/{r['warm']['K']} |",
              f"| numba solve, warm, 1 thread | {r['warm_solve_1thread_s']:.3f} | | |",
              f"| cvxpy build + compile + first solve (extrapolated) | {e['build_s'] + e['first_solve_s']:.1f} | | |",
              f"| cvxpy re-solve, compiled (extrapolated) | {e['resolve_s']:.1f} | | |",
              f"| Clarabel solve_time only (extrapolated) | {e['clarabel_s']:.1f} | | |", "",
              f"Clarabel sample: {r['clarabel_sampled']} problems (extrapolated "
              f"×{r['K'] / r['clarabel_sampled']:.0f}), "
              f"mean {1e3 * e['resolve_s'] / r['K']:.0f} ms per re-solve, {1e3 * e['clarabel_s'] / r['K']:.0f} ms "
              f"Clarabel time, {1e3 * (e['build_s'] + e['first_solve_s']) / r['K']:.0f} ms first solve; numba vs "
              f"Clarabel on the sample: max objective rel. difference {r['clarabel_max_obj_rel_diff']:.1e}, max "
              f"\\|Δx\\| {r['clarabel_max_abs_dx']:.1e}.  ",
              f"Warm numba solves: {r['warm']['polished']}/{r['warm']['K']} ended by a successful polish, "
              f"{r['warm']['polish_attempts_mean']:.1f} polish attempts and {r['warm']['refactorizations_mean']:.1f} "
              f"rho refactorizations per problem on average (cold: {r['cold']['polished']} polished, "
              f"{r['cold']['polish_attempts_mean']:.1f} attempts, {r['cold']['refactorizations_mean']:.1f} "
              "refactorizations).  ",
              f"**Speed-up** (target ≥ {KERNEL_TARGET:.0f}×): warm numba vs cvxpy re-solve "
              f"**{r['speedup_warm_vs_resolve']:.0f}×**, vs Clarabel solve_time alone "
              f"**{r['speedup_warm_vs_clarabel_only']:.0f}×** (one numba thread vs Clarabel solve_time: "
              f"{r['speedup_warm_1thread_vs_clarabel_only']:.1f}×); cold (factorize + solve) vs cvxpy first solve "
              f"{r['speedup_cold_vs_first']:.0f}×, vs Clarabel solve_time alone "
              f"{r['speedup_cold_vs_clarabel_only']:.2f}×.", ""]
    # ---------------------------------------------------------------- 3. big
    c, a, cp_ = runs.get("central_big"), runs.get("admm_big"), cmp_.get("big")
    n_big = (c or a or {}).get("spec", {}).get("n")
    L += [f"## 3. ADMM vs centralized wall time: {n_big} feeders", "",
          f"The `benchmarks.td_scale` model (`{CASE}` + N × `case33bw_der()` with `ev_fleet()`, "
          "`spread_feeders`) at the largest N the centralized model solved there within 10 minutes.", ""]
    if c or a:
        L += ["| run | status | iterations | loss updates | s / iteration | init (s) | solve (s) | time (s) | "
              "peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|"]
        if c:
            L.append(f"| centralized `TDOPF` | {c['status'][:300]} | | {c.get('loss_iterations', '')} | | "
                     f"{_f(c.get('init_s'), '.1f')} | {_f(c.get('solve_s'), '.1f')} | {_f(c.get('time_s'), '.1f')} | "
                     f"{c['peak_rss_mb']:.0f} |")
        ts = _td_scale_run(n_big) if n_big else None
        if ts and ts.get("ok"):
            L.append(f"| centralized, td_scale run ({_td_scale_date()}) | {ts['status']} | | {ts['loss_iterations']} |"
                     f" | {ts['init_s']:.1f} | {ts['solve_s']:.1f} | {ts['total_s']:.1f} | {ts['peak_rss_mb']:.0f} |")
        if a:
            if a.get("ok"):
                L.append(f"| ADMM in-process | {a['status']} | {a['iterations']} | {a['loss_iterations'] - 1} | "
                         f"{a['s_per_iter_mean']:.3f} | {a['init_s']:.1f} | {a['solve_s']:.1f} | {a['time_s']:.1f} | "
                         f"{a['peak_rss_mb']:.0f} |")
            else:
                pr = a.get("progress") or {}
                done = a.get("iterations_done") or pr.get("iteration")
                L.append(f"| ADMM in-process | **{a['status'][:300]}** | {_f(done)} done | | "
                         f"{_f(pr['solve_elapsed_s'] / pr['iteration'] if pr else None, '.2f')} | "
                         f"{_f(a.get('init_s'), '.1f')} | {_f(a.get('solve_s'), '.1f')} | | {a['peak_rss_mb']:.0f} |")
        L.append("")
        if c and a and c.get("ok") and a.get("ok"):
            ratio = a["time_s"] / c["time_s"]
            L.append(f"**Wall-time ratio ADMM / centralized = {ratio:.2f}** (target ≤ {WALL_TARGET:.2f}: "
                     f"{'met' if ratio <= WALL_TARGET else '**not met**'}); ADMM peak RSS "
                     f"{a['peak_rss_mb'] / c['peak_rss_mb']:.2f}× the centralized one.")
            L.append("")
        if cp_ and "error" not in cp_:
            L.append(f"Prices at this size: max \\|ΔDLMP\\| {_f(cp_['dlmp_max_unique_root'], '.2e')} $/MWh (unique "
                     f"roots; all {cp_['dlmp_max_all']:.2e}), max \\|ΔLMP\\| {_f(cp_['lmp_max_unique'], '.2e')} "
                     f"(unique; all {cp_['lmp_max_all']:.2e}, {cp_['lmp_degenerate_points']} degenerate bus-hours), "
                     f"objective rel. difference {cp_['objective_rel']:.1e}.")
            L.append("")
        if a:
            L += ["ADMM profile (exclusive seconds of instrumented methods" + ("" if a.get("ok") else
                  ", up to the last progress report / the failure") + "):", "", *_phase_table(a)]
    # ---------------------------------------------------------------- 4. huge
    hs = sorted([r for k, r in runs.items() if k.startswith("admm_huge")], key=lambda r: r["spec"]["n"])
    if hs:
        L += [f"## 4. ADMM only: {' and '.join(str(r['spec']['n']) for r in hs)} feeders × 33 nodes × 24 h", "",
              f"The td_scale model (`{CASE}` + N × `case33bw_der()` with `ev_fleet()`, `spread_feeders`), ADMM "
              "in-process with the default settings.", "",
              "| run | N | status | iterations | loss updates | s / iteration | init (s) | solve (s) | time (s) | "
              "peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|---|", *[_admm_line(r) for r in hs], ""]
        t8 = _td_scale_run(_td_scale_largest() or 0)
        note = "The centralized model is not attempted at these sizes."
        for r in hs:
            ts = _td_scale_run(r["spec"]["n"])
            if ts:
                note += (f" In `benchmarks.td_scale` the centralized model with {r['spec']['n']} feeders "
                         + (f"solved in {ts['total_s']:.0f} s" if ts.get("ok") else f"failed: {ts['status']}") + ".")
        if t8 and t8.get("ok"):
            note += (f" Its largest centralized solve was {t8['n_feeders']} feeders in {t8['process_wall_s']:.0f} s "
                     f"wall ({t8['peak_rss_mb']:.0f} MB peak RSS).")
        L += [note, ""]
        tc = runs.get("tcheck")
        if tc and tc.get("ok"):
            L += ["Feasibility of the transmission side (`tcheck` run: DC-OPF of the case, 24 h, each feeder copy "
                  "as a fixed demand of its 4.015 MW base load following the load profile, placed as by "
                  "`spread_feeders`; PV, batteries and EVs ignored, so this is indicative only):", "",
                  "| N feeders | load on top of the case (MW) | result |", "|---|---|---|",
                  *[f"| {x['n']} | {x['on_top_mw']:.0f} | {x['status'][:200]}"
                    + (f", max LMP {x['lmp_max']:.1f} $/MWh" if x.get("feasible") else "") + " |"
                    for x in tc["rows"]], ""]
        for r in hs:
            L.append(f"Profile, {r['spec']['n']} feeders" + (f" ({r['dnodes']:,} feeder nodes, "
                     f"{r['dnodes'] * HOURS:,} node-hours; transmission subproblem {r['transmission_vars']:,} "
                     "scalar variables)" if r.get("ok") else " (up to the failure)") + ":")
            L += ["", *_phase_table(r)]
    # ---------------------------------------------------------------- 5. dask
    sets = [("full solves", runs.get("accuracy_admm"), runs.get("dask1"), runs.get("dask2")),
            ("larger model", runs.get("inproc_n"), runs.get("dask1_n"), runs.get("dask2_n"))]
    if any(x[2] or x[3] for x in sets):
        L += ["## 5. Dask executor: 1 vs 2 workers", "",
              "`ADMM(td, executor=\"dask\", workers=w)`: a `LocalCluster` on 127.0.0.1 with w worker processes "
              "(1 thread each) is started inside `solve()` (its start-up is included in *solve*); the feeder QPs are "
              "split into 2 chunks per worker, each chunk factorized once on a worker and solved there every "
              "iteration (only q goes out, the solutions x, z, y come back). In-process = numba threads over both "
              "cores, for reference. Two sets: the 100-feeder accuracy model (in-process reference = "
              "`accuracy_admm`) and a larger td_scale model where the feeder QPs dominate.", ""]
    for title, d0, d1, d2 in sets:
        if not (d1 or d2):
            continue
        sp_ = (d1 or d2)["spec"]  # type: ignore[index]
        L += [f"**{title}: {sp_['n']} feeders" + (f", {sp_['fixed_iter']} iterations" if sp_.get("fixed_iter")
                                                  else "") + "**", "",
              "| executor | status | iterations | s / iteration | feeder QP solve s / iteration | init (s) | "
              "solve (s) | time (s) | peak RSS own / tree (MB) | load before |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for lab, r in (("in-process", d0), ("dask, 1 worker", d1), ("dask, 2 workers", d2)):
            if not r:
                continue
            la = f"{r['loadavg_before'][0]:.1f}"
            if r.get("ok"):
                ph = r["phases"]["excl"]
                L.append(f"| {lab} | {r['status']} | {r['iterations']} | {r['s_per_iter_mean']:.3f} | "
                         f"{ph.get('feeder_qp_solve', 0) / r['iterations']:.3f} | {r['init_s']:.1f} | "
                         f"{r['solve_s']:.1f} | {r['time_s']:.1f} | {r['peak_rss_mb']:.0f} / "
                         f"{r['peak_tree_rss_mb']:.0f} | {la} |")
            else:
                L.append(f"| {lab} | **{r['status'][:300]}** | | | | | | | {r['peak_rss_mb']:.0f} / "
                         f"{r['peak_tree_rss_mb']:.0f} | {la} |")
        L.append("")
        if d1 and d2 and d1.get("ok") and d2.get("ok"):
            q1 = d1["phases"]["excl"].get("feeder_qp_solve", 0) / d1["iterations"]
            q2 = d2["phases"]["excl"].get("feeder_qp_solve", 0) / d2["iterations"]
            L.append(f"**Speed-up 2 vs 1 workers: {d1['time_s'] / d2['time_s']:.2f}× end to end, "
                     f"{q1 / q2:.2f}× in the feeder QP solves per iteration** (iterations {d1['iterations']} / "
                     f"{d2['iterations']}).")
            if d0 and d0.get("ok"):
                L.append(f"In-process vs Dask 2 workers: {d2['time_s'] / d0['time_s']:.2f}× the in-process time.")
            L.append("")
        for lab, r in (("dask, 2 workers", d2), ("dask, 1 worker", d1)):
            if r and r.get("ok"):
                L += [f"Profile, {lab}:", "", *_phase_table(r)]
                break
    if meta.get("notes"):
        L += ["## Notes", "", meta["notes"].strip(), ""]
    if SCALE_OUT.exists():  # hand-written scale-out measurements (python -m benchmarks.admm_run sweep ...)
        L += [SCALE_OUT.read_text(encoding="utf-8").rstrip(), ""]
    (OUT / "admm_scale.md").write_text("\n".join(L))


def _td_scale_date() -> str:
    try:
        return json.loads((OUT / "td_scale.json").read_text())["meta"]["date"]
    except (OSError, ValueError, KeyError):
        return "?"


PAIRS = {"accuracy": ("accuracy_central", "accuracy_admm"), "big": ("central_big", "admm_big")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated run names (default: all, in order)")
    ap.add_argument("--big", type=int, default=None, help="feeders of central_big / admm_big (default: td_scale's "
                    "largest solved size, else 400)")
    ap.add_argument("--huge", default="1000", help="comma-separated feeder counts of the admm_huge_N runs (1600 is "
                    "infeasible, see tcheck); "
                    "kernel_huge uses the first")
    ap.add_argument("--dask-n", type=int, default=400, help="feeders of inproc_n, dask1_n, dask2_n")
    ap.add_argument("--dask-iter", type=int, default=0, help="stop inproc_n / dask*_n after this many iterations "
                    "(0: solve to convergence)")
    ap.add_argument("--max-iter", type=int, default=3000)
    ap.add_argument("--capture-iter", type=int, default=20, help="ADMM iteration whose feeder QPs the kernel "
                    "benchmark uses")
    ap.add_argument("--sample", type=int, default=10, help="feeder QPs solved with cvxpy + Clarabel")
    ap.add_argument("--limit-s", type=float, default=1800.0, help="wall-clock limit per run (s)")
    ap.add_argument("--huge-limit-s", type=float, default=5400.0, help="wall-clock limit of admm_huge (s)")
    ap.add_argument("--mem-limit-gb", type=float, default=16.0)
    ap.add_argument("--notes", default=None, help="file whose text goes under 'Notes' in the report")
    ap.add_argument("--report-only", action="store_true", help="rewrite the md from the json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child is not None:
        child(a.child, json.loads(a.spec), Path(a.json))
        return 0
    specs = run_specs(a)
    names = [s.strip() for s in a.only.split(",")] if a.only else list(specs)
    bad = [n for n in names if n not in specs]
    if bad:
        ap.error(f"unknown run(s) {bad}; choose from {list(specs)}")
    jpath = OUT / "admm_scale.json"
    db: dict[str, Any] = json.loads(jpath.read_text()) if jpath.is_file() else {"runs": {}, "comparisons": {}}
    db["order"] = list(specs)
    cmd = "python -m benchmarks.admm_scale " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = db.setdefault("meta", {})
    meta.update(date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), git=git_state(),
                machine=f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU(s) visible")
    if not a.report_only:
        meta["commands"] = [*[c for c in meta.get("commands", []) if c != cmd], cmd][-12:]
    if a.notes:
        meta["notes"] = Path(a.notes).read_text()
    OUT.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        with tempfile.TemporaryDirectory(prefix="nodalopt-admmscale-") as tmp:
            for name in names:
                print(f"{name}: {specs[name]} (load {os.getloadavg()[0]:.2f})", flush=True)
                lim = float(specs[name].get("limit_s", a.limit_s))
                r = run_one(name, specs[name], lim, a.mem_limit_gb * 1024, Path(tmp))
                db["runs"][name] = r
                for key, (cn, an) in PAIRS.items():
                    if name in (cn, an):
                        cres = compare(cn, an)
                        if cres is not None:
                            db["comparisons"][key] = cres
                print(f"  {r['status'][:400]}, wall {r['process_wall_s']:.0f} s, peak {r['peak_rss_mb']:.0f} MB "
                      f"(tree {r['peak_tree_rss_mb']:.0f} MB)", flush=True)
                jpath.write_text(json.dumps(db, indent=1, default=float))
                write_report(db)
    jpath.write_text(json.dumps(db, indent=1, default=float))
    write_report(db)
    print((OUT / "admm_scale.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
