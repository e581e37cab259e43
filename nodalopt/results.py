"""Labeled results: one ``xarray.Dataset`` per solve, units in attrs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from .network.arrays import NetworkArrays

if TYPE_CHECKING:
    from .dcopf.prices import NodePrices

#: $/MWh per MW: a branch whose shadow price exceeds this is reported as binding
BINDING_MU = 1e-4

UNITS = {
    "lmp": ("$/MWh", "locational marginal price"),
    "lmp_energy": ("$/MWh", "energy component: price at the island's reference bus"),
    "lmp_congestion": ("$/MWh", "congestion component: -PTDF^T x branch shadow prices"),
    "lmp_carbon": ("$/MWh", "carbon component: carbon price x locational marginal emissions (0 without a "
                   "carbon price)"),
    "lmp_unique": ("1", "True where the price is unique; False where the optimal duals form an "
                   "interval (degenerate: another optimal solver may return another value)"),
    "demand": ("MW", "demand served at the bus (fixed loads, shunts, wards, less shedding)"),
    "load_shed": ("MW", "load shed at the value of lost load"),
    "va_degree": ("degree", "DC voltage angle"),
    "p_gen": ("MW", "injection of each generator (negative for controllable loads)"),
    "p_available": ("MW", "upper limit or renewable availability in the period"),
    "curtailment": ("MW", "available renewable energy not used"),
    "flow": ("MW", "active power flow from the from-bus to the to-bus"),
    "branch_mu": ("$/MWh per MW", "shadow price of the branch thermal limit (signed: >0 when the "
                  "from->to limit binds)"),
    "loading": ("1", "|flow| / rating"),
    "p_storage": ("MW", "storage discharge minus charge"),
    "soc_mwh": ("MWh", "stored energy at the end of the period"),
}


def _da(data: np.ndarray, dims: tuple[str, ...], name: str) -> xr.DataArray:
    unit, desc = UNITS[name]
    return xr.DataArray(data, dims=dims, attrs={"units": unit, "long_name": desc})


def build_dataset(net: NetworkArrays, time: pd.DatetimeIndex, dt: float, *, prices: NodePrices,
                  flow: np.ndarray, mu: np.ndarray, theta: np.ndarray, p_gen: np.ndarray,
                  unique: np.ndarray,
                  p_available: np.ndarray, storage: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                  demand: np.ndarray, load_shed: np.ndarray, attrs: dict[str, Any]) -> xr.Dataset:
    """Arrays on (element, time) -> Dataset on (time, element)."""
    bn = net.bus_node
    from .network.arrays import RENEWABLE

    vars_: dict[str, xr.DataArray] = {
        "lmp": _da(prices.lmp[bn].T, ("time", "bus"), "lmp"),
        "lmp_energy": _da(prices.energy[bn].T, ("time", "bus"), "lmp_energy"),
        "lmp_congestion": _da(prices.congestion[bn].T, ("time", "bus"), "lmp_congestion"),
        "lmp_carbon": _da(np.zeros_like(prices.lmp[bn].T), ("time", "bus"), "lmp_carbon"),
        "lmp_unique": _da(unique[bn].T, ("time", "bus"), "lmp_unique"),
        "demand": _da(demand[bn].T, ("time", "bus"), "demand"),
        "load_shed": _da(load_shed[bn].T, ("time", "bus"), "load_shed"),
        "va_degree": _da(np.rad2deg(theta[bn]).T, ("time", "bus"), "va_degree"),
        "p_gen": _da(p_gen.T, ("time", "gen"), "p_gen"),
        "p_available": _da(p_available.T, ("time", "gen"), "p_available"),
        "curtailment": _da(np.where(net.gen_kind[:, None] == RENEWABLE,
                                    np.maximum(p_available - p_gen, 0.0), 0.0).T, ("time", "gen"),
                           "curtailment"),
        "flow": _da(flow.T, ("time", "branch"), "flow"),
        "branch_mu": _da(mu.T, ("time", "branch"), "branch_mu"),
        "loading": _da((np.abs(flow) / net.br_rate[:, None]).T, ("time", "branch"), "loading"),
    }
    coords: dict[str, Any] = {
        "time": ("time", np.asarray(time, dtype="datetime64[ns]")),
        "bus": ("bus", net.bus_ids.astype(np.int64)),
        "gen": ("gen", np.asarray(net.gen_names, dtype=str)),
        "branch": ("branch", np.asarray(net.br_names, dtype=str)),
        "rating": ("branch", net.br_rate, {"units": "MW", "long_name": "thermal limit (inf = none)"}),
    }
    if storage is not None:
        pc, pd_, e = storage
        vars_["p_storage"] = _da((pd_ - pc).T, ("time", "storage"), "p_storage")
        vars_["soc_mwh"] = _da(e.T, ("time", "storage"), "soc_mwh")
        coords["storage"] = ("storage", np.asarray(net.st_names, dtype=str))
    ds = xr.Dataset(vars_, coords=coords)
    binding = np.abs(mu) > BINDING_MU  # interior-point duals of slack limits are ~1e-6, not 0
    attrs = dict(attrs)
    attrs["binding_branches"] = ",".join(np.asarray(net.br_names, dtype=str)[binding.any(axis=1)])
    attrs["n_periods"] = len(time)
    ds.attrs.update(attrs)
    return ds


def to_netcdf(ds: xr.Dataset, path: str) -> None:
    """Write a result Dataset to netCDF (round-trips with :func:`xarray.open_dataset`)."""
    out = ds.copy()
    for k, v in list(out.attrs.items()):
        if isinstance(v, bool):
            out.attrs[k] = int(v)
        elif v is None:
            out.attrs[k] = ""
    out.to_netcdf(path)
