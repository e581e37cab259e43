"""Time series for a multi-period solve.

Profiles are keyed like pandapower's time-series controllers, ``(table,
column)``, and given as a pandas DataFrame or xarray DataArray (one row per
period, one column per element index) or as a 1-D sequence of per-period
scaling factors applied to the element's base value.  Keys:

============================  ===========================================
``("load", "p_mw")``          fixed load demand (MW)
``("sgen", "max_p_mw")``      renewable availability / unit capacity (MW)
``("sgen", "p_mw")``          same as above for uncontrollable sgens
``("gen", "max_p_mw")``       unit capacity (MW); also ``min_p_mw``
``("ext_grid", "max_p_mw")``  import limit (MW); also ``min_p_mw``
============================  ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .network.arrays import FIXED, RENEWABLE, NetworkArrays

VALID_KEYS = [("load", "p_mw"), ("sgen", "max_p_mw"), ("sgen", "p_mw"), ("gen", "max_p_mw"),
              ("gen", "min_p_mw"), ("sgen", "min_p_mw"), ("ext_grid", "max_p_mw"),
              ("ext_grid", "min_p_mw")]


@dataclass(frozen=True)
class Series:
    """Resolved per-period values (element x time)."""

    load_p: np.ndarray
    gen_pmin: np.ndarray
    gen_pmax: np.ndarray
    time: pd.DatetimeIndex


def demo_profiles() -> pd.DataFrame:
    """The shipped 24-hour demo shapes (columns ``load``, ``solar``, ``wind``; per unit of base)."""
    with resources.files("nodalopt").joinpath("data/demo_24h.csv").open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, comment="#")
    return df.set_index("hour")


def _as_frame(value: Any, key: tuple[str, str], n_periods: int) -> pd.DataFrame | np.ndarray:
    """DataFrame (time x element) or a 1-D scaling array."""
    try:
        import xarray as xr

        if isinstance(value, xr.DataArray):
            if value.ndim == 1:
                value = value.to_numpy()
            else:
                value = value.to_pandas()
    except ImportError:  # pragma: no cover - xarray is a dependency
        pass
    if isinstance(value, pd.Series):
        value = value.to_numpy()
    if isinstance(value, pd.DataFrame):
        if len(value) != n_periods:
            raise InputError(f"profile {key}: {len(value)} rows for {n_periods} periods.")
        return value
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.size != n_periods:
        raise InputError(f"profile {key}: give a DataFrame (time x element) or a 1-D array of "
                         f"{n_periods} scaling factors; got shape {arr.shape}.")
    return arr


def resolve(net: NetworkArrays, profiles: Mapping[tuple[str, str], Any] | None, n_periods: int,
            time: pd.DatetimeIndex, demo: bool) -> Series:
    """Turn user profiles into (element x time) arrays on the network's element order."""
    T = n_periods
    load_p = np.repeat(net.load_p[:, None], T, axis=1)
    pmin = np.repeat(net.gen_pmin[:, None], T, axis=1)
    pmax = np.repeat(net.gen_pmax[:, None], T, axis=1)
    if demo and not profiles:
        shapes = demo_profiles()
        hours = (np.arange(T) * 1.0) % 24
        pick = lambda col: np.interp(hours, shapes.index.to_numpy(float), shapes[col].to_numpy(float),  # noqa: E731
                                     period=24)
        load_p = load_p * pick("load")[None, :]
        ren = net.gen_kind == RENEWABLE
        names = np.asarray(net.gen_names, dtype=str)
        solar = (ren | (net.gen_kind == FIXED)) & np.char.startswith(names, "sgen")
        shape = np.where(solar[:, None], pick("solar")[None, :], pick("wind")[None, :])
        pmax = np.where(ren[:, None], pmax * shape, pmax)
        fixed_sgen = (net.gen_kind == FIXED)[:, None]  # held at its (shaped) set point
        pmin, pmax = np.where(fixed_sgen, pmin * shape, pmin), np.where(fixed_sgen, pmax * shape, pmax)
        return Series(load_p, pmin, pmax, time)
    for key, value in (profiles or {}).items():
        if not (isinstance(key, tuple) and len(key) == 2) or key not in VALID_KEYS:
            raise InputError(f"profile key {key!r} is not supported; valid keys: {VALID_KEYS}.")
        table, column = key
        frame = _as_frame(value, key, T)
        if table == "load":
            target, group, base = load_p, "load", net.load_p
        else:
            target = pmin if column == "min_p_mw" else pmax
            group = "gen"
            base = net.gen_pmin if column == "min_p_mw" else net.gen_pmax
        index = net.names_index[group]
        if isinstance(frame, np.ndarray):
            if not np.isfinite(frame).all():
                raise InputError(f"profile {key}: NaN or inf in the scaling factors at periods "
                                 f"{np.flatnonzero(~np.isfinite(frame))[:5].tolist()}.")
            rows = np.array([i for n, i in index.items() if n.startswith(table + ":")], dtype=np.int64)
            target[rows] = base[rows, None] * frame[None, :]
            if group == "gen" and column != "min_p_mw":  # FIXED injectors: set point at both bounds
                held = rows[net.gen_kind[rows] == FIXED]
                pmin[held] = net.gen_pmin[held, None] * frame[None, :]
            continue
        cols = [f"{table}:{c}" for c in frame.columns]
        unknown = [c for c in cols if c not in index]
        if unknown:
            raise InputError(f"profile {key}: column(s) {unknown[:5]} name no in-service {table} "
                             f"element of the network (known: {list(index)[:5]}...).")
        vals = frame.to_numpy(dtype=float).T
        bad = ~np.isfinite(vals)
        if bad.any():
            e, t = np.argwhere(bad)[0]
            raise InputError(f"profile {key}: NaN or inf for element {cols[e]} at row {t} "
                             f"({frame.index[t]}); fill the gap.")
        rows = np.array([index[c] for c in cols], dtype=np.int64)
        target[rows] = vals
        if group == "gen" and column != "min_p_mw":  # an injector held at its set point (FIXED): both bounds
            held = net.gen_kind[rows] == FIXED
            pmin[rows[held]] = vals[held]
    bad = pmin > pmax + 1e-9
    if bad.any():
        g, t = np.argwhere(bad)[0]
        raise InputError(f"profiles: min_p_mw > max_p_mw for {net.gen_names[g]} at period {t} "
                         f"({pmin[g, t]} > {pmax[g, t]}).")
    return Series(load_p, pmin, pmax, time)


def make_time(n_periods: int, period_hours: float, start: Any, profiles: Mapping[Any, Any] | None
              ) -> pd.DatetimeIndex:
    """Period start times: the first DatetimeIndex among the profiles, else ``start``."""
    for v in (profiles or {}).values():
        idx = getattr(v, "index", None)
        if isinstance(idx, pd.DatetimeIndex) and len(idx) == n_periods:
            return idx
    return pd.date_range(pd.Timestamp(start), periods=n_periods, freq=pd.Timedelta(hours=period_hours))
