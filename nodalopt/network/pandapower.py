"""pandapower net -> :class:`NetworkArrays`.

Branch electrical data come from pandapower's own ``_pd2ppc`` (the same
conversion ``rundcopp`` uses, so lines, 2- and 3-winding transformers,
impedances, xwards and bus-bus switches are handled exactly as pandapower
does).  Injectors, loads, storage and costs are read from the element tables
directly so every element keeps its own identity (``"sgen:3"``) for profiles
and results.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from . import validate as V
from .arrays import DISPATCHABLE, FIXED, FLEX_LOAD, RENEWABLE, NetworkArrays
from .costs import expand_pwl, pwl_segments

#: tables that contribute to the DC model; anything else in service is refused
_SUPPORTED = {"bus", "line", "trafo", "trafo3w", "impedance", "switch", "ext_grid", "gen",
              "sgen", "load", "storage", "shunt", "ward", "xward", "dcline", "poly_cost", "pwl_cost"}
_UNSUPPORTED = ["motor", "asymmetric_load", "asymmetric_sgen", "tcsc", "svc", "ssc",
                "vsc", "line_dc", "source_dc", "load_dc", "b2b_vsc", "bi_vsc"]

#: optional column naming an injector's fuel / carrier (mapped to tCO2/MWh by nodalopt.carbon)
FUEL_COLUMN = "fuel"

_BRANCH_TABLES = ("line", "trafo", "trafo3w", "impedance", "xward")



def _bus_names(net: Any, pub: np.ndarray) -> dict[str, np.ndarray]:
    """``{"bus_names": names of the published buses}`` when ``net.bus.name`` is non-null and unique
    over all buses, else ``{}``.  The ``bus`` coordinate stays the pandapower index either way (the
    built-in cases name their buses by MATPOWER number, which differs from the index); the names
    become the side coordinate ``bus_name``."""
    if "name" not in net.bus:
        return {}
    names = net.bus["name"]
    text = names.astype(str)
    if names.isna().any() or not text.is_unique or (text.str.strip() == "").any():
        return {}
    return {"bus_names": text.to_numpy(dtype=object)[pub]}

def _col(df: pd.DataFrame, name: str, default: float) -> np.ndarray:
    """Column as float array; ``default`` where the column is absent (documented defaults only)."""
    if name in df.columns:
        return df[name].to_numpy(dtype=float)
    return np.full(len(df), default, dtype=float)


def _bool_col(df: pd.DataFrame, name: str, default: bool) -> np.ndarray:
    if name in df.columns:
        v = df[name]
        return v.fillna(default).to_numpy(dtype=bool)
    return np.full(len(df), default, dtype=bool)


def _names(table: str, idx: pd.Index) -> np.ndarray:
    return np.array([f"{table}:{i}" for i in idx], dtype=object)


class _LazyNames:
    """``"<table>:<index>"`` labels for the input checks, built only if an error message needs them.

    Indexing gives the labels of a subset (still lazy); ``np.asarray`` builds them.
    """

    def __init__(self, table: str, idx: pd.Index):
        self.table, self.idx = table, idx

    def __getitem__(self, key: Any) -> _LazyNames:
        return _LazyNames(self.table, self.idx[key])

    def __len__(self) -> int:
        return len(self.idx)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return _names(self.table, self.idx)


def _check_tables(net: Any) -> None:
    eg_on = _bool_col(net.ext_grid, "in_service", True) if len(net.ext_grid) else np.zeros(0, bool)
    gen_slack = (_bool_col(net.gen, "slack", False) & _bool_col(net.gen, "in_service", True)
                 if len(net.gen) else np.zeros(0, bool))
    if not eg_on.any() and not gen_slack.any():
        raise InputError("pandapower net: no reference bus: there is no in-service ext_grid and no "
                         "gen with slack=True; add an ext_grid or set gen.slack=True on one generator.")
    for t in _UNSUPPORTED:
        df = net.get(t) if hasattr(net, "get") else None
        if isinstance(df, pd.DataFrame) and len(df) and _bool_col(df, "in_service", True).any():
            raise InputError(f"pandapower net: table '{t}' has in-service elements "
                             f"({_names(t, df.index[:5]).tolist()}), which the DC-OPF does not "
                             "model yet; set them out of service or replace them by gen/load.")
    bus_ids = net.bus.index.to_numpy()
    for t, cols in (("line", ("from_bus", "to_bus")), ("trafo", ("hv_bus", "lv_bus")),
                    ("trafo3w", ("hv_bus", "mv_bus", "lv_bus")), ("impedance", ("from_bus", "to_bus")),
                    ("ext_grid", ("bus",)), ("gen", ("bus",)), ("sgen", ("bus",)),
                    ("load", ("bus",)), ("storage", ("bus",)), ("shunt", ("bus",)),
                    ("ward", ("bus",)), ("xward", ("bus",)), ("dcline", ("from_bus", "to_bus"))):
        df = net[t] if t in net else None
        if df is None or not len(df):
            continue
        names = _LazyNames(t, df.index)
        for c in cols:
            V.check_known_ids(df[c].to_numpy(), bus_ids, names, c, f"net.{t}")
    # reactance and self loops of in-service branches, in the user's own columns
    line = net.line[_bool_col(net.line, "in_service", True)]
    if len(line):
        names = _LazyNames("line", line.index)
        V.check_self_loops(line.from_bus.to_numpy(), line.to_bus.to_numpy(), names, "net.line")
        V.check_reactance(line.x_ohm_per_km.to_numpy(float) * line.length_km.to_numpy(float), names,
                          "x_ohm_per_km", "net.line")
        if "max_loading_percent" in line:
            rated = line.max_loading_percent.notna().to_numpy()
            V.check_positive(line.max_i_ka.to_numpy(float)[rated], names[rated], "max_i_ka", "net.line")
            V.check_positive(line.max_loading_percent.to_numpy(float)[rated], names[rated],
                             "max_loading_percent", "net.line")
    trafo = net.trafo[_bool_col(net.trafo, "in_service", True)]
    if len(trafo):
        names = _LazyNames("trafo", trafo.index)
        V.check_self_loops(trafo.hv_bus.to_numpy(), trafo.lv_bus.to_numpy(), names, "net.trafo")
        V.check_finite(trafo.vk_percent.to_numpy(float), names, "vk_percent", "net.trafo")
        V.check_positive(np.abs(trafo.vk_percent.to_numpy(float)), names, "vk_percent", "net.trafo")
        V.check_positive(trafo.sn_mva.to_numpy(float), names, "sn_mva", "net.trafo")
        if "max_loading_percent" in trafo:
            rated = trafo.max_loading_percent.notna().to_numpy()
            V.check_positive(trafo.max_loading_percent.to_numpy(float)[rated], names[rated],
                             "max_loading_percent", "net.trafo")
    imp = net.impedance[_bool_col(net.impedance, "in_service", True)]
    if len(imp):
        names = _LazyNames("impedance", imp.index)
        V.check_self_loops(imp.from_bus.to_numpy(), imp.to_bus.to_numpy(), names, "net.impedance")
        V.check_reactance(imp.xft_pu.to_numpy(float), names, "xft_pu", "net.impedance")


def _ppc(net: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run pandapower's own conversion with ``rundcopp``'s options on a copy."""
    from pandapower.auxiliary import _init_rundcopp_options
    from pandapower.pd2ppc import _pd2ppc

    work = copy.copy(net)  # shallow: _pd2ppc only adds private keys
    work._options = {}
    _init_rundcopp_options(work, check_connectivity=False, switch_rx_ratio=0.5, delta=1e-10,
                           trafo3w_losses="hv")
    try:
        with warnings.catch_warnings():  # pandapower's notes on its own data model, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            ppc, _ = _pd2ppc(work)
    except (UserWarning, KeyError, ValueError, IndexError) as exc:
        raise InputError(f"pandapower could not convert the net: {type(exc).__name__}: {exc}") from exc
    return ppc, work._pd2ppc_lookups


class PandapowerDefaultsWarning(UserWarning):
    """pandapower filled in a value the net does not give (a missing cost row, a NaN limit, ...).

    nodalopt follows pandapower's own rule and lists the elements concerned; the same list is in
    the result's ``attrs["pandapower_defaults"]``.  ``strict=True`` turns these into an
    :class:`~nodalopt.errors.InputError`.
    """


#: tables whose pandapower cost is written on minus their power (pandapower's ``_map_costs_to_gen``)
_NEGATED = ("load", "storage", "dcline")


class _Costs:
    """pandapower's cost rules (``pandapower/opf/make_objective.py``) for one net.

    * no ``poly_cost`` and no ``pwl_cost`` row at all: every generator row of the OPF (ext_grid,
      gen, controllable sgen / load / storage, both ends of a dcline) costs 1 per MW of injection;
    * otherwise an element without a row costs 0;
    * once any ``pwl_cost`` row exists, the polynomial rows become linear (``cp0_eur`` is dropped,
      quadratic terms are refused as pandapower refuses them);
    * load, storage and dcline costs are negated and written on the injection (``-p``).
    """

    def __init__(self, net: Any, defaults: list[str]):
        self.net, self.defaults = net, defaults
        self.none = not len(net.poly_cost) and not len(net.pwl_cost)
        self.pwl_mode = bool(len(net.pwl_cost))
        if self.none:
            defaults.append("no poly_cost or pwl_cost row at all: every generator costs 1 per MW of "
                            "injection (pandapower's rule)")
        if self.pwl_mode and len(net.poly_cost):
            quad = [c for c in ("cp2_eur_per_mw2", "cq2_eur_per_mvar2") if c in net.poly_cost]
            if quad and net.poly_cost[quad].to_numpy(float).any():
                raise InputError("net.poly_cost has quadratic terms and net.pwl_cost has rows: pandapower "
                                 "cannot mix piecewise-linear and quadratic costs; use one kind.")

    def rows(self, table: str, idx: pd.Index, controllable: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """(c0, c1, c2, pwl) of elements ``idx`` of ``table`` on their *injection* (MW, $/h).

        ``controllable`` (mask over ``idx``, default all) marks the elements that are OPF
        generators; the cost rows of the others are ignored, as pandapower ignores them.
        """
        net, n = self.net, len(idx)
        ctrl = np.ones(n, bool) if controllable is None else controllable
        sign = -1.0 if table in _NEGATED else 1.0
        c0, c1, c2 = np.zeros(n), np.zeros(n), np.zeros(n)
        has = np.zeros(n, bool)
        pwl: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.none:
            c1[ctrl] = 1.0
            return c0, c1, c2, pwl
        pos = pd.Series(np.arange(n), index=idx)
        names = _LazyNames(table, idx)
        pc = net.poly_cost
        if len(pc):
            rows = pc[(pc.et == table) & pc.element.isin(idx)]
            dup = rows.element.duplicated()
            if dup.any():
                raise InputError(f"net.poly_cost: more than one cost row for {table} "
                                 f"{rows.element[dup].tolist()[:5]}; keep one per element.")
            p = pos[rows.element].to_numpy()
            vals = {}
            for col in ("cp0_eur", "cp1_eur_per_mw", "cp2_eur_per_mw2"):
                vals[col] = rows[col].to_numpy(float) if col in rows else np.zeros(len(rows))
                V.check_finite(vals[col], _names(table, pd.Index(rows.element)), col, "net.poly_cost")
            c1[p] = sign * vals["cp1_eur_per_mw"]
            if self.pwl_mode:  # pandapower turns the rows into 2-point pwl curves: no constant
                drop = vals["cp0_eur"] != 0
                if drop.any():
                    self.defaults.append(f"cp0_eur dropped because net.pwl_cost has rows (pandapower): "
                                         f"{_names(table, pd.Index(rows.element[drop])).tolist()[:8]}")
            else:
                c0[p] = sign * vals["cp0_eur"]
                c2[p] = sign * vals["cp2_eur_per_mw2"]
            has[p] = True
        wc = net.pwl_cost
        if len(wc):
            rows = wc[(wc.et == table) & wc.element.isin(idx) & (wc.power_type == "p")]
            for el, pts in zip(rows.element.to_numpy(), rows.points.to_numpy(), strict=True):
                k = int(pos[el])
                if has[k]:
                    raise InputError(f"{table}:{el} has both a poly_cost and a pwl_cost (or two pwl "
                                     "rows); keep exactly one cost entry per element.")
                pwl[k] = pwl_segments(pts, f"{table}:{el}", "net.pwl_cost", sign=sign)
                has[k] = True
        if (c2 < 0).any():
            bad = np.flatnonzero(c2 < 0)
            what = ("pandapower negates the cost of loads, storage and dclines, so a positive "
                    "'cp2_eur_per_mw2' there is concave" if sign < 0 else "the cost must be convex")
            raise InputError(f"net.poly_cost: 'cp2_eur_per_mw2' of {np.asarray(names[bad]).tolist()[:5]} "
                             f"gives a negative quadratic cost on the injection; {what}.")
        ignored = has & ~ctrl
        if ignored.any():
            self.defaults.append(f"cost rows ignored (controllable=False, held at p_mw as pandapower does): "
                                 f"{np.asarray(names[ignored]).tolist()[:8]}")
        missing = ctrl & ~has
        if missing.any():
            self.defaults.append(f"no cost row, cost 0 (pandapower's rule): "
                                 f"{np.asarray(names[missing]).tolist()[:8]}"
                                 + (f" (+{int(missing.sum()) - 8} more)" if missing.sum() > 8 else ""))
        keep = ctrl.astype(float)
        pwl = {k: v for k, v in pwl.items() if ctrl[k]}
        return c0 * keep, c1 * keep, c2 * keep, pwl


def _limits(df: pd.DataFrame, table: str, defaults: list[str], inverted: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """(pmin, pmax) of the injection as ``rundcopp`` builds them (``build_gen.add_p_constraints``).

    A missing column or a NaN means no limit (pandapower: +-1000 TW), reported in ``defaults``;
    ``inverted`` (loads, storage): the injection is ``-p``, so its bounds are ``-max_p_mw, -min_p_mw``.
    """
    out = []
    for col in ("min_p_mw", "max_p_mw"):
        v = _col(df, col, np.nan)
        nan = np.isnan(v)
        V.check_finite(v[~nan], _names(table, df.index[~nan]), col, f"net.{table}")
        if nan.any():
            names = _names(table, df.index[nan]).tolist()
            defaults.append(f"net.{table}: '{col}' missing or NaN, no limit (pandapower: +-1000 TW): "
                            f"{names[:8]}" + (f" (+{len(names) - 8} more)" if len(names) > 8 else ""))
        out.append(v)
    lo, hi = out
    if inverted:
        lo, hi = -hi, -lo
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


def _dclines(net: Any, bus_lookup: np.ndarray, costs: _Costs, defaults: list[str]) -> dict[str, np.ndarray]:
    """In-service dclines as ``rundcopp`` models them (``auxiliary._add_dcline_gens`` and
    ``optimal_powerflow._add_dcline_constraints``).

    pandapower replaces a dcline by a generator at each end, ``Pf`` at ``from_bus`` and ``Pt``
    at ``to_bus``, tied by ``(1 + loss_percent/100) Pt + Pf = -loss_mw``; the sign of ``p_mw``
    fixes the direction (``p_mw > 0``: ``Pt`` in ``[0, max_p_mw]``, ``Pf`` in ``[-max_p_mw, 0]``;
    otherwise the reverse).  Here ``p = -Pf`` (MW withdrawn at ``from_bus``) is the variable and
    ``Pt = p / (1 + l) - loss_mw / (1 + l)``; both generators' limits become bounds on ``p``.
    """
    df = net.dcline if "dcline" in net else None
    if df is None or not len(df):
        return {}
    df = df[_bool_col(df, "in_service", True)]
    if not len(df):
        return {}
    names = _names("dcline", df.index)
    loss_pct = _col(df, "loss_percent", 0.0)
    loss_mw = _col(df, "loss_mw", 0.0)
    p_set = _col(df, "p_mw", 0.0)
    for v, col in ((loss_pct, "loss_percent"), (loss_mw, "loss_mw"), (p_set, "p_mw")):
        V.check_finite(v, names, col, "net.dcline")
    if ((loss_pct <= -100) | (loss_mw < 0) | (loss_pct < 0)).any():
        bad = (loss_pct < 0) | (loss_mw < 0)
        raise InputError(f"net.dcline: negative 'loss_percent' or 'loss_mw' for {V._list(names, bad)}.")
    pmax = _col(df, "max_p_mw", np.nan)
    nan = np.isnan(pmax)
    V.check_finite(pmax[~nan], names[~nan], "max_p_mw", "net.dcline")
    V.check_positive(pmax[~nan], names[~nan], "max_p_mw", "net.dcline", strict=False)
    if nan.any():
        defaults.append(f"net.dcline: 'max_p_mw' missing or NaN, no limit (pandapower: +-1000 TW): "
                        f"{names[nan].tolist()[:8]}")
    pmax = np.where(nan, np.inf, pmax)
    fwd = p_set > 0
    # generator limits of both ends (auxiliary._add_dcline_gens)
    t_lo, t_hi = np.where(fwd, 0.0, -pmax), np.where(fwd, pmax, 0.0)
    f_lo, f_hi = -t_hi, -t_lo
    k = 1.0 + loss_pct / 100.0
    eff, loss = 1.0 / k, loss_mw / k
    with np.errstate(invalid="ignore"):
        lo = np.maximum(-f_hi, t_lo * k + loss_mw)
        hi = np.minimum(-f_lo, t_hi * k + loss_mw)
    if (lo > hi + 1e-9).any():
        bad = lo > hi + 1e-9
        raise InputError(f"net.dcline: 'loss_mw' exceeds 'max_p_mw' for {V._list(names, bad)}: the link "
                         "cannot carry its own standing losses.")
    pc = costs.net.pwl_cost
    if len(pc) and ((pc.et == "dcline") & pc.element.isin(df.index)).any():
        raise InputError("net.pwl_cost rows for dclines are not supported; give them a poly_cost (linear).")
    if costs.none:  # both generator ends cost 1 per MW of injection: Pf + Pt = -p + (eff p - loss)
        c0, c1_p = -loss, eff - 1.0
    else:  # the row is written on Pf = -p (negated by pandapower): cost = c1 * Pf = -c1 * p
        c0, c1, _, _ = costs.rows("dcline", df.index)
        c1_p = -c1
    return dict(dc_names=names, dc_f=bus_lookup[df.from_bus.to_numpy()], dc_t=bus_lookup[df.to_bus.to_numpy()],
                dc_pmin=lo, dc_pmax=hi, dc_eff=eff, dc_loss=loss, dc_c0=c0, dc_c1=c1_p)


def from_pandapower(net: Any, dc_model: str = "pandapower", name: str | None = None, *, strict: bool = False,
                    curtail_sgen: bool = False, storage: str = "horizon") -> NetworkArrays:
    """Compile a pandapower net into :class:`NetworkArrays`, with ``rundcopp``'s meaning.

    Every element and flag is read as pandapower's DC OPF reads it: P limits of an ext_grid
    are enforced whatever its ``controllable`` flag; a missing or NaN limit is no limit; a
    non-controllable gen, sgen, load or storage unit is held at its set point and its cost
    row ignored; an element without a cost row costs 0 and a net without any cost row gives
    every generator 1 per MW; ``cp0_eur`` is dropped once any ``pwl_cost`` row exists; loads,
    storage and dclines have their costs negated on their injection; dclines are modelled.
    The defaults pandapower fills in are listed in ``meta["pandapower_defaults"]`` and in a
    :class:`PandapowerDefaultsWarning`.

    Parameters
    ----------
    net : pandapowerNet
    dc_model : {"pandapower", "pglib"}
        ``"pandapower"``: ``b = 1/(x * tap)`` with phase-shift injections, as
        ``rundcopp``.  ``"pglib"``: ``b = x / (r^2 + x^2)``, taps and shifts
        ignored (PowerModels' DCPPowerModel).
    name : str, optional
        Label stored in the result (defaults to ``net.name``).
    strict : bool
        Refuse (:class:`InputError`) instead of filling in pandapower's defaults.
    curtail_sgen : bool
        nodalopt's richer model: a non-controllable sgen is a variable renewable, available
        up to ``p_mw`` and curtailable (pandapower holds it at ``p_mw``).
    storage : {"horizon", "power"}
        ``"horizon"``: controllable storage tracks its energy over the horizon (needs
        ``soc_percent``, ``max_e_mwh``).  ``"power"``: as ``rundcopp`` in one period, it is
        dispatched within ``min_p_mw`` / ``max_p_mw`` alone.
    """
    from pandapower.pypower.idx_brch import BR_R, BR_STATUS, BR_X, F_BUS, RATE_A, SHIFT, T_BUS, TAP
    from pandapower.pypower.idx_bus import BUS_TYPE, GS, REF

    if dc_model not in ("pandapower", "pglib"):
        raise InputError(f"dc_model={dc_model!r} is not one of 'pandapower', 'pglib'.")
    if storage not in ("horizon", "power"):
        raise InputError(f"storage={storage!r} is not one of 'horizon', 'power'.")
    if len(net.bus) == 0:
        raise InputError("pandapower net has no buses.")
    V.check_unique(net.bus.index.to_numpy(), "bus index", "net.bus")
    _check_tables(net)
    ppc, lookups = _ppc(net)
    base = float(ppc["baseMVA"])
    bus_lookup = np.asarray(lookups["bus"])
    n_node = int(ppc["bus"].shape[0])
    br = ppc["branch"]

    # ---------------------------------------------------------------- branches
    names_parts, keep_parts = [], []
    for table, (a, b) in lookups["branch"].items():
        if table not in _BRANCH_TABLES:
            raise InputError(f"pandapower net: branch table '{table}' is not supported by the DC model.")
        df = net[table]
        if table == "trafo3w":
            nm = np.concatenate([_names(table, df.index) + f":{s}" for s in ("hv", "mv", "lv")])
        else:
            nm = _names(table, df.index)
        names_parts.append(nm)
        keep_parts.append(np.arange(a, b))
    rows = np.concatenate(keep_parts) if keep_parts else np.zeros(0, np.int64)
    br_names = np.concatenate(names_parts) if names_parts else np.zeros(0, object)
    # the flow limits rundcopp applies (pypower opf_setup): RATE_A from pandapower's conversion where it
    # is neither 0 nor >= 1e10 -- lines and transformers with a max_loading_percent, impedances at their
    # sn_mva; a NaN rating (NaN max_loading_percent) is no limit
    rate_a = br[rows, RATE_A].real
    with np.errstate(invalid="ignore"):
        rated = np.isfinite(rate_a) & (rate_a != 0) & (rate_a < 1e10)
    status = br[rows, BR_STATUS].real > 0
    fb = br[rows, F_BUS].real.astype(np.int64)
    tb = br[rows, T_BUS].real.astype(np.int64)
    status &= (ppc["bus"][fb, BUS_TYPE].real != 4) & (ppc["bus"][tb, BUS_TYPE].real != 4)
    rows, br_names, rated, fb, tb = rows[status], br_names[status], rated[status], fb[status], tb[status]
    r = br[rows, BR_R].real
    x = br[rows, BR_X].real
    V.check_self_loops(fb, tb, br_names, "pandapower branch model")
    if dc_model == "pandapower":
        V.check_reactance(x, br_names, "x (per unit after conversion)", "pandapower branch model")
        tap = br[rows, TAP].real
        tap = np.where(tap == 0, 1.0, tap)
        b_pu = 1.0 / (x * tap)
        shift = np.deg2rad(br[rows, SHIFT].real)
    else:
        z2 = r * r + x * x
        V.check_reactance(np.where(z2 == 0, 0.0, np.where(x == 0, 1.0, x)), br_names, "x (per unit after conversion)",
                          "pandapower branch model")
        b_pu = x / z2
        shift = np.zeros(rows.size)
    rate = np.where(rated, br[rows, RATE_A].real, np.inf)
    V.check_positive(rate[rated], br_names[rated], "rating (max_i_ka / sn_mva x max_loading_percent, "
                     "impedance sn_mva)",
                     "pandapower branch model")

    # ---------------------------------------------------------------- injectors
    # every element as rundcopp reads it (pandapower/build_gen.py, opf/make_objective.py):
    # limits of the OPF generator rows, non-controllable elements fixed at their set point
    defaults: list[str] = []
    costs = _Costs(net, defaults)
    g_names, g_node, g_kind, g_pmin, g_pmax = [], [], [], [], []
    g_c: list[list[np.ndarray]] = [[], [], []]
    g_ru, g_rd = [], []
    g_co2: list[np.ndarray] = []
    g_fuel: list[np.ndarray] = []
    pwl_pos: list[int] = []
    pwl_seg: list[tuple[np.ndarray, np.ndarray]] = []
    fixed = np.zeros(n_node)
    n_g = 0

    def add(table: str, df: pd.DataFrame, kind: np.ndarray, pmin: np.ndarray, pmax: np.ndarray,
            cost: tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]) -> None:
        nonlocal n_g
        if not len(df):
            return
        names = _names(table, df.index)
        c0, c1, c2, pwl = cost
        for k, seg in pwl.items():
            pwl_pos.append(n_g + k)
            pwl_seg.append(seg)
        g_names.append(names)
        g_node.append(bus_lookup[df.bus.to_numpy()])
        g_kind.append(kind)
        g_pmin.append(pmin)
        g_pmax.append(pmax)
        g_c[0].append(c0)
        g_c[1].append(c1)
        g_c[2].append(c2)
        ru = _col(df, "ramp_up_mw_per_h", np.inf)
        rd = _col(df, "ramp_down_mw_per_h", np.inf)
        ru = np.where(np.isnan(ru), np.inf, ru)
        rd = np.where(np.isnan(rd), np.inf, rd)
        V.check_positive(ru, names, "ramp_up_mw_per_h", f"net.{table}", strict=False)
        V.check_positive(rd, names, "ramp_down_mw_per_h", f"net.{table}", strict=False)
        g_ru.append(ru)
        g_rd.append(rd)
        co2 = _col(df, "co2_t_per_mwh", np.nan)
        if table in ("load", "storage"):
            co2 = np.zeros(len(df))  # a flexible load or a storage unit emits nothing itself
        elif np.any(co2 < 0):
            raise InputError(f"net.{table}: column 'co2_t_per_mwh' is negative for {V._list(names, co2 < 0)}.")
        g_co2.append(co2)
        g_fuel.append(df[FUEL_COLUMN].fillna("").astype(str).to_numpy(dtype=object) if FUEL_COLUMN in df
                      else np.full(len(df), "", dtype=object))
        n_g += len(df)

    def in_service(df: pd.DataFrame) -> pd.DataFrame:
        return df[_bool_col(df, "in_service", True)]

    def check_limits(table: str, df: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> None:
        V.check_bounds_order(lo, hi, _names(table, df.index), "min_p_mw", "max_p_mw", f"net.{table}")

    eg = in_service(net.ext_grid)
    if len(eg):
        # rundcopp enforces an ext_grid's P limits whatever its 'controllable' flag (that flag only
        # fixes its voltage); a missing or NaN limit is no limit
        lo, hi = _limits(eg, "ext_grid", defaults)
        V.check_bounds_order(lo, hi, _names("ext_grid", eg.index), "min_p_mw", "max_p_mw", "net.ext_grid")
        add("ext_grid", eg, np.full(len(eg), DISPATCHABLE), lo, hi, costs.rows("ext_grid", eg.index))

    g = in_service(net.gen)
    if len(g):
        ctrl = _bool_col(g, "controllable", True)  # pandapower fills a missing flag with True for gens
        lo, hi = _limits(g[ctrl], "gen", defaults)
        check_limits("gen", g[ctrl], lo, hi)
        # a non-controllable gen is held at p_mw (unscaled, as build_gen._enforce_controllable_vm_pu_p_mw)
        p_set = g.p_mw.to_numpy(float)
        V.check_finite(p_set[~ctrl], _names("gen", g.index[~ctrl]), "p_mw", "net.gen")
        pmin, pmax = p_set.copy(), p_set.copy()
        pmin[ctrl], pmax[ctrl] = lo, hi
        add("gen", g, np.full(len(g), DISPATCHABLE), pmin, pmax, costs.rows("gen", g.index))

    sg = in_service(net.sgen)
    if len(sg):
        ctrl = _bool_col(sg, "controllable", False)
        c = sg[ctrl]
        if len(c):
            lo, hi = _limits(c, "sgen", defaults)
            check_limits("sgen", c, lo, hi)
            add("sgen", c, np.full(len(c), DISPATCHABLE), lo, hi, costs.rows("sgen", c.index))
        u = sg[~ctrl]
        if len(u):
            pu = u.p_mw.to_numpy(float) * _col(u, "scaling", 1.0)
            names = _names("sgen", u.index)
            V.check_finite(pu, names, "p_mw", "net.sgen")
            if curtail_sgen:  # nodalopt's richer model: a variable renewable, available up to p_mw
                V.check_positive(pu, names, "p_mw", "net.sgen", strict=False)
                cost = costs.rows("sgen", u.index)
                add("sgen", u, np.full(len(u), RENEWABLE), np.zeros(len(u)), pu, cost)
            else:  # pandapower: a fixed injection at its set point, its cost row ignored
                cost = costs.rows("sgen", u.index, controllable=np.zeros(len(u), bool))
                add("sgen", u, np.full(len(u), FIXED), pu, pu, cost)

    ld = in_service(net.load)
    ctrl_l = _bool_col(ld, "controllable", False) if len(ld) else np.zeros(0, bool)
    if len(ld) and (~ctrl_l).any():
        costs.rows("load", ld.index[~ctrl_l], controllable=np.zeros(int((~ctrl_l).sum()), bool))
    if ctrl_l.any():
        c = ld[ctrl_l]
        lo, hi = _limits(c, "load", defaults, inverted=True)
        check_limits("load", c, lo, hi)
        add("load", c, np.full(len(c), FLEX_LOAD), lo, hi, costs.rows("load", c.index))
    fl = ld[~ctrl_l] if len(ld) else ld
    load_names = _names("load", fl.index)
    load_p = fl.p_mw.to_numpy(float) * _col(fl, "scaling", 1.0) if len(fl) else np.zeros(0)
    V.check_finite(load_p, load_names, "p_mw", "net.load")
    load_node = bus_lookup[fl.bus.to_numpy()] if len(fl) else np.zeros(0, np.int64)

    # ------------------------------------------------------------------ storage
    st = in_service(net.storage)
    st_ctrl = _bool_col(st, "controllable", False) if len(st) else np.zeros(0, bool)
    s = st[st_ctrl] if len(st) else st
    s_names = _names("storage", s.index)
    st_kw: dict[str, np.ndarray] = {}
    if len(s) and storage == "power":
        # one period, as rundcopp: a controllable storage unit is dispatched within its power limits
        # (injection -p), its energy is not modelled
        lo, hi = _limits(s, "storage", defaults, inverted=True)
        check_limits("storage", s, lo, hi)
        add("storage", s, np.full(len(s), FLEX_LOAD), lo, hi, costs.rows("storage", s.index))
    elif len(s):
        lo, hi = _col(s, "min_p_mw", np.nan), _col(s, "max_p_mw", np.nan)
        emin, emax = _col(s, "min_e_mwh", 0.0), _col(s, "max_e_mwh", np.nan)
        soc = _col(s, "soc_percent", np.nan)
        for v, cname in ((lo, "min_p_mw"), (hi, "max_p_mw"), (emin, "min_e_mwh"), (emax, "max_e_mwh")):
            V.check_finite(v, s_names, cname, "net.storage")
        if np.isnan(soc).any():
            raise InputError(f"net.storage: 'soc_percent' is NaN for {V._list(s_names, np.isnan(soc))}: a "
                             "multi-period solve tracks the stored energy and needs the initial state of "
                             "charge (a single period dispatches storage within its power limits, as "
                             "rundcopp, and does not need it).")
        V.check_finite(soc, s_names, "soc_percent", "net.storage")
        V.check_bounds_order(lo, hi, s_names, "min_p_mw", "max_p_mw", "net.storage")
        V.check_bounds_order(emin, emax, s_names, "min_e_mwh", "max_e_mwh", "net.storage")
        V.check_positive(emax, s_names, "max_e_mwh", "net.storage")
        e0 = soc / 100.0 * emax
        soc_f = _col(s, "final_soc_percent", np.nan)
        e_final = np.where(np.isnan(soc_f), e0, soc_f / 100.0 * emax)
        eta_c = _col(s, "charge_efficiency", 1.0)
        eta_d = _col(s, "discharge_efficiency", 1.0)
        for v, cname in ((eta_c, "charge_efficiency"), (eta_d, "discharge_efficiency")):
            if ((v <= 0) | (v > 1) | np.isnan(v)).any():
                raise InputError(f"net.storage: column '{cname}' must be in (0, 1] for {s_names.tolist()[:5]}.")
        st_kw = dict(
            st_names=s_names, st_node=bus_lookup[s.bus.to_numpy()],
            st_p_charge=np.maximum(hi, 0.0), st_p_discharge=np.maximum(-lo, 0.0),
            st_e_min=emin, st_e_max=emax, st_e_init=e0, st_e_final=e_final,
            st_eta_charge=eta_c, st_eta_discharge=eta_d)
    su = st[~st_ctrl] if len(st) else st
    if len(su):  # fixed storage schedule: load convention (p_mw > 0 charges)
        np.add.at(fixed, bus_lookup[su.bus.to_numpy()], su.p_mw.to_numpy(float) * _col(su, "scaling", 1.0))
        costs.rows("storage", su.index, controllable=np.zeros(len(su), bool))

    # ------------------------------------------------------------------ dclines
    dc_kw = _dclines(net, bus_lookup, costs, defaults)

    # ------------------------------------------------- fixed demand at nodes
    fixed += ppc["bus"][:, GS].real  # shunts and ward pz (MW at 1 pu), as PYPOWER
    for t in ("ward", "xward"):
        w = in_service(net[t])
        if len(w):
            V.check_finite(w.ps_mw.to_numpy(float), _names(t, w.index), "ps_mw", f"net.{t}")
            np.add.at(fixed, bus_lookup[w.bus.to_numpy()], w.ps_mw.to_numpy(float))

    # ------------------------------------------------------- islands, refs
    gen_node = np.concatenate(g_node) if g_node else np.zeros(0, np.int64)
    conn = b_pu != 0  # a branch with b = 0 carries no DC flow
    node_island = V.islands(n_node, fb[conn], tb[conn])
    bus_in = _bool_col(net.bus, "in_service", True)
    node_label = np.empty(n_node, dtype=object)
    node_label[:] = [f"node:{i}" for i in range(n_node)]
    node_label[bus_lookup[net.bus.index.to_numpy()]] = _names("bus", net.bus.index)
    ref_cand = np.flatnonzero(ppc["bus"][:, BUS_TYPE].real == REF)
    # ext_grid buses first, then slack generators (as pandapower)
    eg_nodes = bus_lookup[eg.bus.to_numpy()] if len(eg) else np.zeros(0, np.int64)
    ref_cand = np.r_[eg_nodes, ref_cand[~np.isin(ref_cand, eg_nodes)]].astype(np.int64)
    src_node = np.r_[gen_node, dc_kw.get("dc_f", np.zeros(0, np.int64)),
                     dc_kw.get("dc_t", np.zeros(0, np.int64))].astype(np.int64)
    ref_node, live = V.choose_references(node_island, ref_cand, src_node, load_node, load_p,
                                         load_names, fixed, node_label, "pandapower net")
    pub = bus_in & live[node_island[bus_lookup[net.bus.index.to_numpy()]]]
    bus_ids = net.bus.index.to_numpy()[pub].astype(np.int64)
    pwl_gen, pwl_slope, pwl_icpt = expand_pwl(np.asarray(pwl_pos, np.int64), pwl_seg)
    arrays = NetworkArrays(
        name=name or str(net.name or "pandapower net"),
        base_mva=base,
        n_node=n_node,
        ref_node=ref_node,
        node_island=node_island,
        node_fixed_demand=fixed,
        bus_ids=bus_ids,
        bus_node=bus_lookup[bus_ids],
        br_names=br_names,
        br_f=fb, br_t=tb, br_b=b_pu, br_shift=shift, br_rate=rate,
        br_angmin=np.full(rows.size, -np.inf), br_angmax=np.full(rows.size, np.inf),
        gen_names=np.concatenate(g_names) if g_names else np.zeros(0, object),
        gen_node=gen_node,
        gen_kind=np.concatenate(g_kind).astype(np.int8) if g_kind else np.zeros(0, np.int8),
        gen_pmin=np.concatenate(g_pmin) if g_pmin else np.zeros(0),
        gen_pmax=np.concatenate(g_pmax) if g_pmax else np.zeros(0),
        gen_c0=np.concatenate(g_c[0]) if g_c[0] else np.zeros(0),
        gen_c1=np.concatenate(g_c[1]) if g_c[1] else np.zeros(0),
        gen_c2=np.concatenate(g_c[2]) if g_c[2] else np.zeros(0),
        gen_ramp_up=np.concatenate(g_ru) if g_ru else np.zeros(0),
        gen_ramp_down=np.concatenate(g_rd) if g_rd else np.zeros(0),
        pwl_gen=pwl_gen, pwl_slope=pwl_slope, pwl_intercept=pwl_icpt,
        gen_co2=np.concatenate(g_co2) if g_co2 else np.zeros(0),
        gen_fuel=np.concatenate(g_fuel) if g_fuel else np.zeros(0, object),
        load_names=load_names, load_node=load_node, load_p=load_p,
        meta={"source": "pandapower", "dc_model": dc_model, "pandapower_defaults": list(defaults),
              **_bus_names(net, pub)},
        **st_kw, **dc_kw,
    )
    arrays = V.check_susceptance(arrays, "pandapower branch model")
    if defaults:
        text = "; ".join(defaults)
        if strict:
            raise InputError(f"pandapower net (strict=True): values pandapower would fill in: {text}. "
                             "Give them explicitly, or pass strict=False to accept pandapower's rules.")
        warnings.warn(f"{arrays.name}: following pandapower's rules: {text}", PandapowerDefaultsWarning,
                      stacklevel=3)
    return arrays
