"""The DC-OPF *recipe*: which families make up the problem, how it is solved,
and how a solution becomes a labeled result.  The equations live in
:mod:`nodalopt.dcopf.formulation`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
import xarray as xr

from .. import profiles as prof
from ..errors import InfeasibleError, InputError, SolverError, UnboundedError
from ..log import get_logger, progress_bar
from ..network import compile_network
from ..network.arrays import NetworkArrays
from ..network.examples import fixed_variant_hint
from ..results import build_dataset
from . import carbon_terms as CT
from . import formulation as F
from .degeneracy import unique_prices
from .numerics import cost_range_advice, cost_spread
from .prices import check_decomposition, decompose
from .solver import PRESOLVED_CLARABEL
from .state import SolvedState

log = get_logger(__name__)
DEFAULT_SOLVER = "CLARABEL"
#: Clarabel settings used by default (see README "Solver settings"): tighter
#: than Clarabel's own defaults so that duals are accurate to 1e-6 $/MWh, and
#: more iterations for large, badly scaled PGLib cases.
CLARABEL_DEFAULTS: dict[str, Any] = {
    "tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9,
    "max_iter": 400,
    # 10x Clarabel's default static regularisation: the KKT factorisation of case9241pegase
    # (benchmark fix-ups) otherwise breaks down ("NumericalError") near the optimum
    "static_regularization_constant": 1e-7,
    # Clarabel 0.11 picks the faer supernodal solver by default ("auto"); QDLDL is 2.5x faster on
    # 24-hour case1354pegase with ramps (0.45 vs 1.1 s per iteration) and as fast on case9241pegase
    "direct_solve_method": "qdldl",
    # iterative refinement of each KKT solve to 1e-10 instead of Clarabel's 1e-13/1e-12: 20 % less
    # solver time on case9241pegase (0.46 -> 0.39 s); unique LMPs move by < 1e-4 $/MWh, every PGLib
    # case stays optimal and within 1e-4 of its baseline
    "iterative_refinement_reltol": 1e-10,
    "iterative_refinement_abstol": 1e-10,
}
#: Constraint screening of re-solves (see DCOPF.solve): limits slack by more than this fraction in
#: the previous solution are left out (their bound is set to SCREENED, which Clarabel's presolve
#: removes); rounds of adding back violated limits before the full problem is solved instead.
SCREEN_MARGIN = 0.3
SCREEN_ROUNDS = 3
SCREEN_DILATE = 1
SCREENED = 1e30
#: Clarabel tolerances of the first screening pass (it only has to find the binding limits)
SCREEN_LOOSE: dict[str, float] = {"tol_gap_abs": 1e-4, "tol_gap_rel": 1e-4, "tol_feas": 1e-4}


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` (rows, T) widened by ``k`` periods on each side."""
    out = mask.copy()
    for s in range(1, k + 1):
        out[:, s:] |= mask[:, :-s]
        out[:, :-s] |= mask[:, s:]
    return out
#: Objective (and row) scaling handed to the solver, per solver; see
#: formulation.ScaledProblem.  Clarabel only: HiGHS' absolute tolerances are in
#: objective units and need no help.
OBJECTIVE_SCALE: dict[str, float] = {"CLARABEL": 1e-2}
ELASTIC_PENALTY = 1e5  # $/MWh for the elastic re-solve that locates infeasibility
#: statuses that end a solve: an optimum or a certificate (anything else is retried, then an error)
_DECIDED = (cp.OPTIMAL, cp.INFEASIBLE, cp.UNBOUNDED)


def _val(x: cp.Expression | None) -> np.ndarray:
    """Value of a solved cvxpy expression as a float array."""
    if x is None or x.value is None:
        raise SolverError("internal: no value for a solved variable", status="no_value")
    return np.asarray(x.value, dtype=float)


@dataclass
class _Built:
    problem: cp.Problem
    vars: F.Vars
    par: F.Params
    balance: cp.Constraint
    flow_rows: np.ndarray
    flow_cons: list[cp.Constraint]
    ang_rows: np.ndarray
    ang_cons: list[cp.Constraint]
    cap: cp.Constraint | None = None
    T: int = 1
    ext: Any = None  # a subclass's extra families (e.g. distribution feeders), see DCOPF._extension


@dataclass
class _Raw:
    """Primal and dual values of one solve (or of per-period solves stacked along time)."""

    lam: np.ndarray  # (N, T) $/MWh
    mu: np.ndarray  # (n_branch, T)
    nu: np.ndarray  # (n_branch, T)
    theta: np.ndarray  # (N, T)
    p: np.ndarray  # (G, T)
    shed: np.ndarray  # (N, T)
    pc: np.ndarray | None
    pd: np.ndarray | None
    e: np.ndarray | None
    objective: float
    cap_dual: float | None
    dc: np.ndarray | None = None  # (D, T) MW withdrawn at the from bus of each DC link


def _stack(parts: list[_Raw]) -> _Raw:
    """Per-period results side by side along time (only for uncoupled periods: no storage, no cap)."""
    cat = lambda f: np.concatenate([getattr(r, f) for r in parts], axis=1)  # noqa: E731
    return _Raw(lam=cat("lam"), mu=cat("mu"), nu=cat("nu"), theta=cat("theta"), p=cat("p"), shed=cat("shed"),
                pc=None, pd=None, e=None, objective=float(sum(r.objective for r in parts)), cap_dual=None,
                dc=cat("dc") if parts[0].dc is not None else None)


class DCOPF:
    """A compiled multi-period DC-OPF that can be solved repeatedly.

    Parameters
    ----------
    network : pandapowerNet, MatpowerCase, NetworkArrays, str or path
        What to solve (a case name or file is loaded with :func:`nodalopt.load_case`).
    hours : int, optional
        Number of periods; defaults to the length of the profiles, else 1.
    period_hours : float
        Length of one period in hours (prices stay in $/MWh).
    voll : float, optional
        Value of lost load in $/MWh; enables load shedding (reported with
        status ``"optimal_with_load_shedding"`` when any load is shed).
    solver : str
        Any solver name cvxpy knows (``"CLARABEL"`` by default, ``"HIGHS"``).
    solver_options : dict, optional
        Passed to the solver; merged over nodalopt's defaults for Clarabel.
    dc_model : {"pandapower", "pglib"}
        Branch susceptance convention (see :func:`nodalopt.network.from_pandapower`).
    start : str or Timestamp
        Start of the first period when the profiles carry no time index.
    strict : bool
        pandapower nets: refuse (``InputError``) the values pandapower fills in (missing cost
        rows, NaN limits, ...) instead of following its rules and reporting them in
        ``attrs["pandapower_defaults"]``.
    curtail_sgen : bool
        pandapower nets: treat non-controllable sgens as curtailable renewables (available up
        to ``p_mw``) instead of holding them at ``p_mw`` as pandapower does.
    """

    def __init__(self, network: Any, *, hours: int | None = None, period_hours: float = 1.0,
                 voll: float | None = None, solver: str = DEFAULT_SOLVER,
                 solver_options: Mapping[str, Any] | None = None, dc_model: str = "pandapower",
                 start: Any = "2030-01-01", demo_profiles: bool | None = None,
                 carbon_price: Any = None, co2_cap: float | None = None,
                 emission_factors: Any = "network", screening: bool = True, strict: bool = False,
                 curtail_sgen: bool = False) -> None:
        t0 = time.perf_counter()
        if not (isinstance(period_hours, int | float) and np.isfinite(period_hours) and period_hours > 0):
            raise InputError(f"period_hours must be a positive number of hours, got {period_hours!r}.")
        if hours is not None and (int(hours) != hours or hours < 1):
            raise InputError(f"hours must be a positive integer, got {hours!r}.")
        if voll is not None and not (np.isfinite(voll) and voll > 0):
            raise InputError(f"voll must be a positive $/MWh value, got {voll!r}.")
        solver = solver.upper()
        if solver not in cp.installed_solvers():
            raise InputError(f"solver {solver!r} is not installed; installed: {cp.installed_solvers()}.")
        # pandapower nets: one period dispatches storage within its power limits, as rundcopp; a
        # horizon tracks its energy
        self.net: NetworkArrays = compile_network(
            network, dc_model=dc_model, strict=strict, curtail_sgen=curtail_sgen,
            storage="power" if int(hours or 1) == 1 else "horizon")
        log.info("compiled %s: %d buses, %d branches, %d injectors, %d storage units in %.2f s", self.net.name,
                 self.net.bus_ids.size, self.net.n_branch, self.net.n_gen, self.net.n_storage,
                 time.perf_counter() - t0)
        if voll is not None and (self.net.load_p < 0).any():
            raise InputError("load shedding (voll) needs non-negative loads; negative p_mw at "
                             f"{self.net.load_names[self.net.load_p < 0][:5].tolist()}.")
        self.T = int(hours or 1)
        self.dt = float(period_hours)
        self.voll = voll
        self.solver = solver
        opts = dict(CLARABEL_DEFAULTS) if solver == "CLARABEL" else {}
        opts.update(solver_options or {})
        self.solver_options = opts
        self.start = start
        self.demo_profiles = demo_profiles
        self.compile_s = time.perf_counter() - t0
        self.carbon_price = CT.carbon_price_series(carbon_price, self.T)
        if co2_cap is not None and not (np.isfinite(co2_cap) and co2_cap >= 0):
            raise InputError(f"co2_cap must be a non-negative number of tCO2, got {co2_cap!r}.")
        self.co2_cap = co2_cap
        self.ef = CT.resolve_factors(self.net, emission_factors,
                                     required=carbon_price is not None or co2_cap is not None)
        if self.ef is not None and self.net.n_dcline and carbon_price is None and co2_cap is None:
            self.ef = None  # emission factors known but no carbon asked for: solve without carbon results
        if self.ef is not None and self.net.n_dcline:
            # the carbon emission flow (carbon_intensity, flow_carbon) follows AC branches only
            raise InputError(f"{self.net.name}: carbon accounting does not follow DC links yet "
                             f"({self.net.dc_names[:5].tolist()}); solve without emission factors (no "
                             "co2_t_per_mwh / fuel columns, no carbon_price or co2_cap) or set the dclines "
                             "out of service.")
        self.absorb = CT.can_absorb(self.net, self.ef) if self.ef is not None else np.zeros(self.net.n_gen, bool)
        # Periods are solved one at a time (one compiled 1-period problem, re-solved with new
        # parameters) when nothing couples them: no storage, no ramp limits, no CO2 cap.  The
        # per-period problems need far fewer interior-point iterations than the joint one.
        self.coupled = self.T > 1 and (self.net.n_storage > 0 or co2_cap is not None
                                       or bool(np.isfinite(self.net.gen_ramp_up).any())
                                       or bool(np.isfinite(self.net.gen_ramp_down).any())
                                       or self._extension_couples_periods()
                                       # a varying price on max(p, 0) is a constant of the compiled problem
                                       or (self.carbon_price is not None and bool(self.absorb.any())
                                           and bool(np.ptp(self.carbon_price) > 0)))
        self.T_model = self.T if (self.coupled or self.T == 1) else 1
        self._built = self._build(shed=voll is not None, elastic=False, T=self.T_model)
        self.build_s = time.perf_counter() - t0
        if log.isEnabledFor(logging.INFO):
            sm = self._built.problem.size_metrics
            log.info("built the %s: %d variables, %d constraint rows (%.2f s)",
                     f"joint {self.T}-period model" if self.T_model == self.T and self.T > 1
                     else ("1-period model" if self.T == 1 else f"1-period model re-solved for {self.T} periods"),
                     sm.num_scalar_variables, sm.num_scalar_eq_constr + sm.num_scalar_leq_constr, self.build_s)
        self._solves = 0
        self.retries = 0  # solves repeated with the plain Clarabel interface (see _solve_checked)
        self.solver_time = 0.0
        self.screening = bool(screening)
        self._last_raw: _Raw | None = None
        self.screen_stats: dict[str, int] = {}

    # ---------------------------------------------------------------- recipe
    def _build(self, shed: bool, elastic: bool, T: int) -> _Built:
        net, dt = self.net, self.dt
        par = F.define_parameters(net, T)
        v = F.define_variables(net, T, shed=shed, elastic=elastic)
        demand = F.node_demand(net, par, T)
        ext = self._extension(T, elastic)
        if ext is not None:
            demand = demand + ext.transmission_demand
        balance = F.nodal_balance(net, v, demand, T)
        flow_rows, flow_cons = F.flow_limits(net, v, par, T)
        ang_rows, ang_cons = F.angle_limits(net, v, T)
        cons = [balance, *flow_cons, *ang_cons, *F.flow_definition(net, v, T), *F.generator_bounds(v, par),
                *F.ramp_limits(net, v, par, T), *F.storage_constraints(net, v, T, dt),
                *F.pwl_epigraph(net, v, T), *F.shed_limits(net, v, par, T), *F.linear_cost(v, par),
                *F.dcline_bounds(net, v, T)]
        cap = None
        if self.co2_cap is not None and self.ef is not None and not elastic:
            cap = CT.co2_cap(v.p, self.ef, dt, self.co2_cap, self.absorb)
            cons.append(cap)
        if ext is not None:
            cons += ext.constraints()
        obj = F.objective(net, v, par, T, dt, self.voll, ELASTIC_PENALTY if elastic else None)
        if self.carbon_price is not None and self.ef is not None:
            absorb_cost = CT.absorb_carbon_cost(v.p, self.ef, self.absorb, self.carbon_price[:T], dt)
            obj = obj if absorb_cost is None else obj + absorb_cost
        if ext is not None and ext.objective is not None:
            obj = obj + ext.objective
        # Objective and every row scaled by the same factor (duals and values unchanged, see
        # F.ScaledProblem); the references kept in _Built must be the scaled constraint objects.
        k = OBJECTIVE_SCALE.get(self.solver, 1.0)
        sc = {id(c): F.scaled(c, k) for c in cons}
        cons = [sc[id(c)] for c in cons]
        balance, cap = sc[id(balance)], (sc[id(cap)] if cap is not None else None)
        flow_cons, ang_cons = [sc[id(c)] for c in flow_cons], [sc[id(c)] for c in ang_cons]
        if ext is not None:
            ext.remap(sc)
        prob = F.ScaledProblem(obj, cons, k)
        return _Built(prob, v, par, balance, flow_rows, flow_cons, ang_rows, ang_cons, cap, T, ext)

    # ------------------------------------------------ hooks for extended models
    def _extension(self, T: int, elastic: bool) -> Any:
        """Extra families of a subclass (None here).

        The returned object provides ``transmission_demand`` (an (N, T) expression added to
        the nodal demand), ``constraints()``, ``objective`` (or None) and ``remap(sc)`` (swap
        its constraint objects for their scaled twins).
        """
        return None

    def _extension_couples_periods(self) -> bool:
        return False

    def _load_factor(self) -> np.ndarray:
        """Per-load multiplier applied to the resolved load profiles (1 here)."""
        return np.ones(self.net.n_load)

    def _set_extension_parameters(self, b: _Built, series: prof.Series, sl: slice) -> None:
        return None

    def _elastic_report(self, el: _Built) -> list[str]:
        """Limits of the extension that the elastic re-solve ``el`` had to violate (none here)."""
        return []

    def _c1(self) -> np.ndarray:
        """Linear cost per injector and period ($/MWh), carbon price adders included."""
        c1 = np.repeat(self.net.gen_c1[:, None], self.T, axis=1)
        if self.carbon_price is not None and self.ef is not None:
            # units that may absorb pay it on max(p, 0) (CT.absorb_carbon_cost), not here
            c1 = c1 + np.where(self.absorb, 0.0, self.ef)[:, None] * self.carbon_price[None, :]
        return c1

    def _set_parameters(self, b: _Built, series: prof.Series, t0: int = 0) -> None:
        """Load periods ``t0 .. t0 + b.T`` of ``series`` into the problem's parameters."""
        sl = slice(t0, t0 + b.T)
        if self.net.n_load:
            b.par.load.value = series.load_p[:, sl] * self._load_factor()[:, None]
        else:
            b.par.load.value = np.zeros((1, b.T))
        if b.par.pmin is not None:
            b.par.pmin.value = series.gen_pmin[b.par.lo_idx, sl]
        if b.par.pmax is not None:
            b.par.pmax.value = series.gen_pmax[b.par.hi_idx, sl]
        b.par.c1.value = self._c1()[:, sl]
        if self.ef is not None and (self.carbon_price is not None or self.co2_cap is not None):
            CT.check_absorb(series.gen_pmin[:, sl], self.ef, self.absorb, self.net.gen_names)
        for name, lim in self._limit_values(b).items():
            getattr(b.par, name).value = lim
        if b.ext is not None:
            self._set_extension_parameters(b, series, sl)

    # ----------------------------------------------------------------- solve
    def solve(self, profiles: Mapping[tuple[str, str], Any] | None = None) -> xr.Dataset:
        """Solve with the given profiles (see :mod:`nodalopt.profiles`); returns the result Dataset."""
        t0 = time.perf_counter()
        T = self.T
        timeidx = prof.make_time(T, self.dt, self.start, profiles)
        demo = self.demo_profiles if self.demo_profiles is not None else (T > 1 and not profiles)
        series = prof.resolve(self.net, profiles, T, timeidx, demo=demo)
        screened = self._can_screen()
        retries0 = self.retries
        try:
            if screened:
                raw, solve_s = self._solve_screened(series)
            else:
                raw, solve_s = self._solve_all(series)
        except InfeasibleError as exc:
            hint = fixed_variant_hint(self.net.name)  # a shipped case known to be infeasible as is
            if hint:
                raise InfeasibleError(f"{exc} {hint}", shortfall=exc.shortfall) from None
            raise
        except SolverError as exc:
            if self._built.T == T:
                raise
            # a single period defeated the solver: fall back to the joint horizon (same optimum,
            # better conditioned here) and keep it for later re-solves
            self.T_model = T
            try:
                self._built = self._build(shed=self.voll is not None, elastic=False, T=T)
                raw, solve_s = self._solve_all(series)
            except MemoryError as mem:
                raise SolverError(f"{self.net.name}: {exc}; the fallback, one joint {T}-period problem, does "
                                  "not fit in memory. Try solver_options (e.g. max_iter, tolerances) or "
                                  "fewer periods per call.", status=exc.status) from mem
        if self.coupled and self._built.T == T and self._built.ext is None:
            self._last_raw = raw
        ds = self._result(raw, series, timeidx)
        self._solves += 1
        ds.attrs.update(build_s=self.build_s if self._solves == 1 else 0.0, solve_s=solve_s,
                        total_s=(self.build_s if self._solves == 1 else 0.0) + time.perf_counter() - t0,
                        resolve=int(self._solves > 1), solver_retries=self.retries - retries0)
        if screened:  # limits left out of the re-solve (verified slack at its solution), solver passes made
            ds.attrs.update(screened_limits=self.screen_stats["rows_screened"],
                            screening_rounds=self.screen_stats["rounds"])
        return ds

    # ---------------------------------------------------- constraint screening
    def _can_screen(self) -> bool:
        """Re-solve of a coupled horizon with Clarabel (whose presolve drops rows with infinite bounds)."""
        return (self.screening and self._last_raw is not None and self.coupled and self._built.T == self.T
                and self._built.ext is None and self.solver == "CLARABEL"
                and bool(self.solver_options.get("presolve_enable", True)))

    def _flows(self, theta: np.ndarray) -> np.ndarray:
        """Branch flows (branch, T) MW at node angles ``theta``."""
        return np.asarray(self.net.bf @ theta) + self.net.shift_flow[:, None]

    def _limit_values(self, b: _Built) -> dict[str, np.ndarray]:
        """The flow and ramp limits of ``b`` (its Parameters of the same names), (rows, T[-1]) MW."""
        net, out = self.net, {}
        if b.par.rate is not None:
            out["rate"] = np.repeat(net.br_rate[F.rated_rows(net), None], b.T, axis=1)
        for name, lim in (("ramp_up", net.gen_ramp_up), ("ramp_down", net.gen_ramp_down)):
            if getattr(b.par, name) is not None:
                rows = F.ramp_rows(net, "up" if name == "ramp_up" else "down")
                out[name] = np.repeat(lim[rows, None] * self.dt, b.T - 1, 1)
        return out

    def _limit_slack(self, raw: _Raw) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per screenable family: (value, limit) at ``raw``, both (rows, T[-1]); binding when value >= limit."""
        net, lims = self.net, self._limit_values(self._built)
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if "rate" in lims:
            out["rate"] = (np.abs(self._flows(raw.theta)[F.rated_rows(net)]), lims["rate"])
        dp = np.diff(raw.p, axis=1)
        for name, direction, sign in (("ramp_up", "up", 1.0), ("ramp_down", "down", -1.0)):
            if name in lims:
                out[name] = (sign * dp[F.ramp_rows(net, direction)], lims[name])
        return out

    def _solve_screened(self, series: prof.Series) -> tuple[_Raw, float]:
        """Re-solve with the flow and ramp limits that were slack in the last solution left out.

        Limits whose value was below ``(1 - SCREEN_MARGIN)`` of the limit in the previous solution
        get the bound ``SCREENED``; Clarabel's presolve removes those rows, which on a coupled
        horizon also removes most of the fill the ramp rows cause in the KKT factorization.  The
        solution is then checked against every limit: violated ones (and those near binding) are
        put back and the problem is solved again.  A relaxation whose optimum satisfies all the
        left-out limits is optimal for the full problem, with the same duals (the left-out limits
        are slack: their multipliers are zero), so the prices are those of the full problem.
        The first pass runs at the looser Clarabel tolerances ``SCREEN_LOOSE`` (it only has to
        identify the binding limits); the published solution always comes from a pass at the full tolerances whose
        solution violates no left-out limit.  After ``SCREEN_ROUNDS`` passes the full problem is
        solved.
        """
        assert self._last_raw is not None
        # a limit near binding in a period is kept in the neighbouring periods too (new profiles shift
        # the dispatch in time)
        keep = {k: _dilate(v >= (1.0 - SCREEN_MARGIN) * lim, SCREEN_DILATE)
                for k, (v, lim) in self._limit_slack(self._last_raw).items()}
        solve_total = solver_total = 0.0
        added: list[int] = []
        rnd, full, loose = 0, False, True
        while True:
            full = rnd >= SCREEN_ROUNDS
            # the first pass only identifies the binding limits: a looser interior-point tolerance is
            # enough; the pass whose solution is published runs at the full tolerance
            opts = self.solver_options
            if loose and not full:
                self.solver_options = {**opts, **SCREEN_LOOSE}
            try:
                raw, solve_s = self._solve_all(series, screen=None if full else keep)
            finally:
                self.solver_options = opts
            solve_total += solve_s
            solver_total += self.solver_time
            rnd += 1
            log.info("screening pass %d%s: %.2f s", rnd, " (full problem)" if full else "", solve_s)
            if full:
                break
            n_bad = 0
            for k, (v, lim) in self._limit_slack(raw).items():
                bad = ~keep[k] & (v > lim + 1e-6 * np.maximum(1.0, lim))
                n_bad += int(bad.sum())
                keep[k] |= _dilate(bad | (v >= (1.0 - SCREEN_MARGIN) * lim), SCREEN_DILATE)
            added.append(n_bad)
            if not n_bad and not loose:
                break
            loose = False
        self.solver_time = solver_total
        n_rows = sum(int(k.size) for k in keep.values())
        self.screen_stats = dict(rounds=rnd, full=int(full), rows=n_rows, violated=sum(added),
                                 rows_screened=0 if full else n_rows - sum(int(k.sum()) for k in keep.values()))
        return raw, solve_total

    def _apply_screen(self, b: _Built, screen: dict[str, np.ndarray]) -> None:
        for name, keep in screen.items():
            par = getattr(b.par, name)
            par.value = np.where(keep, par.value, SCREENED)

    def _solve_all(self, series: prof.Series, screen: dict[str, np.ndarray] | None = None,
                   ) -> tuple[_Raw, float]:
        """Solve the horizon: one pass, or one pass per period when periods are uncoupled."""
        b = self._built
        parts: list[_Raw] = []
        solve_s = solver_time = 0.0
        n_pass = -(-self.T // b.T)
        # a bar per period when periods are solved one by one; a joint solve is one solver call
        bar = progress_bar(n_pass, "periods", "period", leave=False) if n_pass > 1 else None
        if n_pass == 1:
            log.info("solving %s with %s%s", f"the joint {b.T}-period problem" if b.T > 1 else "the problem",
                     self.solver, " (screened)" if screen is not None else "")
        try:
            for t0 in range(0, self.T, b.T):
                self._set_parameters(b, series, t0)
                if screen is not None:
                    self._apply_screen(b, screen)
                # cvxpy's warm start updates the cached Clarabel solver in place, which skips Clarabel's
                # presolve: screened passes need it to drop their left-out rows
                try:
                    solve_s += self._solve_checked(b, series, diagnose=b.T == self.T, warm_start=screen is None)
                except SolverError as exc:
                    if b.T == self.T:
                        raise
                    raise SolverError(f"period {t0} of {self.T} ({series.time[t0]}): {exc}",
                                      status=exc.status) from exc
                solver_time += self.solver_time
                parts.append(self._collect(b))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        self.solver_time = solver_time
        log.info("solved %d pass(es) in %.2f s (solver %.2f s)", n_pass, solve_s, solver_time)
        return (parts[0] if len(parts) == 1 else _stack(parts)), solve_s

    def _solve_checked(self, b: _Built, series: prof.Series, diagnose: bool = True,
                       warm_start: bool = True) -> float:
        """Solve ``b`` as parameterised; raise the right error for anything but an optimum.

        ``diagnose=False`` (one period of an uncoupled horizon) skips the elastic look at solver
        failures: the caller retries the joint horizon, which is diagnosed if it fails too.

        A default (Clarabel) solve that ends neither optimal nor with a certificate is solved once
        more through cvxpy's plain Clarabel interface, which keeps the linear-cost rows in the
        constraint matrix (see :mod:`.solver`): a differently scaled problem with the same optimum.
        """
        try:
            status, solve_s = self._run(b, warm_start=warm_start)
            if status not in _DECIDED and self.solver == "CLARABEL":
                self.retries += 1
                status, again = self._run(b, warm_start=False, plain=True)
                solve_s += again
        except SolverError as exc:
            # a numerical failure is often an infeasible problem in disguise: look before blaming the solver
            if diagnose:
                self._explain_infeasible(series, otherwise=exc)
            raise
        if not diagnose and status not in _DECIDED:
            raise SolverError(f"period solve ended '{status}'", status=str(status))
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            self._explain_infeasible(series)
        if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            self._explain_unbounded()
        if status != cp.OPTIMAL:
            err = SolverError(f"{self.solver} returned status '{status}' on {self.net.name}; no prices "
                              "are published from a non-optimal solve. Try solver_options (e.g. "
                              "max_iter) or another solver." + cost_range_advice(cost_spread(
                                  self.net, self._c1(), self.voll)), status=str(status))
            if status != cp.USER_LIMIT:
                self._explain_infeasible(series, otherwise=err)
            raise err
        return solve_s

    def _collect(self, b: _Built) -> _Raw:
        """Values and duals of the last solve of ``b`` (duals divided by the period length)."""
        net, T, dt = self.net, b.T, self.dt
        lam = np.asarray(b.balance.dual_value, dtype=float).reshape(net.n_node, T) / dt
        mu = np.zeros((net.n_branch, T))
        if b.flow_rows.size:
            up, lo = (np.asarray(c.dual_value, dtype=float).reshape(-1, T) for c in b.flow_cons)
            mu[b.flow_rows] = (up - lo) / dt
        nu = np.zeros((net.n_branch, T))
        if b.ang_rows.size:
            up, lo = (np.asarray(c.dual_value, dtype=float).reshape(-1, T) for c in b.ang_cons)
            nu[b.ang_rows] = (up - lo) / dt
        v = b.vars
        theta = np.zeros((net.n_node, T))
        if v.theta is not None:
            theta[net.nonref_nodes] = _val(v.theta)
        shed = _val(v.shed) if v.shed is not None else np.zeros((net.n_node, T))
        return _Raw(
            lam=lam, mu=mu, nu=nu, theta=theta, p=_val(v.p) if net.n_gen else np.zeros((0, T)),
            shed=np.where(np.abs(shed) < 1e-7, 0.0, shed),
            pc=_val(v.pc) if v.pc is not None else None, pd=_val(v.pd) if v.pd is not None else None,
            e=_val(v.e) if v.e is not None else None, objective=float(b.problem.value),
            cap_dual=float(np.asarray(b.cap.dual_value, dtype=float).ravel()[0]) if b.cap is not None else None,
            dc=_val(v.dc) if v.dc is not None else None)

    def _run(self, b: _Built, ignore_dpp: bool = False, warm_start: bool = True,
             plain: bool = False) -> tuple[str, float]:
        t0 = time.perf_counter()
        try:
            # Clarabel with the linear-cost rows substituted out (see dcopf.solver), unless ``plain``
            solver: Any = PRESOLVED_CLARABEL if self.solver == "CLARABEL" and not plain else self.solver
            with warnings.catch_warnings():  # the status is acted on below: retried or an error
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                b.problem.solve(solver=solver, ignore_dpp=ignore_dpp, warm_start=warm_start,
                                **self.solver_options)
        except cp.error.SolverError as exc:
            raise SolverError(f"{self.solver} failed on {self.net.name}: {exc}", status="solver_error") from exc
        except cp.error.DCPError as exc:  # pragma: no cover - formulation bug guard
            raise SolverError(f"internal formulation error: {exc}") from exc
        self.solver_time = float(b.problem.solver_stats.solve_time or 0.0)
        log.debug("%s %s: %s after %s iterations, solver %.3f s, total %.3f s", self.solver,
                  "(plain interface)" if plain else "", b.problem.status, b.problem.solver_stats.num_iters,
                  self.solver_time, time.perf_counter() - t0)
        return str(b.problem.status), time.perf_counter() - t0

    # ------------------------------------------------------------ diagnostics
    def _explain_infeasible(self, series: prof.Series, otherwise: SolverError | None = None) -> None:
        """Raise InfeasibleError naming where an elastic re-solve needs shedding or spilling.

        With ``otherwise`` (the solver failed rather than proving infeasibility), return quietly
        when the elastic re-solve finds the problem feasible, so the caller raises ``otherwise``.
        """
        log.info("%s: locating the infeasibility with an elastic re-solve", self.net.name)
        el = self._build(shed=True, elastic=True, T=self.T)
        self._set_parameters(el, series)
        if el.vars.spill is not None:  # spill only where a unit's minimum output must go
            cap = self.net.node_matrix(self.net.gen_node) @ np.maximum(np.nan_to_num(series.gen_pmin), 0.0)
            el.problem = cp.Problem(el.problem.objective, [*el.problem.constraints, el.vars.spill <= cap])
        try:
            status, _ = self._run(el, ignore_dpp=True)  # solved once: parameters as constants
        except SolverError:
            if otherwise is not None:
                return
            raise
        short: list[tuple[object, object, float]] = []
        if status == cp.OPTIMAL and el.vars.shed is not None and el.vars.spill is not None:
            net_mw = _val(el.vars.shed) - _val(el.vars.spill)
            nodes, ts = np.nonzero(np.abs(net_mw) > 1e-3)  # interior-point noise is ~1e-6 MW
            bus_of_node = np.full(self.net.n_node, -1, np.int64)
            bus_of_node[self.net.bus_node] = self.net.bus_ids
            order = np.argsort(-np.abs(net_mw[nodes, ts]))
            short = [(int(bus_of_node[n]) if bus_of_node[n] >= 0 else f"node:{n}", int(t),
                      float(net_mw[n, t])) for n, t in zip(nodes[order], ts[order], strict=True)]
        extra = self._elastic_report(el) if status == cp.OPTIMAL else []
        if not short and not extra and self.co2_cap is not None and self.ef is not None:
            # feasible without the cap (the elastic model leaves it out): is the cap reachable at all?
            lowest = CT.lowest_emissions(self, series)
            if lowest is not None and lowest > self.co2_cap + 1e-6 * max(1.0, self.co2_cap):
                raise InfeasibleError(
                    f"{self.net.name}: the CO2 cap of {self.co2_cap:.6g} tCO2 is infeasible: the lowest "
                    f"emissions any feasible dispatch reaches are {lowest:.6g} tCO2 over the "
                    f"{self.T}-period horizon (minimizing emissions under the same network, generator, "
                    "storage and ramp constraints). Raise the cap to at least that, or use carbon_price.")
        if not short and not extra and otherwise is not None:
            return
        note = f" ({self.solver} itself reported '{otherwise.status}')" if otherwise is not None else ""
        if extra:
            more = f" (+{len(extra) - 8} more)" if len(extra) > 8 else ""
            raise InfeasibleError(f"{self.net.name} with its attached network is infeasible{note}: an elastic "
                                  f"re-solve has to violate {'; '.join(extra[:8])}{more}. Relax those limits or "
                                  "reduce the loads there.", shortfall=short)
        if short:
            total = sum(abs(s[2]) for s in short)
            lines = "; ".join(f"bus {bus} hour {t}: {mw:+.3f} MW" for bus, t, mw in short[:8])
            more = f" (+{len(short) - 8} more)" if len(short) > 8 else ""
            raise InfeasibleError(
                f"{self.net.name} is infeasible{note}: an elastic re-solve needs {total:.3f} MW of load "
                f"shedding (+) or spilled generation (-): {lines}{more}. Raise generation or branch "
                "limits there, or pass voll=... to allow load shedding.", shortfall=short)
        raise InfeasibleError(f"{self.net.name} is infeasible and no shedding/spilling pattern "
                              "explains it (check storage initial/final states and ramp limits).")

    def _explain_unbounded(self) -> None:
        net = self.net
        free = (~np.isfinite(net.gen_pmax) & (net.gen_c1 < 0)) | (~np.isfinite(net.gen_pmin) & (net.gen_c1 > 0)) \
            | ~np.isfinite(net.gen_pmax) | ~np.isfinite(net.gen_pmin)
        names = net.gen_names[free & (net.gen_c2 == 0)].tolist()
        if not names:  # every injector is bounded: the certificate is numerical, not a property of the model
            raise SolverError(f"{self.solver} reported {net.name} unbounded, but every injector has finite "
                              "limits or a quadratic cost, so the problem is bounded: a numerical failure."
                              + (cost_range_advice(cost_spread(net, self._c1(), self.voll), always=True)
                                 or " Try solver_options or another solver."), status="unbounded_numerical")
        raise UnboundedError(f"{net.name}: the objective is unbounded; injectors without a finite "
                             f"limit and without a quadratic cost: {names[:8]}. Give them min_p_mw / "
                             "max_p_mw (an ext_grid without limits is unbounded) or rate the branches.")

    # ---------------------------------------------------------------- result
    def _result(self, raw: _Raw, series: prof.Series, timeidx: pd.DatetimeIndex) -> xr.Dataset:
        net, T, dt = self.net, self.T, self.dt
        prices = decompose(net, raw.lam, raw.mu, raw.nu)
        check_decomposition(prices, float(np.nanmax(np.abs(raw.lam))) if raw.lam.size else 1.0)
        flow = self._flows(raw.theta)
        demand_node = np.repeat(net.node_fixed_demand[:, None], T, 1)
        if net.n_load:
            demand_node = demand_node + net.node_matrix(net.load_node) @ (series.load_p * self._load_factor()[:, None])
        unique = unique_prices(net, flow, raw.p, series.gen_pmin, series.gen_pmax, raw.shed,
                               np.maximum(demand_node, 0.0))
        status = "optimal"
        if self.voll is not None and raw.shed.max(initial=0.0) > 1e-6:
            status = "optimal_with_load_shedding"
        state = SolvedState(
            net=net, dt=dt, p=raw.p, pmin=series.gen_pmin, pmax=series.gen_pmax, theta=raw.theta, flow=flow,
            lam=raw.lam, mu=raw.mu, nu=raw.nu, demand=demand_node, shed=raw.shed, pc=raw.pc, pd=raw.pd,
            e=raw.e, voll=self.voll)
        self.last_state = state
        storage = (raw.pc, raw.pd, raw.e) if raw.pc is not None and raw.pd is not None and raw.e is not None \
            else None
        ds = build_dataset(
            net, timeidx, dt, prices=prices, flow=flow, mu=raw.mu, theta=raw.theta, p_gen=raw.p, unique=unique,
            p_available=series.gen_pmax, storage=storage, demand=demand_node - raw.shed, load_shed=raw.shed,
            attrs=dict(status=status, objective=raw.objective, solver=self.solver,
                       solver_time_s=self.solver_time, period_hours=dt,
                       dc_model=str(net.meta.get("dc_model", "")), network=net.name,
                       decomposition_residual=prices.residual,
                       periods_solved_separately=int(self._built.T == 1 and T > 1)),
        )
        if "pandapower_defaults" in net.meta:  # what pandapower's rules filled in (see from_pandapower)
            ds.attrs["pandapower_defaults"] = "; ".join(str(d) for d in net.meta["pandapower_defaults"])  # type: ignore[attr-defined]
        if raw.dc is not None:
            ds = ds.assign(_dcline_results(net, raw.dc, timeidx))
        if self.ef is not None:
            cap_price = raw.cap_dual or 0.0
            price = (self.carbon_price if self.carbon_price is not None else np.zeros(T)) + cap_price
            ds = CT.add_carbon(ds, state, self.ef, price, raw.cap_dual, c1=self._c1())
        from ..signals.explain import attach_state  # lazy: signals imports the dcopf state

        cap_c1 = self.ef[:, None] * (raw.cap_dual or 0.0) if self.ef is not None else 0.0
        attach_state(ds, state, self._c1() + cap_c1)  # for nodalopt.explain(ds)
        return ds


#: keywords of :func:`solve` that only a :class:`~nodalopt.TDNetwork` takes (centralized or ADMM)
_TD_OPTIONS = ("method", "losses", "loss_max_iter", "loss_tol_mw", "vm_tol_pu")
_ADMM_OPTIONS = ("settings", "executor", "workers", "scheduler", "resume", "warm_start")


def _dcline_results(net: NetworkArrays, dc: np.ndarray, timeidx: pd.DatetimeIndex) -> dict[str, xr.DataArray]:
    """``p_dcline`` (MW withdrawn at the from bus), ``p_dcline_to`` (MW delivered at the to bus) and
    ``dcline_loss`` (MW) on a ``dcline`` coordinate; pandapower's ``res_dcline`` has ``p_from_mw = p_dcline``,
    ``p_to_mw = -p_dcline_to``, ``pl_mw = dcline_loss``."""
    to = net.dc_eff[:, None] * dc - net.dc_loss[:, None]
    coords = {"time": timeidx, "dcline": np.asarray(net.dc_names, dtype=str)}
    da = lambda x, units: xr.DataArray(x.T, dims=("time", "dcline"), coords=coords,  # noqa: E731
                                       attrs={"units": units})
    return {"p_dcline": da(dc, "MW"), "p_dcline_to": da(to, "MW"), "dcline_loss": da(dc - to, "MW")}


def solve(network: Any, *, hours: int | None = None, profiles: Mapping[tuple[str, str], Any] | None = None,
          period_hours: float | None = None, voll: float | None = None, solver: str = DEFAULT_SOLVER,
          solver_options: Mapping[str, Any] | None = None, dc_model: str | None = None,
          start: Any = None, demo_profiles: bool | None = None, carbon_price: Any = None,
          co2_cap: float | None = None, emission_factors: Any = "network", screening: bool = True,
          base_mva: float | None = None, method: str = "central", losses: bool | None = None,
          loss_max_iter: int | None = None, loss_tol_mw: float | None = None, vm_tol_pu: float | None = None,
          settings: Any = None, executor: str | None = None, workers: int | None = None,
          scheduler: str | None = None, resume: bool = False, warm_start: xr.Dataset | None = None,
          strict: bool = False, curtail_sgen: bool = False, explain: bool = False,
          **unknown: Any) -> xr.Dataset:
    """Solve a multi-period DC-OPF and return prices and dispatch as an ``xarray.Dataset``.

    Parameters
    ----------
    network : pandapowerNet, MatpowerCase, NetworkArrays, TDNetwork, pypsa.Network, str or path
        The network, or a case name / file for :func:`nodalopt.load_case`, or a CSV network
        folder in the PyPSA layout (solved over its snapshots, see
        :func:`nodalopt.io.solve_csv_folder`), or a ``pypsa.Network`` (the same semantics as its
        exported CSV folder, see :mod:`nodalopt.network.pypsa_net`).  A :class:`nodalopt.TDNetwork` (transmission +
        radial feeders) is solved as one centralized model with DLMPs
        (:class:`nodalopt.distribution.TDOPF`), or with ``method="admm"`` by ADMM between
        transmission and feeders (:class:`nodalopt.admm.coordinator.ADMM`).
    hours : int, optional
        Number of periods.  With ``hours > 1`` and no ``profiles`` the shipped 24-hour demo
        shapes are applied (``data/demo_24h.csv``).  CSV folders: solve the first ``hours``
        snapshots (default: all).
    profiles : mapping, optional
        ``{(table, column): DataFrame | DataArray | 1-D scaling}``; see :mod:`nodalopt.profiles`.
        Without ``hours`` the number of periods is the length of the profiles.
    period_hours : float, optional
        Length of one period in hours (default 1.0; prices stay in $/MWh).  CSV folders take it
        from the snapshot weightings.
    voll : float, optional
        Value of lost load in $/MWh; enables load shedding.
    solver : str
        Any solver cvxpy has installed (``"CLARABEL"`` by default, ``"HIGHS"``).
    solver_options : mapping, optional
        Passed to the solver; merged over nodalopt's Clarabel defaults.
    dc_model : {"pandapower", "pglib", "pypsa"}, optional
        Branch susceptance convention.  Default: the input's own (``"pandapower"`` for
        pandapower nets, ``.m`` and ``.json`` files; ``"pypsa"`` for CSV folders).
    start : str or Timestamp, optional
        Start of the first period when the profiles carry no time index (default
        ``"2030-01-01"``; CSV folders: their first snapshot).
    demo_profiles : bool, optional
        Force (True) or suppress (False) the demo shapes; default: on when ``hours > 1`` and no
        ``profiles`` are given (never for CSV folders, which carry their own series).
    carbon_price : float or sequence, optional
        Carbon price in $/tCO2 (one value or one per period).
    co2_cap : float, optional
        CO2 cap over the horizon in tCO2; its dual is reported as a carbon price.
    emission_factors : {"network", "synthetic"} or array
        Where emission factors come from (see :mod:`nodalopt.carbon.factors`).
    screening : bool
        Constraint screening of re-solves of a coupled horizon (see :meth:`DCOPF.solve`).
    base_mva : float, optional
        CSV folders and ``pypsa.Network`` only: MVA base of the per-unit susceptances (default 100; results do not
        depend on it).
    method : {"central", "admm"}
        TDNetwork only: one centralized model, or ADMM between transmission and feeders.
    losses, loss_max_iter, loss_tol_mw, vm_tol_pu : optional
        TDNetwork only: feeder loss iteration (defaults of :class:`nodalopt.distribution.TDOPF`).
    settings : ADMMSettings, optional
        ``method="admm"`` only: ADMM settings (default :class:`nodalopt.ADMMSettings`).
    executor, workers, scheduler : optional
        ``method="admm"`` only: where the feeder updates run (``"inprocess"`` or ``"dask"``,
        local Dask workers, or an existing scheduler address).
    resume : bool
        ``method="admm"`` only: continue from ``settings.checkpoint``.
    warm_start : xarray.Dataset, optional
        ``method="admm"`` only: a previous result to start from.
    strict : bool
        pandapower nets only: refuse (InputError) every value pandapower's OPF would fill in
        (missing cost rows, NaN limits, non-controllable elements' costs, ...) instead of
        following pandapower and reporting it (``PandapowerDefaultsWarning`` and
        ``ds.attrs["pandapower_defaults"]``).
    curtail_sgen : bool
        pandapower nets only: let non-controllable sgens be curtailed (nodalopt's renewable
        model) instead of holding them at ``p_mw`` as ``rundcopp`` does.
    explain : bool
        Add the price explanations of :func:`nodalopt.explain` (price intervals, valid
        ranges, price setters); transmission DC-OPF only.
    **unknown
        Nothing else is accepted: a misspelled keyword raises :class:`InputError` naming the
        closest valid one.

    Returns
    -------
    xarray.Dataset
        ``lmp``, ``lmp_energy``, ``lmp_congestion`` (time, bus) in $/MWh,
        ``p_gen`` (time, gen), ``flow`` and ``branch_mu`` (time, branch), ...

    Raises
    ------
    InputError
        Bad network data, a misspelled or inapplicable keyword, bad option values.
    InfeasibleError, UnboundedError, SolverError, ConvergenceError
        No prices are published from a non-optimal solve.
    """
    from ..distribution.td import TDNetwork

    if unknown:
        _reject_unknown(unknown)
    given: dict[str, Any] = {k: v for k, v in dict(
        period_hours=period_hours, voll=voll, solver_options=solver_options, dc_model=dc_model, start=start,
        demo_profiles=demo_profiles, carbon_price=carbon_price, co2_cap=co2_cap).items() if v is not None}
    if solver != DEFAULT_SOLVER:
        given["solver"] = solver
    if emission_factors is not None and not (isinstance(emission_factors, str) and emission_factors == "network"):
        given["emission_factors"] = emission_factors
    if not screening:
        given["screening"] = False
    if strict:
        given["strict"] = True
    if curtail_sgen:
        given["curtail_sgen"] = True
    td_given: dict[str, Any] = {k: v for k, v in dict(losses=losses, loss_max_iter=loss_max_iter,
                                                      loss_tol_mw=loss_tol_mw, vm_tol_pu=vm_tol_pu).items()
                                if v is not None}
    admm_given: dict[str, Any] = {k: v for k, v in dict(settings=settings, executor=executor, workers=workers,
                                        scheduler=scheduler, warm_start=warm_start).items() if v is not None}
    if resume:
        admm_given["resume"] = True
    is_td = isinstance(network, TDNetwork)
    from ..network.pypsa_net import is_pypsa_network

    if explain and (is_td or (isinstance(network, str | os.PathLike) and Path(network).is_dir())
                    or is_pypsa_network(network)):
        raise InputError("explain=True is available for transmission DC-OPF solves only (not yet for "
                         "feeders / DLMPs, CSV folders or pypsa.Network).")
    if not is_td and (td_given or admm_given or method != "central"):
        names = sorted([*td_given, *admm_given, *(["method"] if method != "central" else [])])
        raise InputError(f"{names} apply to a TDNetwork (transmission + feeders) only; {type(network).__name__} "
                         "is solved by the DC-OPF. Remove them, or attach feeders with nodalopt.TDNetwork.")
    if base_mva is not None and not (isinstance(network, str | os.PathLike) and Path(network).is_dir()
                                     or is_pypsa_network(network)):
        raise InputError("base_mva applies to CSV network folders and pypsa.Network only (other inputs carry "
                         "their own MVA base).")
    if is_td:  # transmission + feeders: centralized model or ADMM
        if hours is None and profiles:
            lengths = {len(v) for v in profiles.values() if hasattr(v, "__len__")}
            hours = max(lengths) if lengths else None
        if method == "admm":
            from ..admm.coordinator import ADMM

            res, warm = admm_given.pop("resume", False), admm_given.pop("warm_start", None)
            return ADMM(network, admm_given.pop("settings", None), hours=hours, **admm_given, **td_given,
                        **given).solve(profiles, resume=res, warm_start=warm)
        if method != "central":
            raise InputError(f"method must be 'central' or 'admm', got {method!r}.")
        if admm_given:
            raise InputError(f"{sorted(admm_given)} apply to method='admm' only.")
        from ..distribution.model import TDOPF

        return TDOPF(network, hours=hours, **td_given, **given).solve(profiles)
    if base_mva is not None:
        given["base_mva"] = base_mva
    if isinstance(network, str | os.PathLike) and Path(network).is_dir():  # a PyPSA-layout CSV folder
        from ..io.csv_folder import solve_csv_folder

        return solve_csv_folder(network, hours=hours, profiles=profiles, **given)
    if is_pypsa_network(network):  # the CSV folder reader's semantics, from the network's tables
        from ..network.pypsa_net import solve_pypsa

        return solve_pypsa(network, hours=hours, profiles=profiles, **given)
    if hours is None and profiles:
        lengths = {len(v) for v in profiles.values() if hasattr(v, "__len__")}
        hours = max(lengths) if lengths else None
    if not explain:
        return DCOPF(network, hours=hours, **given).solve(profiles)
    from ..signals.explain import with_explanation

    return with_explanation(DCOPF(network, hours=hours, **given).solve(profiles))


def _reject_unknown(unknown: Mapping[str, Any]) -> None:
    import difflib
    import inspect

    valid = [p for p in inspect.signature(solve).parameters if p not in ("network", "unknown")]
    parts = []
    for k in unknown:
        close = difflib.get_close_matches(k, valid, n=1)
        parts.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise InputError(f"nodalopt.solve got unknown keyword(s) {', '.join(parts)}; valid keywords: "
                     f"{', '.join(valid)}.")
