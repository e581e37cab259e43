"""Consensus ADMM between the transmission DC-OPF and every distribution feeder.

The coupling is the power each feeder copy draws at its substation in each period: the
transmission operator sees it as ``d`` (a demand at the bus), the feeder as ``p`` (its
root import); ADMM drives ``d - p`` to zero.  Scaled form with over-relaxation ``alpha``:

    d+  = argmin f_T(d) + rho/2 ||d - p + u||^2          (cvxpy, DPP Parameters, compiled once)
    dh  = alpha d+ + (1 - alpha) p
    p+  = argmin f_F(p) + rho/2 ||p - (dh + u)||^2        (batched QP kernel, all feeders at once)
    u+  = u + dh - p+

At convergence ``-rho u / dt`` is the transmission LMP at each feeder's bus, and the
feeder subproblems' balance duals are the DLMPs.  Feeder losses are settled exactly as in
the centralized model (:class:`nodalopt.distribution.TDOPF`): when the ADMM residuals are
small, an AC branch-flow sweep at the feeders' dispatch re-linearizes the losses (with the
SQP curvature term), the feeder QPs are rebuilt and ADMM continues from where it was.
"""

from __future__ import annotations

import hashlib
import math
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
import xarray as xr

from .. import profiles as prof
from ..dcopf.model import DCOPF, _Built, _Raw, _val
from ..distribution import lindistflow as LD
from ..distribution.model import TDOPF
from ..distribution.prices import FeederDuals
from ..distribution.td import TDNetwork
from ..errors import ConvergenceError, InfeasibleError, InputError, NodalOptError
from ..log import get_logger, progress_bar
from . import feeder_qp as FQ
from .qp import QPBatch, QPResult, QPSettings
from .resident import ChunkState, StepOut

log = get_logger(__name__)


@dataclass
class ADMMSettings:
    """Settings of the ADMM coordinator.

    Attributes
    ----------
    rho : float
        Initial penalty ($ per MW^2 over one period; prices are ``rho * u / dt``).
    alpha : float
        Over-relaxation (1 = plain ADMM; 1.5-1.8 usually faster).
    eps_abs, eps_rel : float
        Primal / dual residual tolerances (MW, relative), as Boyd et al. (2011) section 3.3.
    price_tol : float
        Largest change of any substation price between two iterations ($/MWh) to stop.
    infeasible_price, infeasible_window : float, int
        Infeasibility test.  When transmission and feeders cannot agree on any exchange, the
        ADMM increments ``u_{k+1} - u_k`` converge to a constant non-zero vector (the gap
        between the two feasible sets, Banjac et al. 2019) and the substation prices grow
        without bound.  ADMM raises :class:`InfeasibleError` once that increment has been
        constant (relative change below 1e-6, gap above 1e-3 MW) for ``infeasible_window``
        iterations and a price where the gap is has passed ``infeasible_price`` $/MWh in
        absolute value (a market price cap: a coupled problem that needs higher prices is
        reported as infeasible; raise it if that is legitimate).
    max_iter : int
        Iteration limit; reaching it raises :class:`ConvergenceError` unless
        ``return_unconverged``.
    balance_mu, balance_tau, balance_every, balance_until : residual balancing of rho
        (rho is multiplied / divided by tau when one residual exceeds mu times the other,
        checked every ``balance_every`` iterations up to ``balance_until``).
    checkpoint : path, optional
        File (``.npz``) the coordinator state is written to every ``checkpoint_every``
        iterations; ``resume=True`` in :func:`solve_admm` continues from it.
    qp : QPSettings
        Feeder QP solver settings.  Defaults differ from :class:`QPSettings` in: tolerances
        1e-7, no Ruiz scaling (the cost scaling would change with every new price), and
        polishing with ``polish_delta=1e-7``, up to 10 active-set corrections and refinement to a
        reduced-KKT residual of 1e-8 (``polish_refine_tol=0.1``; prices to ~1e-8 $/MWh, far
        below ADMM's own tolerance).  Feeders with
        a binding voltage limit have near-dependent active rows (neighbouring nodes' limits);
        at OSQP's delta 1e-6 the refinement of their reduced system converges too slowly to
        pass the termination test, so they needed thousands of iterations per ADMM step, and a
        wrong guess at the limits of one node needs several corrections.  Measured on 100
        feeders x 24 h: feeder QP time 15.6 s -> 5.3 s over the run, same prices.
    """

    rho: float = 5.0
    alpha: float = 1.6
    eps_abs: float = 1e-5
    eps_rel: float = 1e-6
    price_tol: float = 1e-4
    infeasible_price: float = 1e4
    infeasible_window: int = 10
    max_iter: int = 3000
    balance_mu: float = 10.0
    balance_tau: float = 2.0
    balance_every: int = 10
    balance_until: int = 1000
    return_unconverged: bool = False
    checkpoint: str | None = None
    checkpoint_every: int = 25
    progress: bool = False
    loss_check_factor: float = 100.0  # losses are checked once residuals are within this factor of the tolerances
    price_start: bool = True  # initial prices from a transmission solve at the feeders' base imports
    callback: Callable[[int, Any], None] | None = None  # called as callback(iteration, admm) after each iteration
    qp: QPSettings = field(default_factory=lambda: QPSettings(eps_abs=1e-7, eps_rel=1e-7, scaling=0, max_iter=50000,
                                                              polish_delta=1e-7, polish_active_set_iter=10,
                                                              polish_refine_tol=0.1))


class _GapWatch:
    """Signature of an infeasible coupling: a constant, non-zero ADMM increment and runaway prices."""

    GAP_MW = 1e-3
    RTOL = 1e-6

    def __init__(self, window: int, price_cap: float) -> None:
        self.window, self.price_cap = int(window), float(price_cap)
        self.prev: np.ndarray | None = None
        self.count = 0

    def reset(self) -> None:
        self.prev, self.count = None, 0

    def update(self, du: np.ndarray, price: np.ndarray) -> bool:
        """True when the gap ``du`` has been constant for ``window`` iterations and prices passed the cap."""
        g = float(np.max(np.abs(du), initial=0.0))
        stable = self.prev is not None and g > self.GAP_MW and \
            float(np.max(np.abs(du - self.prev))) <= self.RTOL * g
        self.count = self.count + 1 if stable else 0
        self.prev = du.copy()
        at_gap = np.abs(du) >= 0.5 * g
        return self.count >= self.window and bool(np.any(np.abs(price[at_gap]) >= self.price_cap))


class _Coupling:
    """Transmission-side ADMM block: the imports ``d`` and the penalty ``rho/2 ||d - c||^2``."""

    def __init__(self, tmat: Any, n_inst: int, T: int) -> None:
        self.d = cp.Variable((n_inst, T), name="Substation-p_transmission")
        self.w = cp.Parameter(nonneg=True, name="ADMM-sqrt_half_rho")
        self.lin = cp.Parameter((n_inst, T), name="ADMM-linear")
        self.s = cp.Variable(name="ADMM-linear_term")
        self.transmission_demand = tmat @ self.d
        # the parameterized linear term sits in a constraint (see dcopf.formulation.linear_cost)
        self._cons: list[cp.Constraint] = [self.s == cp.sum(cp.multiply(self.lin, self.d))]
        self.objective = cp.sum_squares(self.w * self.d) + self.s

    def constraints(self) -> list[cp.Constraint]:
        return self._cons

    def remap(self, sc: dict[int, cp.Constraint]) -> None:
        self._cons = [sc[id(c)] for c in self._cons]


class _Transmission(DCOPF):
    """The transmission subproblem: the DC-OPF with each feeder replaced by its ADMM block."""

    def __init__(self, owner: ADMM, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(owner.td.transmission, **kwargs)

    def _extension(self, T: int, elastic: bool) -> _Coupling:
        fo = self.owner.fo
        return _Coupling(self.net.node_matrix(fo.inst_tnode), fo.n_inst, T)

    def _extension_couples_periods(self) -> bool:
        return True

    def _load_factor(self) -> np.ndarray:
        return self.owner._load_factor()

    def _set_extension_parameters(self, b: _Built, series: prof.Series, sl: slice) -> None:
        c = self.owner._c_param
        b.ext.w.value = np.sqrt(self.owner.rho / 2.0)
        b.ext.lin.value = -self.owner.rho * c[:, sl]


class ADMM(TDOPF):
    """Transmission and feeders solved by consensus ADMM; same Dataset as :class:`TDOPF`.

    Parameters
    ----------
    td : TDNetwork
    settings : ADMMSettings, optional
    executor : {"inprocess", "dask"}
        Where the feeder QPs run: this process (numba threads over feeders) or a Dask cluster.
    workers : int, optional
        Dask workers of a local cluster (``executor="dask"`` without ``scheduler``).
    scheduler : str, optional
        Address of an existing Dask scheduler (``"tcp://host:8786"``).
    **kwargs
        As :class:`TDOPF` (``hours``, ``losses``, ``period_hours``, ``solver``, ...).
    """

    def __init__(self, td: TDNetwork, settings: ADMMSettings | None = None, *, executor: str = "inprocess",
                 workers: int | None = None, scheduler: str | None = None, **kwargs: Any) -> None:
        self.settings = settings or ADMMSettings()
        if executor not in ("inprocess", "dask"):
            raise InputError(f"executor must be 'inprocess' or 'dask', got {executor!r}.")
        self.executor_name = executor
        self.workers, self.scheduler = workers, scheduler
        self.rho = float(self.settings.rho)
        self._c_param = np.zeros((len(td.feeders), int(kwargs.get("hours") or 1)))
        super().__init__(td, **kwargs)
        tkw = {k: v for k, v in kwargs.items() if k not in ("losses", "loss_max_iter", "loss_tol_mw", "vm_tol_pu")}
        self.tsub = _Transmission(self, **tkw)

    # the centralized problem is never built: the parent's recipe hook returns the ADMM block
    def _build(self, shed: bool, elastic: bool, T: int) -> _Built:  # type: ignore[override]
        return None  # type: ignore[return-value]

    # ------------------------------------------------------------------ feeder side
    def _feeder_inputs(self) -> dict[str, np.ndarray]:
        fo, fs, el = self.fo, self._fseries, self.fo.elements
        lm = fo.node_matrix(el["load"]["node"])
        return dict(pfix=np.asarray(lm @ fs.load_p), qfix=np.asarray(lm @ fs.load_q), pv_avail=fs.pv_avail,
                    flex_energy=fs.flex_p.sum(axis=1) * self.dt)

    def _build_feeders(self, target: np.ndarray) -> None:
        inp = self._feeder_inputs()
        self._groups = FQ.groups(self.fo)
        self._batches: list[QPBatch] = []
        for g in self._groups:
            self._batches.append(FQ.build_batch(g, self.fo, self.T, self.dt, self._lt, rho=self.rho,
                                                target=target[g.members], **inp))
        # static data to the executor once per new matrices; the warm starts and active sets carry over
        for k, (g, b) in enumerate(zip(self._groups, self._batches, strict=True)):
            self._exec.install(k, b, self.settings.qp, _psub_cols(g, self.T), _psub_hessian_pos(g, b, self.T))

    def _set_target(self, target: np.ndarray, rho_changed: bool) -> None:
        for k, (g, b) in enumerate(zip(self._groups, self._batches, strict=True)):
            cs = _psub_cols(g, self.T)
            b.q[:, cs] = -self.rho * target[g.members]
            if rho_changed:
                b.P_data[:, _psub_hessian_pos(g, b, self.T)] = self.rho
                self._exec.refactorize(k, self.rho)

    def _solve_feeders(self) -> list[StepOut]:
        """One solve of every feeder: only the substation columns of q go out and of x come back."""
        return self._exec.step([b.q[:, _psub_cols(g, self.T)] for g, b in zip(self._groups, self._batches,
                                                                               strict=True)])

    def _imports(self, res: list[StepOut]) -> np.ndarray:
        p = np.zeros((self.fo.n_inst, self.T))
        for g, r in zip(self._groups, res, strict=True):
            p[g.members] = r.xcols
        return p

    def _infeasible(self, gap: np.ndarray, it: int, price: np.ndarray) -> InfeasibleError:
        """InfeasibleError naming the substations and hours of the largest exchange gap (d - p, MW)."""
        fo, net = self.fo, self.net
        bus_of_node = np.full(net.n_node, -1, dtype=np.int64)
        bus_of_node[net.bus_node] = net.bus_ids
        order = np.argsort(-np.abs(gap), axis=None)
        big = order[np.abs(gap.ravel()[order]) > _GapWatch.GAP_MW]
        short: list[tuple[object, object, float]] = []
        for k in big:
            i, t = np.unravel_index(int(k), gap.shape)
            short.append((f"{fo.names[i]} (bus {bus_of_node[fo.inst_tnode[i]]})", int(t), float(-gap[i, t])))
        parts = [f"{name} hour {t}: {mw:+.3f} MW" for name, t, mw in short[:8]]
        more = f" (+{len(short) - 8} more)" if len(short) > 8 else ""
        return InfeasibleError(
            f"the T&D problem is infeasible: after {it} ADMM iterations the transmission and feeder exchanges "
            f"still differ by a constant gap while substation prices passed {self.settings.infeasible_price:g} "
            f"$/MWh (up to {float(np.max(np.abs(price))):.3g}); exchange gap between the closest feasible "
            f"feeder imports and transmission deliveries (+: the feeders need more than the transmission can "
            f"deliver, -: they must export more than it can take): " + "; ".join(parts) + more
            + ". Raise transmission generation or branch limits there, add feeder flexibility, or run the "
              "centralized TDOPF for the exact shortfall.", shortfall=short)

    # ------------------------------------------------------------------ solve
    def solve(self, profiles: Mapping[tuple[str, str], Any] | None = None, *, resume: bool = False,
              warm_start: xr.Dataset | None = None) -> xr.Dataset:
        """Run ADMM to convergence; see :class:`ADMMSettings` for the stopping rules."""
        t0 = time.perf_counter()
        T, dt = self.T, self.dt
        demo = self.demo_profiles if self.demo_profiles is not None else (T > 1 and not profiles)
        self._fseries = self._feeder_series(T, demo)
        timeidx = prof.make_time(T, dt, self.start, profiles)
        series = prof.resolve(self.net, profiles, T, timeidx, demo=demo)
        self._exec = _executor(self.executor_name, self.workers, self.scheduler)
        try:
            return self._run_admm(series, timeidx, t0, resume, warm_start)
        finally:
            self._exec.close()

    def _run_admm(self, series: prof.Series, timeidx: Any, t0: float, resume: bool,
                  warm_start: xr.Dataset | None) -> xr.Dataset:
        s, T, dt, fo = self.settings, self.T, self.dt, self.fo
        fingerprint = _fingerprint(self.net, fo, T, dt, self.losses, s, (series, self._fseries)) \
            if (resume or s.checkpoint) else ""
        st_ck: dict[str, np.ndarray] | None = None
        if resume:  # checked before any work: a wrong or damaged checkpoint fails at once
            if not s.checkpoint or not Path(s.checkpoint).exists():
                raise InputError(f"resume=True needs an existing checkpoint file; {s.checkpoint!r} does not exist.")
            st_ck = _load_checkpoint(s.checkpoint, fo.n_inst, T, fo.n_branch, fingerprint)
        base = self._ac_at(self._base_withdrawal())
        p = base.p_import.copy()
        u = np.zeros_like(p)
        if warm_start is not None and "p_substation" in warm_start:
            p = np.asarray(warm_start.p_substation.values.T, dtype=float).copy()
            lmp = np.asarray(warm_start.lmp.values.T)[self.net.bus_node][fo.inst_tnode] \
                if "lmp" in warm_start else np.zeros_like(p)
            u = -lmp * dt / self.rho
        elif s.price_start:
            # start from the transmission prices with each feeder's AC base import as fixed demand
            # (one transmission solve with a stiff penalty): ADMM then only corrects the prices
            rho0 = self.rho
            self.rho, self._c_param = 100.0 * rho0, p.copy()
            try:
                raw0 = self._solve_transmission(series)
            finally:
                self.rho = rho0
            u = -raw0.lam[fo.inst_tnode] * dt / self.rho
        self._lt = LD.LossTerms.zero(fo.n_branch, T)
        if self.losses:
            self._update_losses(base, curvature=False)
        start_it = 0
        hist: dict[str, list[float]] = {k: [] for k in ("primal_residual", "dual_residual", "rho",
                                                        "max_price_change", "seconds")}
        losses_settled = not self.losses
        loss_updates = 0
        if st_ck is not None:
            p, u, self.rho, start_it = st_ck["p"], st_ck["u"], float(st_ck["rho"]), int(st_ck["iteration"])
            self._lt = LD.LossTerms(**{k: st_ck["lt_" + k] for k in ("aP", "aQ", "aW", "prox", "P0", "Q0")})
            losses_settled, loss_updates = bool(st_ck["losses_settled"]), int(st_ck["loss_updates"])
            hist = {k: list(st_ck["hist_" + k]) for k in hist}
        self._build_feeders(p + u)
        price_prev = -self.rho * u / dt
        if st_ck is not None:
            price_prev = st_ck["price_prev"]
            # the warm starts, the QP step sizes the solver had adapted and its polishing active sets: the next
            # solves start where they left off
            for kb in range(len(self._batches)):
                w = (st_ck[f"w{kb}_x"], st_ck[f"w{kb}_z"], st_ck[f"w{kb}_y"]) if f"w{kb}_x" in st_ck else None
                self._exec.restore(kb, w, {key: st_ck[f"w{kb}_{key}"] for key in ("rho", "act", "known")
                                          if f"w{kb}_{key}" in st_ck})
        n_c = p.size
        it = start_it
        res: list[StepOut] = []
        raw_t: _Raw | None = None
        bar = self.progress = _Progress(s.progress, s.max_iter, start_it)
        converged = False
        watch = _GapWatch(s.infeasible_window, s.infeasible_price)
        for it in range(start_it + 1, s.max_iter + 1):
            ti = time.perf_counter()
            # transmission update
            self._c_param = p - u
            raw_t = self._solve_transmission(series)
            d = self._d_value
            dh = s.alpha * d + (1 - s.alpha) * p
            target = dh + u
            self._set_target(target, rho_changed=False)
            res = self._solve_feeders()
            rho_used = self.rho
            self._check_feeders(res, it)
            p_new = self._imports(res)
            du = dh - p_new
            u = u + du
            r_norm = float(np.linalg.norm(d - p_new))
            s_norm = float(self.rho * np.linalg.norm(p_new - p))
            price = -self.rho * u / dt
            dprice = float(np.max(np.abs(price - price_prev), initial=0.0))
            price_prev = price
            p = p_new
            eps_pri = np.sqrt(n_c) * s.eps_abs + s.eps_rel * max(np.linalg.norm(d), np.linalg.norm(p))
            eps_dual = np.sqrt(n_c) * s.eps_abs + s.eps_rel * np.linalg.norm(self.rho * u)
            for k, val in (("primal_residual", r_norm), ("dual_residual", s_norm), ("rho", self.rho),
                           ("max_price_change", dprice), ("seconds", time.perf_counter() - ti)):
                hist[k].append(val)
            # how far from the stopping test: > 1 until every residual is within its tolerance
            bar(r_norm, s_norm, self.rho, dprice, max(r_norm / eps_pri, s_norm / eps_dual, dprice / s.price_tol))
            if watch.update(du, price):
                bar.close()
                raise self._infeasible(du / s.alpha, it, price)
            tight = r_norm <= eps_pri and s_norm <= eps_dual and dprice <= s.price_tol
            lf = s.loss_check_factor
            loose = r_norm <= lf * eps_pri and s_norm <= lf * eps_dual and dprice <= lf * s.price_tol
            if tight and not self.losses:
                converged = True
                break
            if self.losses and (tight or (loose and not losses_settled)):
                # residuals small at these loss terms: check them against the AC power flow (already at a
                # loose tolerance, so most loss updates happen before ADMM has converged tightly)
                self._fraw = self._feeder_raw(self._exec.results(), raw_t, target)
                ac = self._ac_at((self._fraw["wp"], self._fraw["wq"]))
                gap_mw = float(np.max(np.abs(ac.p_import - self._fraw["psub"]), initial=0.0))
                gap_vm = float(np.max(np.abs(ac.vm_pu - np.sqrt(np.maximum(self._fraw["v_full"], 0))), initial=0.0))
                self._loss_gaps = (gap_mw, gap_vm)
                if gap_mw <= self.loss_tol_mw and gap_vm <= self.vm_tol_pu:
                    losses_settled = True
                    if tight:
                        converged = True
                        break
                else:
                    losses_settled = False
                    loss_updates += 1
                    if loss_updates > self.loss_max_iter:
                        raise ConvergenceError(f"feeder losses did not settle in {self.loss_max_iter} AC updates "
                                               f"(gaps {gap_mw:.2e} MW, {gap_vm:.2e} pu).")
                    self._update_losses(ac, curvature=True)
                    self._build_feeders(target)
                    watch.reset()  # same patterns, new values: the last solution stays a warm start
            elif s.balance_every and it % s.balance_every == 0 and it <= s.balance_until:
                factor = 1.0
                if r_norm > s.balance_mu * s_norm:
                    factor = s.balance_tau
                elif s_norm > s.balance_mu * r_norm:
                    factor = 1.0 / s.balance_tau
                if factor != 1.0:
                    self.rho *= factor
                    u = u / factor
                    self._set_target(target, rho_changed=True)
            if s.checkpoint and it % s.checkpoint_every == 0:
                _save_checkpoint(s.checkpoint, p=p, u=u, rho=self.rho, iteration=it, lt=self._lt,
                                 losses_settled=losses_settled, loss_updates=loss_updates, hist=hist,
                                 price_prev=price_prev, warm=[(r.x, r.z, r.y) for r in self._exec.results()],
                                 qp_state=self._exec.qp_state(),
                                 fingerprint=fingerprint)
            if s.callback is not None:
                s.callback(it, self)
        bar.close()
        log.info("ADMM %s after %d iterations (%.1f s)", "converged" if converged else "stopped", it,
                 time.perf_counter() - t0)
        if not converged and not s.return_unconverged:
            raise ConvergenceError(
                f"ADMM stopped at its iteration limit ({s.max_iter}) with primal residual "
                f"{hist['primal_residual'][-1]:.3e} MW, dual residual {hist['dual_residual'][-1]:.3e}, max price "
                f"change {hist['max_price_change'][-1]:.3e} $/MWh; raise max_iter or pass return_unconverged=True.",
            )
        assert raw_t is not None
        self.rho = rho_used  # the penalty of the last feeder solve (balancing may have moved it since)
        full = self._exec.results()
        self._fraw = self._feeder_raw(full, raw_t, target)
        ds = self.tsub._result(raw_t, series, timeidx)
        self._solves += 1
        ds = self._add_feeders(ds, timeidx)
        gaps = getattr(self, "_loss_gaps", (0.0, 0.0))
        ds.attrs.update(objective=self._objective(full, raw_t), method="admm", admm_converged=int(converged),
                        admm_iterations=it, loss_iterations=loss_updates + 1 if self.losses else 0,
                        loss_gap_mw=gaps[0], loss_gap_vm_pu=gaps[1], executor=self.executor_name,
                        feeder_losses="ac_loss_coefficients" if self.losses else "lossless_lindistflow",
                        total_s=time.perf_counter() - t0, build_s=self.tsub.build_s,
                        **{f"executor_{k}": v for k, v in self._exec.stats().items()})
        its = np.arange(1, len(hist["primal_residual"]) + 1)
        units = {"primal_residual": "MW", "dual_residual": "$", "rho": "$/MW^2", "max_price_change": "$/MWh",
                 "seconds": "s"}
        for k, vals in hist.items():
            ds[f"admm_{k}"] = xr.DataArray(np.asarray(vals), dims=("iteration",), coords={"iteration": its},
                                           attrs={"units": units[k]})
        return ds

    def _solve_transmission(self, series: prof.Series) -> _Raw:
        tsub = self.tsub
        b = tsub._built
        tsub._set_parameters(b, series, 0)
        tsub._solve_checked(b, series, diagnose=False)
        raw = tsub._collect(b)
        self._d_value = _val(b.ext.d)
        return raw

    def _check_feeders(self, res: list[StepOut], it: int) -> None:
        for g, r in zip(self._groups, res, strict=True):
            bad = np.flatnonzero(r.status != 1)
            if bad.size:
                names = [self.fo.names[i] for i in g.members[bad[:5]]]
                nan = bool((r.status[bad] == -1).any())
                raise (ConvergenceError if not nan else NodalOptError)(
                    f"ADMM iteration {it}: the feeder subproblem of {names} "
                    + ("produced NaN/inf (aborted)" if nan else
                       f"ended with QP status {r.status[bad[:5]].tolist()} (0: iteration limit "
                       f"{self.settings.qp.max_iter}, -2/-3: infeasible) after {r.iterations[bad[:5]].tolist()} "
                       f"iterations, residuals {r.prim_res[bad[:5]].tolist()} / {r.dual_res[bad[:5]].tolist()}")
                    + "; check the feeder data or loosen settings.qp.")

    def _feeder_raw(self, res: list[QPResult], raw_t: _Raw, target: np.ndarray) -> dict[str, Any]:
        """Collect feeder primal values and duals in the layout TDOPF's result code reads."""
        fo, T, dt = self.fo, self.T, self.dt
        M, Bn = fo.n_node, fo.n_branch
        out = {k: np.zeros((M, T)) for k in ("pbal", "qbal")}
        vdef, vmax, vmin = (np.zeros((Bn, T)) for _ in range(3))
        P, Q, V = (np.zeros((Bn, T)) for _ in range(3))
        psub, qsub = np.zeros((fo.n_inst, T)), np.zeros((fo.n_inst, T))
        el = fo.elements
        inj = {k: np.zeros((el[k]["names"].size, T)) for k in ("pv", "dg", "flex", "ev")}
        st = np.zeros((el["st"]["names"].size, T))
        poly_rows = np.flatnonzero(np.isfinite(fo.rate))
        poly = np.zeros((LD.POLYGON_SIDES * poly_rows.size, T))
        poly_pos = np.full(fo.n_branch, -1, np.int64)
        poly_pos[poly_rows] = np.arange(poly_rows.size)
        sub_rows = np.flatnonzero(np.isfinite(fo.inst_sub_mva))
        sub = np.zeros((LD.POLYGON_SIDES * sub_rows.size, T))
        sub_pos = np.full(fo.n_inst, -1, np.int64)
        sub_pos[sub_rows] = np.arange(sub_rows.size)
        grad_p, grad_q = np.zeros((Bn, T)), np.zeros((Bn, T))
        lmp_root = np.zeros((fo.n_inst, T))
        for g, r in zip(self._groups, res, strict=True):
            lay, K, n = g.layout, g.members.size, g.n_node
            B = n - 1

            def xs(name: str, cnt: int, r_: QPResult = r, lay_: FQ.Layout = lay, K_: int = K) -> np.ndarray:
                return r_.x[:, lay_.cslice(name)].reshape(K_, cnt, T)

            def ys(name: str, cnt: int, r_: QPResult = r, lay_: FQ.Layout = lay, K_: int = K) -> np.ndarray:
                return r_.y[:, lay_.rslice(name)].reshape(K_, cnt, T) / dt

            out["pbal"][g.nodes] = ys("pbal", n)
            out["qbal"][g.nodes] = ys("qbal", n)
            vdef[g.branches] = ys("vdef", B)
            yv = ys("vlim", B)
            vmax[g.branches] = np.maximum(yv, 0.0)
            vmin[g.branches] = np.maximum(-yv, 0.0)
            P[g.branches], Q[g.branches], V[g.branches] = xs("P", B), xs("Q", B), xs("v", B)
            ps = xs("psub", 1)[:, 0, :]
            psub[g.members], qsub[g.members] = ps, xs("qsub", 1)[:, 0, :]
            lmp_root[g.members] = self.rho * (ps - target[g.members]) / dt
            for k in ("pv", "dg", "flex", "ev"):
                cnt = g.el[k].shape[1]
                if cnt:
                    inj[k][g.el[k]] = xs(k, cnt)
            ns = g.el["st"].shape[1]
            if ns:
                st[g.el["st"]] = xs("pd", ns) - xs("pc", ns)
            rated = np.flatnonzero(np.isfinite(fo.rate[g.branches[0]]))
            if rated.size:
                yp = ys("poly", LD.POLYGON_SIDES * rated.size)  # (K, sides*nr, T), side-major
                yp = yp.reshape(K, LD.POLYGON_SIDES, rated.size, T)
                glob = poly_pos[g.branches[:, rated]]  # (K, nr)
                for side in range(LD.POLYGON_SIDES):  # 12 sides, not elements
                    poly[side * poly_rows.size + glob] = np.maximum(yp[:, side], 0.0)
            if lay.rows["sub"][1]:
                ysb = np.maximum(ys("sub", LD.POLYGON_SIDES), 0.0)  # (K, sides, T)
                for side in range(LD.POLYGON_SIDES):
                    sub[side * sub_rows.size + sub_pos[g.members]] = ysb[:, side]
            w2 = 2 * self._lt.prox[g.branches] ** 2
            grad_p[g.branches] = w2 * (xs("P", B) - self._lt.P0[g.branches]) / dt
            grad_q[g.branches] = w2 * (xs("Q", B) - self._lt.Q0[g.branches]) / dt
        v_full = np.zeros((M, T))
        v_full[fo.child] = V
        v_full[fo.inst_node0] = fo.v_root[fo.inst_node0, None]
        wp, wq = self._dispatch_withdrawals(inj, st, slice(None))
        duals = FeederDuals(pbal=out["pbal"], qbal=out["qbal"], vdef=vdef, vmax=vmax, vmin=vmin, poly=poly,
                            poly_rows=poly_rows, sub=sub, sub_rows=sub_rows, lmp_root=lmp_root,
                            grad_p=grad_p, grad_q=grad_q)
        return dict(duals=duals, P=P, Q=Q, v_full=v_full, psub=psub, qsub=qsub, inj=inj, st=st,
                    wp=np.asarray(wp), wq=np.asarray(wq), e=None)

    def _objective(self, res: list[QPResult], raw_t: _Raw) -> float:
        """Transmission cost + feeder cost (the ADMM penalty terms removed)."""
        tsub = self.tsub
        b = tsub._built
        pen = float(np.asarray(b.ext.objective.value)) if b.ext.objective.value is not None else 0.0
        total = raw_t.objective - pen
        for g, bt_, r in zip(self._groups, self._batches, res, strict=True):
            obj = _qp_objective(bt_, r.x)
            cs = g.layout.col("psub", 0, np.arange(self.T))
            ps = r.x[:, cs]
            tgt = -bt_.q[:, cs] / self.rho
            obj -= 0.5 * self.rho * (ps**2).sum(axis=1) - self.rho * (tgt * ps).sum(axis=1)
            # constant of the loss-curvature term prox^2 ((P - P0)^2 + (Q - Q0)^2), not in 1/2 x'Px + q'x
            lt, br = self._lt, g.branches
            obj += (lt.prox[br] ** 2 * (lt.P0[br] ** 2 + lt.Q0[br] ** 2)).sum(axis=(1, 2))
            total += float(obj.sum())
        return total


def _psub_cols(g: FQ.Group, T: int) -> np.ndarray:
    """Columns of a group's substation import (one per period): the variables ADMM drives."""
    return np.asarray(g.layout.col("psub", 0, np.arange(T)), dtype=np.int64)


def _psub_hessian_pos(g: FQ.Group, b: QPBatch, T: int) -> np.ndarray:
    """Positions in ``P_data`` of the substation imports' diagonal entries (the ADMM penalty rho)."""
    p = b.pattern
    out = []
    for c in _psub_cols(g, T):  # T columns
        lo, hi = p.P_indptr[c], p.P_indptr[c + 1]
        out.append(lo + int(np.flatnonzero(p.P_indices[lo:hi] == c)[0]))
    return np.asarray(out, dtype=np.int64)


def _qp_objective(b: QPBatch, x: np.ndarray) -> np.ndarray:
    """1/2 x'Px + q'x per problem (P stored as its upper triangle)."""
    p = b.pattern
    col = np.repeat(np.arange(p.n), np.diff(p.P_indptr))
    row = p.P_indices
    xr_, xc = x[:, row], x[:, col]
    quad = (b.P_data * xr_ * xc).sum(axis=1)
    diag = (row == col)
    quad -= 0.5 * (b.P_data[:, diag] * xr_[:, diag] * xc[:, diag]).sum(axis=1)
    return np.asarray(quad + (b.q * x).sum(axis=1))


# ---------------------------------------------------------------------- executors
class _InProcess:
    """Feeder QPs in this process: numba kernels, threads over feeders; one resident chunk per batch."""

    def __init__(self) -> None:
        self._chunks: dict[int, ChunkState] = {}
        self._steps = 0

    def install(self, k: int, b: QPBatch, settings: QPSettings, cols: np.ndarray, p_pos: np.ndarray) -> None:
        prev = self._chunks.get(k)
        kw: dict[str, Any] = {}
        if prev is not None and prev.b.K == b.K:
            act, known = prev.f.active_sets()
            kw = dict(warm=prev.warm, act=act, known=known)
        self._chunks[k] = ChunkState(b, settings, cols, p_pos, **kw)

    def refactorize(self, k: int, value: float) -> None:
        self._chunks[k].refactorize(value)

    def step(self, qcols: list[np.ndarray]) -> list[StepOut]:
        self._steps += 1
        return [self._chunks[k].step(q) for k, q in enumerate(qcols)]

    def results(self) -> list[QPResult]:
        return [self._chunks[k].result() for k in sorted(self._chunks)]

    def qp_state(self) -> list[dict[str, np.ndarray]]:
        return [self._chunks[k].state() for k in sorted(self._chunks)]

    def restore(self, k: int, warm: Any, state: dict[str, np.ndarray]) -> None:
        c = self._chunks[k]
        c.warm = warm
        if "rho" in state and state["rho"].shape == c.f.rho.shape:
            c.f.rho[:] = state["rho"]
        if "act" in state and "known" in state and state["act"].shape == c.f.polish_act.shape:
            c.f.set_active_sets(state["act"], state["known"])

    def stats(self) -> dict[str, float]:
        return {"steps": float(self._steps), "resident_bytes": float(sum(c.nbytes() for c in self._chunks.values()))}

    def close(self) -> None:
        self._chunks.clear()


def _executor(name: str, workers: int | None, scheduler: str | None) -> Any:
    if name == "inprocess":
        return _InProcess()
    from .dask_exec import DaskExecutor

    return DaskExecutor(workers=workers, scheduler=scheduler)


#: iterations of residual history the convergence estimate fits (and the fewest it needs)
ETA_WINDOW, ETA_MIN = 20, 5
#: a rise of the distance to the stopping test by more than this (decades) restarts the estimate
ETA_JUMP = 0.5


def expected_iterations(it: int, log_ratio: Sequence[float], max_iter: int) -> int | None:
    """The iteration at which ADMM is expected to converge, from the decay of its residuals.

    ``log_ratio`` holds, for the iterations up to ``it``, ``log10`` of how far the run is from its
    stopping test: ``max(r / eps_pri, s / eps_dual, dprice / price_tol)`` (converged at <= 0).  ADMM
    converges linearly on these problems, so a least-squares line through the last
    :data:`ETA_WINDOW` values (after the last rise by more than :data:`ETA_JUMP` decades: a loss
    update or a penalty change) is extrapolated to 0.  ``None`` (unknown) with fewer than
    :data:`ETA_MIN` values or residuals that are not decreasing; capped at ``max_iter``.
    """
    y = np.asarray(log_ratio[-ETA_WINDOW:], dtype=float)
    if y.size and y[-1] <= 0.0:
        return it
    # a loss update or a penalty change restarts the decay: fit only what followed the last jump up
    jumps = np.flatnonzero(np.diff(y) > ETA_JUMP)
    if jumps.size:
        y = y[jumps[-1] + 1:]
    if y.size < ETA_MIN or not np.isfinite(y).all():
        return None
    x = np.arange(y.size, dtype=float)
    slope = float(np.polyfit(x, y, 1)[0])
    if slope >= 0.0:
        return None
    return int(min(max_iter, it + max(1, math.ceil(y[-1] / -slope))))


class _Progress:
    """ADMM progress: a bar whose total is the expected iteration count (re-estimated every
    iteration from the residual decay, see :func:`expected_iterations`), not ``max_iter``."""

    def __init__(self, on: bool, max_iter: int, start: int) -> None:
        self.max_iter, self.it = max_iter, start
        self.log_ratio: list[float] = []
        self.bar = progress_bar(None, "ADMM", "it", initial=start, enabled=on, delay=0.0)
        self.totals: list[int | None] = []  # estimate after each iteration (kept for tests)

    def __call__(self, r: float, s: float, rho: float, dp: float, ratio: float) -> None:
        self.it += 1
        self.log_ratio.append(math.log10(ratio) if ratio > 0 else -math.inf)
        est = expected_iterations(self.it, self.log_ratio, self.max_iter)
        self.totals.append(est)
        if est is not None:
            self.bar.total = est
        elif self.bar.total is not None and self.bar.total <= self.it:
            self.bar.total = None  # the old estimate is used up: count without an ETA until the next one
        self.bar.set_postfix_str(f"r={r:.1e} s={s:.1e} rho={rho:.2g} dprice={dp:.1e}")
        self.bar.update(1)
        if self.it % 100 == 0:
            log.info("ADMM iteration %d: primal residual %.2e MW, dual %.2e, max price change %.2e $/MWh, "
                     "expected to converge at iteration %s", self.it, r, s, dp, est if est is not None else "?")

    def close(self) -> None:
        self.bar.total = self.bar.n
        self.bar.refresh()
        self.bar.close()


def _save_checkpoint(path: str, *, p: np.ndarray, u: np.ndarray, rho: float, iteration: int, lt: LD.LossTerms,
                     losses_settled: bool, loss_updates: int, hist: dict[str, list[float]], price_prev: np.ndarray,
                     warm: list[Any], qp_state: list[dict[str, np.ndarray]], fingerprint: str = "") -> None:
    """Coordinator state as a plain .npz (arrays only, no pickles), written atomically.

    Everything the next iterate depends on is saved (consensus state, penalty, loss terms and the
    feeder QPs' warm starts), so a resumed run repeats the uninterrupted run's iterates.
    """
    tmp = Path(str(path) + ".tmp.npz")
    arrays = {"p": p, "u": u, "rho": np.array(rho), "iteration": np.array(iteration),
              "losses_settled": np.array(int(losses_settled)), "loss_updates": np.array(loss_updates),
              "price_prev": price_prev, "fingerprint": np.array(fingerprint)}
    for k, w in enumerate(warm):
        if w is not None:
            arrays[f"w{k}_x"], arrays[f"w{k}_z"], arrays[f"w{k}_y"] = w
    for k, st in enumerate(qp_state):
        arrays.update({f"w{k}_{key}": v for key, v in st.items()})
    arrays.update({"lt_" + k: v for k, v in asdict(lt).items()})
    arrays.update({"hist_" + k: np.asarray(v, dtype=float) for k, v in hist.items()})
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


#: settings that change the iterates (a resumed run must use the same); stopping rules may differ
_FINGERPRINT_SETTINGS = ("rho", "alpha", "eps_abs", "eps_rel", "balance_mu", "balance_tau", "balance_every",
                         "balance_until", "loss_check_factor", "price_start", "qp")


def _digest(h: Any, obj: Any, depth: int = 0) -> None:
    """Feed ``obj`` (arrays, dataclasses, dicts, lists, scalars) into the hash ``h``, deterministically."""
    if depth > 12:
        h.update(b"<deep>")
        return
    if isinstance(obj, np.ndarray):
        h.update(f"nd{obj.dtype.str}{obj.shape}".encode())
        if obj.dtype == object:
            h.update("\x1f".join(map(str, obj.ravel().tolist())).encode())
        else:
            h.update(np.ascontiguousarray(obj).tobytes())
    elif is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        for f in fields(obj):
            h.update(f.name.encode())
            _digest(h, getattr(obj, f.name), depth + 1)
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _digest(h, obj[k], depth + 1)
    elif isinstance(obj, list | tuple):
        h.update(f"seq{len(obj)}".encode())
        for v in obj:
            _digest(h, v, depth + 1)
    elif isinstance(obj, pd.Index):
        _digest(h, np.asarray(obj.astype(str), dtype=object), depth + 1)
    elif isinstance(obj, pd.DataFrame | pd.Series):
        _digest(h, obj.to_numpy(), depth + 1)
    elif obj is None or isinstance(obj, str | int | float | bool | np.number | np.bool_):
        h.update(repr(obj).encode())
    elif hasattr(obj, "__dict__"):
        _digest(h, {k: v for k, v in vars(obj).items() if not k.startswith("_")}, depth + 1)
    else:
        h.update(type(obj).__name__.encode())


def _fingerprint(net: Any, forest: Any, T: int, dt: float, losses: bool, settings: ADMMSettings,
                 series: Any = None) -> str:
    """SHA-256 of what a checkpoint's state depends on: the networks, the horizon, the load series, the settings."""
    h = hashlib.sha256(b"nodalopt-admm-checkpoint-1")
    _digest(h, net)
    _digest(h, forest)
    _digest(h, series)
    _digest(h, {"T": int(T), "dt": float(dt), "losses": bool(losses)})
    _digest(h, {k: getattr(settings, k) for k in _FINGERPRINT_SETTINGS})
    return h.hexdigest()


#: arrays every checkpoint holds (more per feeder batch and per history series)
_CHECKPOINT_KEYS = ("p", "u", "rho", "iteration", "losses_settled", "loss_updates", "price_prev", "fingerprint",
                    "lt_aP", "lt_aQ", "lt_aW", "lt_prox", "lt_P0", "lt_Q0")
#: largest checkpoint file read (bytes)
MAX_CHECKPOINT_BYTES = 4 * 1024**3


def _load_checkpoint(path: str, n_inst: int, T: int, n_branch: int, fingerprint: str = "") -> dict[str, np.ndarray]:
    """Read a checkpoint; a damaged file, or one written for another network, horizon or settings, is an InputError."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        raise InputError(f"checkpoint {path}: not a regular file; give the .npz the ADMM run wrote.")
    if p.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise InputError(f"checkpoint {path}: {p.stat().st_size} bytes, over the {MAX_CHECKPOINT_BYTES}-byte limit.")
    try:
        with np.load(path, allow_pickle=False) as z:
            st = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputError(f"checkpoint {path}: damaged or not a nodalopt ADMM checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); delete it and start without resume.") from None
    missing = [k for k in _CHECKPOINT_KEYS if k not in st]
    if missing:
        raise InputError(f"checkpoint {path}: not a complete nodalopt ADMM checkpoint (missing {missing[:5]}); "
                         "it was written by another program or an older nodalopt. Delete it and start without "
                         "resume.")
    if str(st["fingerprint"]) != fingerprint:
        raise InputError(f"checkpoint {path} was written for another network, horizon, load series or ADMM "
                         "settings (fingerprint differs); resume with the same inputs, or delete it.")
    if st["p"].shape != (n_inst, T) or st["lt_aP"].shape != (n_branch, T):
        raise InputError(f"checkpoint {path} was written for another problem (shapes {st['p'].shape}, "
                         f"{st['lt_aP'].shape}; expected {(n_inst, T)}, {(n_branch, T)}).")
    bad = [k for k, v in st.items() if v.dtype.kind == "f" and not np.isfinite(v).all() and not k.startswith("hist_")]
    if bad:
        raise InputError(f"checkpoint {path}: non-finite values in {bad[:5]}; the file is damaged. Delete it and "
                         "start without resume.")
    return st


def solve_admm(td: TDNetwork, *, hours: int | None = None, profiles: Mapping[tuple[str, str], Any] | None = None,
               settings: ADMMSettings | None = None, resume: bool = False, warm_start: xr.Dataset | None = None,
               **kwargs: Any) -> xr.Dataset:
    """Solve a :class:`TDNetwork` by ADMM (see :class:`ADMM`)."""
    return ADMM(td, settings, hours=hours, **kwargs).solve(profiles, resume=resume, warm_start=warm_start)


__all__ = ["ADMM", "ADMMSettings", "solve_admm"]
