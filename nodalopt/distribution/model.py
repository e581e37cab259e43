"""The centralized T&D *recipe*: transmission DC-OPF + every feeder (LinDistFlow) in one
cvxpy problem, losses settled by AC power flows, DLMPs decomposed.

The transmission families are those of :class:`nodalopt.dcopf.DCOPF` (this class extends
it through its hooks); the feeder families are in :mod:`.lindistflow`.  Each feeder copy
draws ``P_sub`` at its transmission bus; the loss coefficients are DPP parameters, so the
loss iteration re-solves one compiled problem.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
import xarray as xr

from .. import profiles as prof
from ..dcopf.model import DCOPF, ELASTIC_PENALTY, _Built, _Raw, _val
from ..errors import ConvergenceError, InputError
from ..log import get_logger
from . import lindistflow as LD
from .acflow import BranchFlow, branch_flow
from .prices import DLMP, FeederDuals, decompose
from .td import Forest, TDNetwork

log = get_logger(__name__)
#: losses have settled when the model's substation imports and voltages match the AC power flow
#: at the model's own dispatch within these tolerances
LOSS_TOL_MW = 1e-4
VM_TOL_PU = 1e-4


@dataclass
class _FeederPart:
    """The feeder block handed to DCOPF's recipe (see DCOPF._extension)."""

    par: LD.FeederParams
    vars: LD.FeederVars
    cons: LD.FeederCons
    objective: cp.Expression | None
    transmission_demand: cp.Expression

    def constraints(self) -> list[cp.Constraint]:
        return self.cons.all()

    def remap(self, sc: dict[int, cp.Constraint]) -> None:
        self.cons.remap(sc)


@dataclass
class FeederSeries:
    """Per-period feeder inputs (element x time), resolved from defaults, demo shapes or profiles."""

    load_p: np.ndarray
    load_q: np.ndarray
    pv_avail: np.ndarray
    flex_p: np.ndarray


class TDOPF(DCOPF):
    """Transmission and distribution in one model (the reference the ADMM solver is checked against).

    Parameters
    ----------
    td : TDNetwork
        Transmission network with feeders attached.
    losses : bool
        Feeder losses through AC loss coefficients, iterated until they settle (True), or plain
        lossless LinDistFlow (False).
    loss_max_iter : int
        AC updates before :class:`ConvergenceError`.
    **kwargs
        As :class:`nodalopt.DCOPF` (``hours``, ``period_hours``, ``solver``, ``voll``, ...).
    """

    def __init__(self, td: TDNetwork, *, losses: bool = True, loss_max_iter: int = 10,
                 loss_tol_mw: float = LOSS_TOL_MW, vm_tol_pu: float = VM_TOL_PU, **kwargs: Any) -> None:
        if not isinstance(td, TDNetwork):
            raise InputError(f"TDOPF needs a TDNetwork, got {type(td).__name__}.")
        if kwargs.get("dc_model", "pandapower") != "pandapower":
            raise InputError("dc_model is set when the TDNetwork is created (TDNetwork(net, dc_model=...)).")
        kwargs.pop("dc_model", None)
        self.td = td
        self.fo: Forest = td.forest()
        self.losses = bool(losses)
        self.loss_max_iter = int(loss_max_iter)
        self.loss_tol_mw, self.vm_tol_pu = float(loss_tol_mw), float(vm_tol_pu)
        fo = self.fo
        hours = kwargs.get("hours") or 1
        ev = fo.elements["ev"]
        if ev["names"].size and (ev["departure"] > hours).any():
            bad = ev["names"][ev["departure"] > hours][:5].tolist()
            raise InputError(f"EV(s) {bad} depart after the last of the {hours} periods; use departure <= {hours}.")
        dt = float(kwargs.get("period_hours", 1.0))
        if ev["names"].size:
            win = (ev["departure"] - ev["arrival"]) * dt * ev["pmax"]
            short = ev["energy"] > win + 1e-9
            if short.any():
                raise InputError(f"EV(s) {ev['names'][short][:5].tolist()} need more energy_mwh than p_max_mw x "
                                 "window can deliver; lengthen the window or raise p_max_mw.")
        self._series_cache: FeederSeries | None = None
        T0 = int(kwargs.get("hours") or 1)
        self._lt = LD.LossTerms.zero(fo.n_branch, T0)
        self._fraw: dict[str, Any] = {}
        self._fparts: list[dict[str, Any]] = []
        self._cur_sl = slice(0, 1)
        super().__init__(td.transmission, **kwargs)
        self._factor = self._replacement_factor()

    # ---------------------------------------------------------------- hooks
    def _extension(self, T: int, elastic: bool) -> _FeederPart:
        fo = self.fo
        flex_energy = None
        if fo.elements["flex"]["names"].size:
            flex_energy = cp.Parameter(fo.elements["flex"]["names"].size, name="FlexLoad-energy")
        par, v, cons, obj = LD.build(fo, T, self.dt, flex_energy, self._lt,
                                     elastic_penalty=ELASTIC_PENALTY if elastic else None)
        self._flex_energy = flex_energy
        tmat = self.net.node_matrix(fo.inst_tnode)  # (N, I)
        return _FeederPart(par=par, vars=v, cons=cons, objective=obj, transmission_demand=tmat @ v.psub)

    def _replacement_factor(self) -> np.ndarray:
        """Per transmission load: 1 - (feeder load it is replaced by) / (bus base load)."""
        net, fo = self.net, self.fo
        base_bus = np.zeros(net.n_node)
        np.add.at(base_bus, net.load_node, net.load_p)
        repl = np.zeros(net.n_node)
        el = fo.elements
        feeder_load = np.zeros(fo.n_inst)
        np.add.at(feeder_load, el["load"]["inst"], el["load"]["p"])
        np.add.at(feeder_load, el["flex"]["inst"], el["flex"]["p"])
        np.add.at(repl, fo.inst_tnode[fo.inst_replace], feeder_load[fo.inst_replace])
        over = repl > base_bus * (1 + 1e-9) + 1e-9
        if over.any():
            n = int(np.flatnonzero(over)[0])
            bus = net.bus_ids[np.flatnonzero(net.bus_node == n)[0]] if (net.bus_node == n).any() else n
            raise InputError(f"feeders at transmission bus {bus} replace {repl[n]:.3f} MW of load but the bus "
                             f"has {base_bus[n]:.3f} MW; pass replace=False (feeder on top of the bus load) or a "
                             "smaller scale.")
        factor_bus = np.divide(base_bus - repl, base_bus, out=np.ones(net.n_node), where=base_bus > 0)
        return factor_bus[net.load_node] if net.n_load else np.ones(0)

    def _load_factor(self) -> np.ndarray:
        f = getattr(self, "_factor", None)
        return f if f is not None else self._replacement_factor()

    def _feeder_series(self, T: int, demo: bool) -> FeederSeries:
        fo = self.fo
        el = fo.elements
        load_p = np.repeat(el["load"]["p"][:, None], T, 1)
        load_q = np.repeat(el["load"]["q"][:, None], T, 1)
        pv = np.repeat(el["pv"]["p"][:, None], T, 1)
        flex = np.repeat(el["flex"]["p"][:, None], T, 1)
        if demo:
            shapes = prof.demo_profiles()
            hours = (np.arange(T) * self.dt) % 24
            pick = lambda c: np.interp(hours, shapes.index.to_numpy(float), shapes[c].to_numpy(float),  # noqa: E731
                                       period=24)
            load_p, load_q, flex = load_p * pick("load"), load_q * pick("load"), flex * pick("load")
            pv = pv * pick("solar")
        for i, f in enumerate(self.td.feeders):
            if not f.profiles:
                continue
            for key, value in f.profiles.items():
                _apply_feeder_profile(f.name, i, key, value, T, el, load_p, load_q, pv, f.scale)
        return FeederSeries(load_p=load_p, load_q=load_q, pv_avail=pv, flex_p=flex)

    def _set_extension_parameters(self, b: _Built, series: prof.Series, sl: slice) -> None:
        fo, ext = self.fo, b.ext
        fs = self._fseries
        el = fo.elements
        par: LD.FeederParams = ext.par
        M = fo.n_node
        lm = fo.node_matrix(el["load"]["node"])
        par.pfix.value = np.asarray(lm @ fs.load_p[:, sl]).reshape(M, -1)
        par.qfix.value = np.asarray(lm @ fs.load_q[:, sl]).reshape(M, -1)
        if par.pv_avail is not None:
            par.pv_avail.value = fs.pv_avail[:, sl]
        if self._flex_energy is not None:
            self._flex_energy.value = fs.flex_p[:, sl].sum(axis=1) * self.dt
        self._cur_sl = sl

    def _elastic_report(self, el: _Built) -> list[str]:
        """Feeder limits the elastic re-solve violated, largest first: branch / substation MVA, voltages."""
        fo, v, c = self.fo, el.ext.vars, el.ext.cons
        found: list[tuple[float, str]] = []
        times = prof.make_time(self.T, self.dt, self.start, None)

        def add(slack: cp.Variable | None, names: np.ndarray, what: str, unit: str, conv: Any) -> None:
            if slack is None or slack.value is None:
                return
            val = np.asarray(slack.value, dtype=float)
            rows, ts = np.nonzero(val > 1e-4)
            for r_, t_ in zip(rows, ts, strict=True):
                amount = float(conv(val[r_, t_], r_))
                found.append((amount, f"{what} of {names[r_]} by {amount:.4f} {unit} at {times[t_]}"))

        add(v.s_poly, fo.br_names[c.poly_rows], "the MVA rating", "MVA", lambda s, r: s)
        add(v.s_sub, np.asarray(fo.names, dtype=object)[c.sub_rows], "the substation limit", "MVA", lambda s, r: s)
        child = fo.child
        vmax, vmin = fo.vm_max[child[c.vmax_rows]], fo.vm_min[child[c.vmin_rows]]
        add(v.s_vmax, fo.node_label[child[c.vmax_rows]], "the upper voltage limit", "pu",
            lambda s, r: np.sqrt(vmax[r] ** 2 + s) - vmax[r])
        add(v.s_vmin, fo.node_label[child[c.vmin_rows]], "the lower voltage limit", "pu",
            lambda s, r: vmin[r] - np.sqrt(max(vmin[r] ** 2 - s, 0.0)))
        found.sort(key=lambda x: -x[0])
        return [f[1] for f in found]

    def _extension_couples_periods(self) -> bool:
        # one joint problem: the loss terms are constants that differ per period, and the
        # problem is rebuilt at each loss update anyway
        return True

    def _run(self, b: _Built, ignore_dpp: bool = False, warm_start: bool = True,
             plain: bool = False) -> tuple[str, float]:
        # rebuilt per loss update: no DPP tensor to reuse
        return super()._run(b, ignore_dpp=True, warm_start=warm_start, plain=plain)

    # ---------------------------------------------------------------- solve
    def solve(self, profiles: Mapping[tuple[str, str], Any] | None = None) -> xr.Dataset:
        """Solve transmission and feeders; iterate the loss coefficients until they settle."""
        t0 = time.perf_counter()
        T = self.T
        demo = self.demo_profiles if self.demo_profiles is not None else (T > 1 and not profiles)
        self._fseries = self._feeder_series(T, demo)
        timeidx = prof.make_time(T, self.dt, self.start, profiles)
        series = prof.resolve(self.net, profiles, T, timeidx, demo=demo)
        history: list[tuple[float, float]] = []
        solve_s = 0.0
        it = 0
        if self.losses:
            self._update_losses(self._ac_at(self._base_withdrawal()), curvature=False)
        for it in range(1, (self.loss_max_iter if self.losses else 1) + 1):  # noqa: B007
            self._fparts = []
            raw, s = self._solve_all(series)
            self._stack_feeder_parts()
            solve_s += s
            if not self.losses:
                break
            ac = self._ac_at(self._model_withdrawal())
            gap_mw = float(np.max(np.abs(ac.p_import - self._fraw["psub"]), initial=0.0))
            vm_model = np.sqrt(np.maximum(self._fraw["v_full"], 0.0))
            gap_vm = float(np.max(np.abs(ac.vm_pu - vm_model), initial=0.0))
            history.append((gap_mw, gap_vm))
            log.info("loss iteration %d: substation import gap %.3g MW, voltage gap %.3g pu", it, gap_mw, gap_vm)
            if gap_mw <= self.loss_tol_mw and gap_vm <= self.vm_tol_pu:
                break
            self._update_losses(ac, curvature=True)
        else:
            raise ConvergenceError(
                f"feeder losses did not settle in {self.loss_max_iter} AC updates (last gaps: substation import "
                f"{history[-1][0]:.2e} MW, voltage {history[-1][1]:.2e} pu); raise loss_max_iter or pass "
                "losses=False.")
        ds = self._result(raw, series, timeidx)
        ds = self._add_feeders(ds, timeidx)
        self._solves += 1
        ds.attrs.update(build_s=self.build_s if self._solves == 1 else 0.0, solve_s=solve_s,
                        total_s=(self.build_s if self._solves == 1 else 0.0) + time.perf_counter() - t0,
                        resolve=int(self._solves > 1), loss_iterations=it if self.losses else 0,
                        loss_gap_mw=history[-1][0] if history else 0.0,
                        loss_gap_vm_pu=history[-1][1] if history else 0.0,
                        feeder_losses="ac_loss_coefficients" if self.losses else "lossless_lindistflow")
        return ds

    def _base_withdrawal(self) -> tuple[np.ndarray, np.ndarray]:
        """Node withdrawals before any dispatch: loads and shiftable loads, PV at availability."""
        fo, fs, el = self.fo, self._fseries, self.fo.elements
        p = fo.node_matrix(el["load"]["node"]) @ fs.load_p + fo.node_matrix(el["flex"]["node"]) @ fs.flex_p \
            - fo.node_matrix(el["pv"]["node"]) @ fs.pv_avail
        q = fo.node_matrix(el["load"]["node"]) @ fs.load_q \
            + fo.node_matrix(el["flex"]["node"]) @ (el["flex"]["tan"][:, None] * fs.flex_p) \
            - fo.node_matrix(el["pv"]["node"]) @ (el["pv"]["tan"][:, None] * fs.pv_avail)
        return np.asarray(p), np.asarray(q)

    def _model_withdrawal(self) -> tuple[np.ndarray, np.ndarray]:
        return self._fraw["wp"], self._fraw["wq"]

    def _ac_at(self, w: tuple[np.ndarray, np.ndarray]) -> BranchFlow:
        return branch_flow(self.fo, w[0], w[1])

    def _update_losses(self, ac: BranchFlow, curvature: bool) -> None:
        """Linearize the losses at the AC point ``ac`` and rebuild the problem.

        With ``curvature`` the second-order loss term (lindistflow.loss_curvature) is weighted
        by the last solve's DLMPs.
        """
        fo = self.fo
        w0 = fo.kp[:, None] * (fo.par @ ac.v)
        prox = np.zeros_like(w0)
        if curvature:
            price = np.maximum(self._fraw["duals"].pbal[fo.child], 0.0)
            prox = np.sqrt(self.dt * price * fo.r[:, None] / w0)
        self._lt = LD.LossTerms(aP=2 * ac.P / w0, aQ=2 * ac.Q / w0, aW=-ac.L / w0, prox=prox,
                                P0=ac.P.copy(), Q0=ac.Q.copy())
        self._built = self._build(shed=self.voll is not None, elastic=False, T=self.T)

    # ---------------------------------------------------------------- collect
    def _collect(self, b: _Built) -> _Raw:
        raw = super()._collect(b)
        if b.ext is None:
            return raw
        fo, dt, T = self.fo, self.dt, b.T
        sl = self._cur_sl
        v: LD.FeederVars = b.ext.vars
        c: LD.FeederCons = b.ext.cons
        dual = lambda con, shape: np.asarray(con.dual_value, dtype=float).reshape(shape) / dt  # noqa: E731
        Bn = fo.n_branch
        vmax = np.zeros((Bn, T))
        vmin = np.zeros((Bn, T))
        if c.vmax is not None:
            vmax[c.vmax_rows] = dual(c.vmax, (-1, T))
        if c.vmin is not None:
            vmin[c.vmin_rows] = dual(c.vmin, (-1, T))
        vv = _val(v.v)
        vfull = np.zeros((fo.n_node, T))
        vfull[fo.child] = vv
        vfull[fo.inst_node0] = fo.v_root[fo.inst_node0, None]
        inj: dict[str, np.ndarray] = {}
        for k, var in (("pv", v.pv), ("dg", v.dg), ("flex", v.flex), ("ev", v.ev)):
            inj[k] = _val(var) if var is not None else np.zeros((0, T))
        st = (_val(v.pd) - _val(v.pc)) if v.pd is not None and v.pc is not None else np.zeros((0, T))
        wp, wq = self._dispatch_withdrawals(inj, st, sl)
        self._fparts.append(dict(
            duals=FeederDuals(
                pbal=dual(c.pbal, (fo.n_node, T)), qbal=dual(c.qbal, (fo.n_node, T)), vdef=dual(c.vdef, (Bn, T)),
                vmax=vmax, vmin=vmin,
                poly=dual(c.poly, (-1, T)) if c.poly is not None else np.zeros((0, T)), poly_rows=c.poly_rows,
                sub=dual(c.sub, (-1, T)) if c.sub is not None else np.zeros((0, T)), sub_rows=c.sub_rows,
                lmp_root=raw.lam[fo.inst_tnode],
                grad_p=2 * self._lt.prox[:, sl] ** 2 * (_val(v.P) - self._lt.P0[:, sl]) / dt,
                grad_q=2 * self._lt.prox[:, sl] ** 2 * (_val(v.Q) - self._lt.Q0[:, sl]) / dt),
            P=_val(v.P), Q=_val(v.Q), v_full=vfull, psub=_val(v.psub), qsub=_val(v.qsub),
            inj=inj, st=st, wp=np.asarray(wp), wq=np.asarray(wq),
            e=_val(v.e) if v.e is not None else None))
        return raw

    def _dispatch_withdrawals(self, inj: dict[str, np.ndarray], st: np.ndarray, sl: slice
                              ) -> tuple[np.ndarray, np.ndarray]:
        """Net active / reactive withdrawal per node (M, T) of a feeder dispatch, shunts excluded."""
        fo, fs, el = self.fo, self._fseries, self.fo.elements
        wp = fo.node_matrix(el["load"]["node"]) @ fs.load_p[:, sl] + fo.node_matrix(el["flex"]["node"]) @ inj["flex"] \
            + fo.node_matrix(el["ev"]["node"]) @ inj["ev"] - fo.node_matrix(el["pv"]["node"]) @ inj["pv"] \
            - fo.node_matrix(el["dg"]["node"]) @ inj["dg"] - fo.node_matrix(el["st"]["node"]) @ st
        wq = fo.node_matrix(el["load"]["node"]) @ fs.load_q[:, sl] \
            + fo.node_matrix(el["flex"]["node"]) @ (el["flex"]["tan"][:, None] * inj["flex"]) \
            - fo.node_matrix(el["pv"]["node"]) @ (el["pv"]["tan"][:, None] * inj["pv"])
        return np.asarray(wp), np.asarray(wq)

    def _stack_feeder_parts(self) -> None:
        """Per-period collections (uncoupled horizon) side by side along time."""
        parts, self._fparts = self._fparts, []
        if len(parts) == 1:
            self._fraw = parts[0]
            return
        cat = lambda xs: np.concatenate(xs, axis=1)  # noqa: E731
        d0: FeederDuals = parts[0]["duals"]
        duals = FeederDuals(**{k: (cat([getattr(p["duals"], k) for p in parts]) if k not in ("poly_rows", "sub_rows")
                                   else getattr(d0, k)) for k in d0.__dataclass_fields__})
        out: dict[str, Any] = {"duals": duals, "inj": {k: cat([p["inj"][k] for p in parts]) for k in parts[0]["inj"]}}
        for k in ("P", "Q", "v_full", "psub", "qsub", "st", "wp", "wq"):
            out[k] = cat([p[k] for p in parts])
        out["e"] = None
        self._fraw = out

    # ---------------------------------------------------------------- result
    def _add_feeders(self, ds: xr.Dataset, timeidx: pd.DatetimeIndex) -> xr.Dataset:
        fo, fr = self.fo, self._fraw
        lt = self._lt
        d: DLMP = decompose(fo, fr["duals"], lt.aP, lt.aQ, lt.aW)
        dims = ("time", "dnode")
        attrs = {
            "dlmp": ("$/MWh", "distribution locational marginal price (active power balance dual)"),
            "dlmp_energy": ("$/MWh", "energy component: LMP of the transmission bus the feeder hangs from"),
            "dlmp_loss": ("$/MWh", "marginal feeder losses valued at the transmission LMP"),
            "dlmp_congestion": ("$/MWh", "feeder branch and substation limits"),
            "dlmp_voltage": ("$/MWh", "feeder voltage limits"),
            "dlmp_q": ("$/MVArh", "reactive power price (reactive balance dual)"),
            "vm_pu": ("pu", "voltage magnitude (LinDistFlow with AC loss terms)"),
        }
        vals = {"dlmp": d.dlmp, "dlmp_energy": d.energy, "dlmp_loss": d.loss, "dlmp_congestion": d.congestion,
                "dlmp_voltage": d.voltage, "dlmp_q": d.q_price, "vm_pu": np.sqrt(np.maximum(fr["v_full"], 0))}
        new = {k: xr.DataArray(vals[k].T, dims=dims, attrs={"units": u, "long_name": ln})
               for k, (u, ln) in attrs.items()}
        new["p_substation"] = xr.DataArray(fr["psub"].T, dims=("time", "substation"),
                                           attrs={"units": "MW", "long_name": "active power drawn from the "
                                                  "transmission bus"})
        new["q_substation"] = xr.DataArray(fr["qsub"].T, dims=("time", "substation"),
                                           attrs={"units": "MVAr", "long_name": "reactive power drawn"})
        loss = np.zeros((fo.n_inst, self.T))
        np.add.at(loss, fo.inst_of_node[fo.child], fo.r[:, None] * self._model_L())
        new["feeder_loss"] = xr.DataArray(loss.T, dims=("time", "substation"),
                                          attrs={"units": "MW", "long_name": "series losses of the feeder"})
        el = fo.elements
        names, kinds, p = [], [], []
        for k, sign in (("pv", 1.0), ("dg", 1.0), ("flex", -1.0), ("ev", -1.0)):
            if el[k]["names"].size:
                names.append(el[k]["names"])
                kinds.append(np.full(el[k]["names"].size, k, dtype=object))
                p.append(sign * fr["inj"][k])
        if el["st"]["names"].size:
            names.append(el["st"]["names"])
            kinds.append(np.full(el["st"]["names"].size, "battery", dtype=object))
            p.append(fr["st"])
        coords: dict[str, Any] = {
            "dnode": ("dnode", fo.node_label.astype(str)),
            "feeder": ("dnode", np.asarray(fo.names, dtype=str)[fo.inst_of_node]),
            "dnode_parent": ("dnode", fo.parent, {"long_name": "position of the upstream dnode (-1: substation)"}),
            "dnode_branch": ("dnode", np.r_[np.array([""], dtype=object), fo.br_names][
                np.where(fo.parent >= 0, np.searchsorted(fo.child, np.arange(fo.n_node)) + 1, 0)].astype(str),
                {"long_name": "branch feeding the dnode"}),
            "substation": ("substation", np.asarray(fo.names, dtype=str)),
            "substation_bus": ("substation", _bus_of_node(self.net, fo.inst_tnode),
                               {"long_name": "transmission bus the feeder hangs from"}),
        }
        if names:
            new["p_der"] = xr.DataArray(np.concatenate(p).T, dims=("time", "der"),
                                        attrs={"units": "MW", "long_name": "feeder resource injection "
                                               "(negative: charging / consumption)"})
            coords["der"] = ("der", np.concatenate(names).astype(str))
            coords["der_kind"] = ("der", np.concatenate(kinds).astype(str))
        out = ds.assign(new).assign_coords(coords)
        out.attrs.update(dlmp_decomposition_residual=d.residual, n_feeders=fo.n_inst, n_dnodes=fo.n_node)
        return out

    def _model_L(self) -> np.ndarray:
        fo, fr = self.fo, self._fraw
        lt = self._lt
        w = fo.kp[:, None] * (fo.par @ fr["v_full"])
        return lt.aP * fr["P"] + lt.aQ * fr["Q"] + lt.aW * w


def _bus_of_node(net: Any, nodes: np.ndarray) -> np.ndarray:
    bus = np.full(net.n_node, -1, np.int64)
    bus[net.bus_node[::-1]] = net.bus_ids[::-1]
    return bus[nodes]


def _apply_feeder_profile(fname: str, i: int, key: tuple[str, str], value: Any, T: int,
                          el: dict[str, dict[str, np.ndarray]], load_p: np.ndarray, load_q: np.ndarray,
                          pv: np.ndarray, scale: float) -> None:
    valid = [("load", "p_mw"), ("sgen", "p_mw"), ("sgen", "max_p_mw")]
    if key not in valid:
        raise InputError(f"feeder {fname!r}: profile key {key!r} is not supported; valid keys: {valid}.")
    table = key[0]
    kind = "load" if table == "load" else "pv"
    mine = np.flatnonzero(el[kind]["inst"] == i)
    local = np.array([n.split(":", 1)[1] for n in el[kind]["names"][mine]])  # "load:3"
    frame = prof._as_frame(value, key, T)
    target = load_p if kind == "load" else pv
    base = el[kind]["p"][mine]
    if isinstance(frame, np.ndarray):
        if not np.isfinite(frame).all():
            raise InputError(f"feeder {fname!r}: profile {key}: NaN or inf in the scaling factors.")
        target[mine] = base[:, None] * frame[None, :]
        if kind == "load":
            load_q[mine] = el["load"]["q"][mine][:, None] * frame[None, :]
        return
    pos = {n: k for k, n in enumerate(local)}
    cols = [f"{table}:{c}" for c in frame.columns]
    unknown = [c for c in cols if c not in pos]
    if unknown:
        raise InputError(f"feeder {fname!r}: profile {key}: column(s) {unknown[:5]} are no in-service "
                         f"{'fixed load' if kind == 'load' else 'uncontrollable sgen'} of the feeder.")
    vals = frame.to_numpy(dtype=float).T * scale
    if not np.isfinite(vals).all():
        e, t = np.argwhere(~np.isfinite(vals))[0]
        raise InputError(f"feeder {fname!r}: profile {key}: NaN or inf for {cols[e]} at row {t}.")
    rows = mine[[pos[c] for c in cols]]
    if kind == "load":
        ratio = np.divide(el["load"]["q"][rows], el["load"]["p"][rows], out=np.zeros(rows.size),
                          where=np.abs(el["load"]["p"][rows]) > 1e-12)
        load_q[rows] = vals * ratio[:, None]
    target[rows] = vals
