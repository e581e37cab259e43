"""Batched QP kernel (:mod:`nodalopt.admm.qp`): numba vs its numpy twin vs cvxpy + Clarabel.

    python -m benchmarks.qp_kernel [--K 200] [--buses 24] [--hours 24] [--storage 4] [--sample 5]

Builds K radial-feeder LinDistFlow QPs that share one sparsity pattern (24 buses x 24 hours with
storage: n ≈ 3,100 variables, m ≈ 4,900 rows by default) and differ in loads, prices, line
impedances and storage efficiency.  Times

* the symbolic analysis (once per pattern),
* numba: numeric factorization of all K KKT matrices + the batched OSQP solve (after a warm-up
  call that compiles or loads the kernels),
* the numpy/scipy twin and cvxpy + Clarabel one problem at a time on ``--sample`` problems,
  extrapolated to K,

and checks the numba solutions of the sampled problems against Clarabel (objective, x, duals).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from nodalopt.admm import QPBatch, QPPattern, QPSettings, analyze, factorize, solve, solve_numpy


# ================================================================ feeder QPs
@dataclass
class _Index:
    """Variable numbering of the feeder model (per hour blocks)."""

    B: int
    S: int
    T: int

    @property
    def per_t(self) -> int:
        return 3 * self.B + 2 * (self.B - 1) + 3 * self.S

    def pg(self, t: int, b: int) -> int:
        return t * self.per_t + b

    def qg(self, t: int, b: int) -> int:
        return t * self.per_t + self.B + b

    def v(self, t: int, b: int) -> int:
        return t * self.per_t + 2 * self.B + b

    def pf(self, t: int, b: int) -> int:  # branch into bus b >= 1
        return t * self.per_t + 3 * self.B + (b - 1)

    def qf(self, t: int, b: int) -> int:
        return t * self.per_t + 3 * self.B + (self.B - 1) + (b - 1)

    def ch(self, t: int, s: int) -> int:
        return t * self.per_t + 3 * self.B + 2 * (self.B - 1) + s

    def dis(self, t: int, s: int) -> int:
        return self.ch(t, s) + self.S

    def soc(self, t: int, s: int) -> int:
        return self.ch(t, s) + 2 * self.S


def feeder_batch(K: int, buses: int = 24, hours: int = 24, storage: int = 4, seed: int = 0) -> QPBatch:
    """K LinDistFlow feeder QPs with one shared pattern.

    Per hour: substation import (quadratic cost + energy price), DER injections with a small
    quadratic cost, reactive injections, squared voltages in [0.9², 1.1²], branch flows limited by
    an octagon-like polygon (two rows per branch), storage with state of charge coupling the
    hours.  Equality rows: P and Q balance per bus, voltage drop per branch, substation voltage,
    storage dynamics.  Units: MW, Mvar, p.u.² voltages, $/MWh prices (10-100).

    Parameters
    ----------
    K : int
        Number of problems.
    buses, hours, storage : int
        Feeder size (the default gives n = 3,120, m = 4,920).
    seed : int

    Returns
    -------
    QPBatch
    """
    rng = np.random.default_rng(seed)
    B, S, T = buses, storage, hours
    ix = _Index(B, S, T)
    n = ix.per_t * T
    parent = np.array([-1] + [int(rng.integers(max(0, b - 3), b)) for b in range(1, B)])
    children: list[list[int]] = [[] for _ in range(B)]
    for b in range(1, B):
        children[int(parent[b])].append(b)
    sto_bus = rng.choice(np.arange(1, B), S, replace=False)
    der_bus = rng.choice(np.arange(1, B), max(1, B // 3), replace=False)
    hrs = np.arange(T)
    solar = np.clip(np.sin(np.pi * (hrs - 6) / 12), 0, None)
    load_shape = 0.6 + 0.4 * np.sin(np.pi * (hrs - 9) / 12) ** 2

    rows: list[list[tuple[int, int]]] = []  # per row: (column, role) roles filled per problem
    kinds: list[tuple] = []

    def row(entries: list[tuple[int, object]], kind: tuple) -> None:
        rows.append(entries)  # type: ignore[arg-type]
        kinds.append(kind)

    # ---- rows (coefficients given symbolically by a tag, evaluated per problem)
    for t in range(T):
        for b in range(B):
            ent: list[tuple[int, object]] = [(ix.pg(t, b), 1.0)]
            ent += [(ix.pf(t, c), -1.0) for c in children[b]]
            if b > 0:
                ent.append((ix.pf(t, b), 1.0))
            for s in np.flatnonzero(sto_bus == b):
                ent += [(ix.dis(t, int(s)), 1.0), (ix.ch(t, int(s)), -1.0)]
            row(ent, ("pbal", t, b))
            ent = [(ix.qg(t, b), 1.0)] + [(ix.qf(t, c), -1.0) for c in children[b]]
            if b > 0:
                ent.append((ix.qf(t, b), 1.0))
            row(ent, ("qbal", t, b))
        for b in range(1, B):
            row([(ix.v(t, b), 1.0), (ix.v(t, int(parent[b])), -1.0), (ix.pf(t, b), ("r", b)),
                 (ix.qf(t, b), ("x", b))], ("vdrop", t, b))
        row([(ix.v(t, 0), 1.0)], ("vsub", t))
        for s in range(S):
            ent = [(ix.soc(t, s), 1.0), (ix.ch(t, s), ("eta", s)), (ix.dis(t, s), ("ieta", s))]
            if t > 0:
                ent.append((ix.soc(t - 1, s), -1.0))
            row(ent, ("soc", t, s))
        for b in range(B):
            row([(ix.pg(t, b), 1.0)], ("pgbox", t, b))
            row([(ix.qg(t, b), 1.0)], ("qgbox", t, b))
        for b in range(1, B):
            row([(ix.v(t, b), 1.0)], ("vbox", t, b))
            row([(ix.pf(t, b), 1.0), (ix.qf(t, b), 1.0)], ("flow", t, b))
            row([(ix.pf(t, b), 1.0), (ix.qf(t, b), -1.0)], ("flow", t, b))
        for s in range(S):
            row([(ix.ch(t, s), 1.0)], ("chbox", t, s))
            row([(ix.dis(t, s), 1.0)], ("chbox", t, s))
            row([(ix.soc(t, s), 1.0)], ("socbox", t, s))
    m = len(rows)
    r_idx = np.concatenate([np.full(len(e), i) for i, e in enumerate(rows)])
    c_idx = np.concatenate([[c for c, _ in e] for e in rows])
    tags = [tag for e in rows for _, tag in e]
    A0 = sp.csc_matrix((np.ones(r_idx.size), (r_idx, c_idx)), shape=(m, n))
    diag_vars = np.array([f(t, b) for f in (ix.pg, ix.qg) for t in range(T) for b in range(B)]
                         + [f(t, s) for f in (ix.ch, ix.dis) for t in range(T) for s in range(S)])
    P0 = sp.csc_matrix((np.ones(diag_vars.size), (diag_vars, diag_vars)), shape=(n, n))
    pattern = QPPattern.from_matrices(P0, A0)

    base_load = rng.uniform(0.05, 0.3, B)
    base_load[0] = 0.0
    r_base = rng.uniform(0.001, 0.004, B)
    x_base = rng.uniform(0.001, 0.004, B)
    smax = 1.2 * np.array([base_load[_subtree(children, b)].sum() for b in range(B)]) + 0.5
    Ps, As, qs, ls, us = [], [], [], [], []
    for _ in range(K):
        lf = rng.uniform(0.7, 1.3)
        pd = lf * base_load[None, :] * load_shape[:, None] * rng.uniform(0.9, 1.1, (T, B))
        qd = 0.3 * pd
        price = rng.uniform(20, 60) * (0.7 + 0.6 * rng.random(T))
        r_b = r_base * rng.uniform(0.9, 1.1, B)
        x_b = x_base * rng.uniform(0.9, 1.1, B)
        eta = rng.uniform(0.9, 0.97, S)
        soc0 = rng.uniform(0.1, 0.4, S)
        vals = np.empty(len(tags))
        for i, tg in enumerate(tags):
            if isinstance(tg, tuple):
                kind, j = tg
                if kind == "r":
                    vals[i] = 2 * r_b[j]
                elif kind == "x":
                    vals[i] = 2 * x_b[j]
                elif kind == "eta":
                    vals[i] = -eta[j]
                else:
                    vals[i] = 1.0 / eta[j]
            else:
                vals[i] = tg
        A = sp.csc_matrix((vals, (r_idx, c_idx)), shape=(m, n))
        l = np.empty(m)  # noqa: E741
        u = np.empty(m)
        for i, kd in enumerate(kinds):
            name = kd[0]
            if name == "pbal":
                l[i] = u[i] = pd[kd[1], kd[2]]
            elif name == "qbal":
                l[i] = u[i] = qd[kd[1], kd[2]]
            elif name == "vdrop":
                l[i] = u[i] = 0.0
            elif name == "vsub":
                l[i] = u[i] = 1.0
            elif name == "soc":
                l[i] = u[i] = soc0[kd[2]] if kd[1] == 0 else 0.0
            elif name == "pgbox":
                b = kd[2]
                cap = 0.0 if b not in der_bus else 0.6 * solar[kd[1]] * base_load.max() * 3
                l[i], u[i] = (-10.0, 10.0) if b == 0 else (0.0, cap)
            elif name == "qgbox":
                b = kd[2]
                l[i], u[i] = (-10.0, 10.0) if b == 0 else ((-0.2, 0.2) if b in der_bus else (0.0, 0.0))
            elif name == "vbox":
                l[i], u[i] = 0.81, 1.21
            elif name == "flow":
                l[i], u[i] = -smax[kd[2]], smax[kd[2]]
            elif name == "chbox":
                l[i], u[i] = 0.0, 0.25
            else:  # socbox
                l[i], u[i] = 0.05, 1.0
        q = np.zeros(n)
        pdiag = np.zeros(n)
        for t in range(T):
            q[ix.pg(t, 0)] = price[t]
            pdiag[ix.pg(t, 0)] = rng.uniform(2.0, 10.0)
            for b in der_bus:
                q[ix.pg(t, int(b))] = rng.uniform(5.0, 15.0)
                pdiag[ix.pg(t, int(b))] = rng.uniform(0.5, 2.0)
            for s in range(S):
                q[ix.ch(t, s)] = q[ix.dis(t, s)] = 1.0
                pdiag[ix.ch(t, s)] = pdiag[ix.dis(t, s)] = 0.1
            for b in range(B):  # reactive dispatch: small losses-like cost, makes the solution unique
                pdiag[ix.qg(t, b)] = 0.05
        Ps.append(sp.diags(pdiag).tocsc())
        As.append(A)
        qs.append(q)
        ls.append(l)
        us.append(u)
    return QPBatch.from_matrices(pattern, Ps, As, np.array(qs), np.array(ls), np.array(us))


def _subtree(children: list[list[int]], b: int) -> list[int]:
    out, stack = [], [b]
    while stack:
        v = stack.pop()
        out.append(v)
        stack.extend(children[v])
    return out


# ================================================================ reference
def clarabel_solve(batch: QPBatch, k: int, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, float]:
    """Solve problem ``k`` with cvxpy + Clarabel; returns x, y (OSQP sign convention) and the objective."""
    import cvxpy as cp

    pt = batch.pattern
    U = sp.csc_matrix((batch.P_data[k], pt.P_indices, pt.P_indptr), shape=(pt.n, pt.n))
    P = (U + U.T - sp.diags(U.diagonal())).tocsc()
    A = sp.csr_matrix(sp.csc_matrix((batch.A_data[k], pt.A_indices, pt.A_indptr), shape=(pt.m, pt.n)))
    l, u = batch.l[k], batch.u[k]  # noqa: E741
    x = cp.Variable(pt.n)
    eq = np.flatnonzero(l == u)
    up = np.flatnonzero((l != u) & np.isfinite(u))
    lo = np.flatnonzero((l != u) & np.isfinite(l))
    cons = [A[eq] @ x == u[eq], A[up] @ x <= u[up], A[lo] @ x >= l[lo]]
    obj = 0.5 * cp.quad_form(x, cp.psd_wrap(P)) + batch.q[k] @ x
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
    y = np.zeros(pt.m)
    y[eq] += cons[0].dual_value
    y[up] += cons[1].dual_value
    y[lo] -= cons[2].dual_value
    return np.asarray(x.value), y, float(prob.value)


def _kkt_residual(batch: QPBatch, k: int, x: np.ndarray, y: np.ndarray) -> float:
    pt = batch.pattern
    U = sp.csc_matrix((batch.P_data[k], pt.P_indices, pt.P_indptr), shape=(pt.n, pt.n))
    A = sp.csc_matrix((batch.A_data[k], pt.A_indices, pt.A_indptr), shape=(pt.m, pt.n))
    Ax = A @ x
    lo, up = batch.l[k], batch.u[k]
    stat = np.abs(U @ x + U.T @ x - U.diagonal() * x + batch.q[k] + A.T @ y).max()
    viol = max(np.max(Ax - up), np.max(lo - Ax), 0.0)
    with np.errstate(invalid="ignore"):
        comp = np.nan_to_num(np.where(y > 0, y * (up - Ax), np.where(y < 0, y * (lo - Ax), 0.0))).__abs__().max()
    return float(max(stat, viol, comp))


# ===================================================================== main
def main(argv: list[str] | None = None) -> int:
    from benchmarks.registry import QP_KERNEL_BATCH as B

    ap = argparse.ArgumentParser(prog="python -m benchmarks.qp_kernel", description=__doc__.split("\n")[0])
    ap.add_argument("--K", type=int, default=B["K"])
    ap.add_argument("--buses", type=int, default=B["buses"])
    ap.add_argument("--hours", type=int, default=B["hours"])
    ap.add_argument("--storage", type=int, default=B["storage"])
    ap.add_argument("--sample", type=int, default=5, help="problems timed for the twin and Clarabel")
    ap.add_argument("--eps", type=float, default=1e-8, help="eps_abs = eps_rel")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    batch = feeder_batch(a.K, a.buses, a.hours, a.storage, seed=B["seed"])
    t_build = time.perf_counter() - t0
    pt = batch.pattern
    s = QPSettings(eps_abs=a.eps, eps_rel=a.eps)
    print(f"K={batch.K} problems, n={pt.n}, m={pt.m}, nnz(P)={pt.nnz_P}, nnz(A)={pt.nnz_A} "
          f"(built in {t_build:.1f} s); threads: {os.environ.get('NUMBA_NUM_THREADS', 'numba default')}")

    t0 = time.perf_counter()
    sym = analyze(pt, s.ordering)
    t_sym = time.perf_counter() - t0
    print(f"symbolic analysis {t_sym:.2f} s: ordering {sym.ordering}, nnz(L) {sym.nnz_L} "
          f"(tried {sym.fill}; -1 = abandoned), nnz(KKT upper) {int(sym.Kp[-1])}")

    warm = batch.subset([0, 1])
    t0 = time.perf_counter()
    solve(warm, factorize(warm, s), s)
    t_warm = time.perf_counter() - t0

    t0 = time.perf_counter()
    f = factorize(batch, s)
    t_fac = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = solve(batch, f, s)
    t_sol = time.perf_counter() - t0

    # warm-started re-solve with perturbed prices (ADMM-like outer iteration)
    b2 = QPBatch(pt, batch.P_data, batch.A_data, batch.q * 1.01, batch.l, batch.u)
    t0 = time.perf_counter()
    res2 = solve(b2, f, s, warm_start=(res.x, res.z, res.y))
    t_ws = time.perf_counter() - t0

    ns = min(a.sample, batch.K)
    sub = batch.subset(np.arange(ns))
    t0 = time.perf_counter()
    rnp = solve_numpy(sub, s)
    t_np = (time.perf_counter() - t0) * batch.K / ns

    t0 = time.perf_counter()
    refs = [clarabel_solve(batch, k) for k in range(ns)]
    t_cl = (time.perf_counter() - t0) * batch.K / ns

    obj = res.objective(batch)[:ns]
    d_obj = max(abs(obj[k] - refs[k][2]) / max(1.0, abs(refs[k][2])) for k in range(ns))
    d_x = max(np.abs(res.x[k] - refs[k][0]).max() for k in range(ns))
    d_y = max(np.abs(res.y[k] - refs[k][1]).max() / max(1.0, np.abs(refs[k][1]).max()) for k in range(ns))
    same = res.iterations[:ns] == rnp.iterations
    tw_x = np.abs(res.x[:ns] - rnp.x)[same].max(initial=0.0)
    tw_y = np.abs(res.y[:ns] - rnp.y)[same].max(initial=0.0)
    kkt_ours = max(_kkt_residual(batch, k, res.x[k], res.y[k]) for k in range(ns))
    kkt_cl = max(_kkt_residual(batch, k, refs[k][0], refs[k][1]) for k in range(ns))

    it = res.iterations
    print(f"status counts: {dict(zip(*np.unique(res.status, return_counts=True), strict=True))}; "
          f"polished {int((res.polished == 1).sum())}/{batch.K}; iterations median {int(np.median(it))}, "
          f"mean {it.mean():.0f}, p90 {int(np.percentile(it, 90))}, max {int(it.max())}; "
          f"rho updates median {int(np.median(res.refactorizations))}; "
          f"max residuals prim {res.prim_res.max():.1e} dual {res.dual_res.max():.1e}")
    print(f"warm-started re-solve (q * 1.01): iterations median {int(np.median(res2.iterations))}, "
          f"max {int(res2.iterations.max())}, solved {int((res2.status == 1).sum())}/{batch.K}")
    print()
    print(f"| {'method (K = ' + str(batch.K) + ')':<40} | {'seconds':>9} | {'per problem ms':>14} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 16}|")
    rows = [("numba factorize (numeric)", t_fac), ("numba solve", t_sol), ("numba factorize + solve", t_fac + t_sol),
            ("numba warm-started re-solve", t_ws),
            (f"numpy twin (x K/{ns})", t_np), (f"cvxpy + Clarabel (x K/{ns})", t_cl),
            ("symbolic analysis (once per pattern)", t_sym), ("first call (compile or cache load)", t_warm)]
    for name, sec in rows:
        print(f"| {name:<40} | {sec:9.2f} | {1e3 * sec / batch.K:14.2f} |")
    print()
    print(f"accuracy on {ns} problems vs Clarabel (tol 1e-10): objective rel {d_obj:.1e}, x abs {d_x:.1e}, "
          f"y rel to max|y| {d_y:.1e} (duals of degenerate feeder LPs are not unique); KKT residual "
          f"max(|Px + q + A'y|, bound violation, |complementarity|): ours {kkt_ours:.1e}, Clarabel {kkt_cl:.1e}")
    print(f"numba vs twin on the {int(same.sum())}/{ns} problems with the same iteration count: x {tw_x:.1e}, "
          f"y {tw_y:.1e}; iterations numba {res.iterations[:ns].tolist()}, twin {rnp.iterations.tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
