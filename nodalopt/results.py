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
    if "bus_names" in net.meta:  # names of the input's buses (pandapower: unique, non-null net.bus.name)
        coords["bus_name"] = ("bus", np.asarray(net.meta["bus_names"], dtype=str))
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


#: CF conventions version the netCDF output follows
CF_CONVENTIONS = "CF-1.10"
#: currency of every money amount (the input's costs are read as USD)
CURRENCY = "USD"
#: in-memory unit -> (udunits-parsable unit of the netCDF file, money amount?).  Currencies are not
#: udunits units: a price in USD/MWh is written as ``1/(MW h)`` with ``currency = "USD"``, and the
#: original unit is kept in ``units_text``.
CF_UNITS: dict[str, tuple[str, bool]] = {
    "$/MWh": ("1/(MW h)", True),
    "$/MWh per MW": ("1/(MW^2 h)", True),
    "$/MVArh": ("1/(MV A h)", True),
    "$/tCO2": ("1/t", True),
    "$/MW^2": ("1/MW^2", True),
    "$": ("1", True),
    "tCO2/MWh": ("t/(MW h)", False),
    "tCO2/h": ("t/h", False),
    "MWh": ("MW h", False),
    "MVAr": ("MV A", False),
    "pu": ("1", False),
}
#: long names of coordinates (variables carry theirs from :data:`UNITS` and the builders)
COORD_LONG_NAMES = {
    "time": "start of the period",
    "bus": "bus id (pandapower index, MATPOWER bus number, or PyPSA / CSV bus name)",
    "bus_name": "bus name in the input",
    "bus_pos": "position of the bus in the input's bus table",
    "gen_pos": "position of the injector in its component table",
    "gen_component": "component table of the injector",
    "branch_pos": "position of the branch in its component table",
    "branch_component": "component table of the branch",
    "branch_name": "branch name in its component table",
    "storage_pos": "position of the storage unit in its component table",
    "storage_component": "component table of the storage unit",
    "dcline_pos": "position of the link in its component table",
    "dcline_component": "component table of the link",
    "gen": "injector name (table:index or component:name)",
    "gen_carrier": "carrier (fuel) of the injector",
    "branch": "branch name (table:index or component:name)",
    "storage": "storage unit name",
    "snapshot": "snapshot label in the input",
    "dnode": "feeder node",
    "feeder": "feeder of the node",
    "substation": "feeder instance (one per attachment to a transmission bus)",
    "der": "feeder resource name",
    "der_kind": "kind of feeder resource",
    "iteration": "ADMM iteration",
}


def _cf_attrs(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes of one variable as written to netCDF: CF units, currency, long_name."""
    out = dict(attrs)
    unit = out.get("units")
    if isinstance(unit, str) and unit in CF_UNITS:
        cf, money = CF_UNITS[unit]
        out["units"] = cf
        out["units_text"] = unit.replace("$", CURRENCY) if money else unit
        if money:
            out["currency"] = CURRENCY
        if unit.startswith("tCO2"):
            out["mass_of"] = "CO2"
    if not out.get("long_name"):
        out["long_name"] = COORD_LONG_NAMES.get(name, name.replace("_", " "))
    return out


def to_netcdf(ds: xr.Dataset, path: str) -> None:
    """Write a result Dataset to netCDF following the CF conventions.

    The file carries ``Conventions = "CF-1.10"``, units that udunits (and pint) parse -- money
    amounts as their physical part with a ``currency`` attribute (``$/MWh`` is written as
    ``units = "1/(MW h)"``, ``currency = "USD"``, ``units_text = "USD/MWh"``; see
    :data:`CF_UNITS`) -- a ``long_name`` on every variable and coordinate, and the standard name
    ``time`` on the time axis (no other quantity here has a CF standard name).  It round-trips
    with :func:`xarray.open_dataset` (units then read as in the file).
    """
    from . import __version__

    out = ds.copy()
    for k, v in list(out.attrs.items()):
        if isinstance(v, bool):
            out.attrs[k] = int(v)
        elif v is None:
            out.attrs[k] = ""
    for name in list(out.variables):
        out[name].attrs = _cf_attrs(str(name), dict(out[name].attrs))
    if "time" in out.coords:
        out["time"].attrs.update(standard_name="time", axis="T")
    out.attrs["Conventions"] = CF_CONVENTIONS
    out.attrs.setdefault("title", f"nodalopt result: {ds.attrs.get('network', '')}".rstrip(": "))
    out.attrs["nodalopt_version"] = __version__
    out.attrs["currency"] = CURRENCY
    out.to_netcdf(path)
