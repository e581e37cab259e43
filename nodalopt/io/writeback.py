"""Results written where each ecosystem's users look for them.

* :func:`to_pypsa` -- ``n.buses_t.marginal_price``, ``n.generators_t.p``, ``n.lines_t.p0`` ...
  of the ``pypsa.Network`` that was solved (``nodalopt.solve(n)``), as ``n.optimize()`` fills them.
* :func:`write_back` -- ``net.res_bus.lam_p``, ``net.res_gen``, ``net.res_line`` ... of a
  pandapower net, as ``pandapower.rundcopp`` fills them.

Both check that the result belongs to the network (element names, snapshots) and raise
:class:`~nodalopt.errors.InputError` otherwise; nothing else of the network is changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError

_SQRT3 = float(np.sqrt(3.0))


def _split(names: Any, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions and element names of the ``prefix:NAME`` entries of ``names``."""
    arr = np.asarray(names, dtype=str)
    mask = np.char.startswith(arr, prefix + ":")
    return np.flatnonzero(mask), np.array([s[len(prefix) + 1:] for s in arr[mask]], dtype=object)


def _unknown(kind: str, names: np.ndarray, known: pd.Index) -> None:
    bad = ~pd.Index(names).isin(known)
    if bad.any():
        raise InputError(f"the result has {kind} {list(names[bad][:5])} that the network does not have; "
                         "write a result back into the network that was solved.")


# ==================================================================== PyPSA
def _is_pypsa_result(ds: xr.Dataset) -> bool:
    """A result of a CSV folder or ``pypsa.Network`` solve: buses named by PyPSA name, positions aside."""
    return "bus_pos" in ds.coords and "gen_component" in ds.coords


def _members(ds: xr.Dataset, dim: str, comp: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions along ``dim`` and plain element names of the members of PyPSA component ``comp``."""
    comps = np.asarray(ds[f"{dim}_component"].values, dtype=str)
    plain = np.asarray(ds[f"{dim}_name"].values if f"{dim}_name" in ds.coords else ds[dim].values, dtype=object)
    pos = np.flatnonzero(comps == comp)
    return pos, plain[pos]


def to_pypsa(ds: xr.Dataset, n: Any) -> Any:
    """Write a result of ``nodalopt.solve(n)`` into the ``pypsa.Network`` ``n`` (returned).

    Filled as ``n.optimize()`` does (rows = ``n.snapshots``; snapshots beyond a ``hours=``
    horizon stay NaN): ``n.buses_t.marginal_price`` ($/MWh), ``n.generators_t.p`` (MW),
    ``n.lines_t.p0`` / ``p1`` and ``n.transformers_t.p0`` / ``p1``
    (MW, ``p1 = -p0``: the DC model is lossless), ``n.lines_t.mu_upper`` / ``mu_lower`` and the
    transformers' (shadow prices of the ``s_nom`` limits in $/MWh per MW, signed as PyPSA's
    ``assign_all_duals=True``: ``mu_upper <= 0``, ``mu_lower >= 0``), and
    ``n.storage_units_t.p`` / ``p_dispatch`` / ``p_store`` / ``state_of_charge`` (MW, MWh), and
    ``n.links_t.p0`` / ``p1`` (MW; ``p1 = -efficiency * p0``).

    Raises
    ------
    InputError
        The result is not one of this network (another bus, generator or snapshot set).
    """
    if not _is_pypsa_result(ds):
        raise InputError("the result is not one of a pypsa.Network or CSV folder solve (nodalopt.solve(n)): "
                         "its 'bus' coordinate holds no PyPSA bus names (no 'bus_pos' / 'bus_name' side "
                         "coordinates).")
    T = ds.sizes["time"]
    snaps = n.snapshots
    if T > len(snaps) or ("snapshot" in ds.coords and list(np.asarray(ds["snapshot"].values, dtype=str))
                          != list(snaps[:T].astype(str))):
        raise InputError(f"the result's {T} snapshot(s) are not the first snapshots of the network "
                         f"({len(snaps)}: {list(snaps[:3].astype(str))} ...).")
    idx = snaps[:T]

    def frame(values: np.ndarray, cols: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
        df = pd.DataFrame(np.asarray(values, dtype=float), index=idx, columns=pd.Index(cols, name=table.index.name))
        return df.reindex(index=snaps, columns=table.index)

    buses = np.asarray(ds["bus"].values, dtype=object)
    _unknown("buses", buses, n.buses.index)
    n.buses_t["marginal_price"] = frame(ds.lmp.transpose("time", "bus").values, buses, n.buses)
    pos, names = _members(ds, "gen", "generators")
    _unknown("generators", names, n.generators.index)
    n.generators_t["p"] = frame(ds.p_gen.transpose("time", "gen").values[:, pos], names, n.generators)
    flow = ds.flow.transpose("time", "branch").values
    mu = ds.branch_mu.transpose("time", "branch").values
    for comp in ("lines", "transformers"):
        pos, names = _members(ds, "branch", comp)
        table = getattr(n, comp)
        _unknown(comp, names, table.index)
        dyn = getattr(n, f"{comp}_t")
        dyn["p0"] = frame(flow[:, pos], names, table)
        dyn["p1"] = frame(-flow[:, pos], names, table)
        # PyPSA (linopy) signs: the dual of ``p0 <= s_nom`` is <= 0, that of ``p0 >= -s_nom`` >= 0
        dyn["mu_upper"] = frame(-np.maximum(mu[:, pos], 0.0), names, table)
        dyn["mu_lower"] = frame(np.maximum(-mu[:, pos], 0.0), names, table)
    if "dcline" in ds.dims and "dcline_component" in ds.coords:  # PyPSA links: p0 at bus0, p1 = -eff * p0
        pos, names = _members(ds, "dcline", "links")
        _unknown("links", names, n.links.index)
        n.links_t["p0"] = frame(ds.p_dcline.transpose("time", "dcline").values[:, pos], names, n.links)
        n.links_t["p1"] = frame(-ds.p_dcline_to.transpose("time", "dcline").values[:, pos], names, n.links)
    if "storage" in ds.dims:
        pos, names = _members(ds, "storage", "storage_units")
        _unknown("storage units", names, n.storage_units.index)
        p = ds.p_storage.transpose("time", "storage").values[:, pos]
        dyn = n.storage_units_t
        dyn["p"] = frame(p, names, n.storage_units)
        dyn["p_dispatch"] = frame(np.maximum(p, 0.0), names, n.storage_units)
        dyn["p_store"] = frame(np.maximum(-p, 0.0), names, n.storage_units)
        dyn["state_of_charge"] = frame(ds.soc_mwh.transpose("time", "storage").values[:, pos], names,
                                       n.storage_units)
    return n


# =============================================================== pandapower
def _islands(net: Any) -> pd.Series:
    """Island label of every bus: in-service lines, transformers, impedances and closed bus-bus switches."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    pos = pd.Series(np.arange(len(net.bus)), index=net.bus.index)
    ends: list[tuple[np.ndarray, np.ndarray]] = []
    for table, a, b in (("line", "from_bus", "to_bus"), ("trafo", "hv_bus", "lv_bus"), ("trafo3w", "hv_bus", "mv_bus"),
                        ("trafo3w", "hv_bus", "lv_bus"), ("impedance", "from_bus", "to_bus")):
        if table in net and len(net[table]):
            df = net[table][net[table].in_service.astype(bool)]
            ends.append((df[a].to_numpy(), df[b].to_numpy()))
    if "switch" in net and len(net.switch):
        sw = net.switch[(net.switch.et == "b") & net.switch.closed.astype(bool)]
        ends.append((sw.bus.to_numpy(), sw.element.to_numpy()))
    f = np.concatenate([e[0] for e in ends]) if ends else np.zeros(0, np.int64)
    t = np.concatenate([e[1] for e in ends]) if ends else np.zeros(0, np.int64)
    n = len(net.bus)
    g = sp.coo_matrix((np.ones(f.size), (pos.loc[f].to_numpy(), pos.loc[t].to_numpy())), shape=(n, n))
    return pd.Series(connected_components(g, directed=False)[1], index=net.bus.index)


def _slack_angles(net: Any, va: pd.Series) -> pd.Series:
    """Angles shifted per island so that the island's ext_grid sits at its ``va_degree`` (as rundcopp);
    the DC-OPF's own reference angle is 0."""
    if "ext_grid" not in net or not len(net.ext_grid):
        return va
    eg = net.ext_grid[net.ext_grid.in_service.astype(bool) & net.ext_grid.bus.isin(va.index)]
    if not len(eg):
        return va
    island = _islands(net)
    shift = pd.Series(eg.va_degree.to_numpy(float) - va.loc[eg.bus].to_numpy(), index=island.loc[eg.bus].to_numpy())
    shift = shift[~shift.index.duplicated()]
    return va + island.loc[va.index].map(shift).fillna(0.0).to_numpy()


def write_back(ds: xr.Dataset, net: Any, period: int | None = None) -> Any:
    """Write a result of ``nodalopt.solve(net)`` into the pandapower net's result tables (returned).

    The tables and columns ``pandapower.rundcopp`` fills, from one period of the result:
    ``res_bus`` (``vm_pu`` = 1, ``va_degree``, ``p_mw`` = consumption - generation, ``q_mvar``
    NaN, ``lam_p`` $/MWh, ``lam_q`` 0), ``res_gen`` / ``res_sgen`` / ``res_ext_grid`` /
    ``res_storage`` (``p_mw``; storage: charging > 0 as pandapower counts it), ``res_line``
    (``p_from_mw``, ``p_to_mw``, ``i_from_ka`` / ``i_to_ka`` / ``i_ka`` at 1 pu voltage,
    angles, ``loading_percent`` of ``max_i_ka x df x parallel``), ``res_trafo`` (``p_hv_mw``,
    ``p_lv_mw``, currents, angles, ``loading_percent`` of ``sn_mva x parallel``).  Reactive
    power and losses are 0 (NaN where rundcopp leaves NaN).  Elements the DC-OPF did not see
    (out of service, dead islands) get NaN.  ``res_load`` is not written: the result carries
    demand per bus, not per load.

    Parameters
    ----------
    ds : xarray.Dataset
        The result of ``nodalopt.solve(net)``.
    net : pandapowerNet
        The net that was solved.
    period : int, optional
        Which period of a multi-period result (required when it has more than one).

    Raises
    ------
    InputError
        A multi-period result without ``period``, or a result of another network.
    """
    T = ds.sizes["time"]
    if period is None:
        if T != 1:
            raise InputError(f"the result has {T} periods; pandapower's result tables hold one: pass "
                             f"period=0..{T - 1}.")
        period = 0
    if not (isinstance(period, int | np.integer) and 0 <= period < T):
        raise InputError(f"period must be an integer in 0..{T - 1}, got {period!r}.")
    if _is_pypsa_result(ds):
        raise InputError("the result is of a pypsa.Network or CSV folder; use nodalopt.to_pypsa.")
    r = ds.isel(time=period)
    bus = pd.Index(np.asarray(r["bus"].values, dtype=np.int64))
    if not bus.isin(net.bus.index).all():
        raise InputError(f"the result has buses {list(bus[~bus.isin(net.bus.index)][:5])} that net.bus does "
                         "not have; write a result back into the net that was solved.")
    va = _slack_angles(net, pd.Series(r.va_degree.values, index=bus)).reindex(net.bus.index)
    inj = pd.Series(0.0, index=bus)
    gen_names = np.asarray(r["gen"].values, dtype=str)
    p_gen = r.p_gen.values
    out: dict[str, pd.DataFrame] = {}
    for table in ("gen", "sgen", "ext_grid", "storage", "load"):
        pos, names = _split(gen_names, table)
        if table not in net or not len(net[table]):
            continue
        idx = pd.Index(names.astype(np.int64)) if names.size else pd.Index([], dtype=np.int64)
        if not idx.isin(net[table].index).all():
            raise InputError(f"the result has {table} {list(idx[~idx.isin(net[table].index)][:5])} that "
                             f"net.{table} does not have.")
        p = pd.Series(p_gen[pos], index=idx)
        at = net[table].loc[idx, "bus"].to_numpy()
        inj = inj.add(pd.Series(p.to_numpy(), index=at).groupby(level=0).sum(), fill_value=0.0)
        if table == "load":  # a controllable load is an injector with negative output
            continue
        p_mw = p.reindex(net[table].index)
        if table == "storage":
            out["res_storage"] = pd.DataFrame({"p_mw": -p_mw, "q_mvar": np.nan}, index=net[table].index)
            continue
        cols: dict[str, Any] = {"p_mw": p_mw, "q_mvar": np.nan}
        if table == "gen":
            cols.update(va_degree=va.reindex(net.gen.bus.to_numpy()).to_numpy(), vm_pu=1.0)
        out[f"res_{table}"] = pd.DataFrame(cols, index=net[table].index)
    demand = pd.Series(r.demand.values, index=bus)
    p_bus = (demand - inj.reindex(bus, fill_value=0.0)).reindex(net.bus.index)
    out["res_bus"] = pd.DataFrame({"vm_pu": np.where(va.notna(), 1.0, np.nan), "va_degree": va, "p_mw": p_bus,
                                   "q_mvar": np.nan,
                                   "lam_p": pd.Series(r.lmp.values, index=bus).reindex(net.bus.index),
                                   "lam_q": np.where(va.notna(), 0.0, np.nan)}, index=net.bus.index)
    flows = pd.Series(r.flow.values, index=np.asarray(r["branch"].values, dtype=str))
    vn = net.bus.vn_kv
    if "line" in net and len(net.line):
        line = net.line
        p = flows.reindex([f"line:{i}" for i in line.index]).to_numpy()
        i_from = np.abs(p) / (_SQRT3 * vn.loc[line.from_bus].to_numpy())
        i_to = np.abs(p) / (_SQRT3 * vn.loc[line.to_bus].to_numpy())
        i_max = np.maximum(i_from, i_to)
        out["res_line"] = pd.DataFrame({
            "p_from_mw": p, "q_from_mvar": 0.0, "p_to_mw": -p, "q_to_mvar": 0.0, "pl_mw": 0.0, "ql_mvar": 0.0,
            "i_from_ka": i_from, "i_to_ka": i_to, "i_ka": i_max,
            "vm_from_pu": 1.0, "va_from_degree": va.reindex(line.from_bus.to_numpy()).to_numpy(),
            "vm_to_pu": 1.0, "va_to_degree": va.reindex(line.to_bus.to_numpy()).to_numpy(),
            "loading_percent": 100.0 * i_max / (line.max_i_ka * line.df * line.parallel).to_numpy(),
        }, index=line.index)
    if "trafo" in net and len(net.trafo):
        tr = net.trafo
        p = flows.reindex([f"trafo:{i}" for i in tr.index]).to_numpy()
        out["res_trafo"] = pd.DataFrame({
            "p_hv_mw": p, "q_hv_mvar": 0.0, "p_lv_mw": -p, "q_lv_mvar": 0.0, "pl_mw": 0.0, "ql_mvar": 0.0,
            "i_hv_ka": np.abs(p) / (_SQRT3 * vn.loc[tr.hv_bus].to_numpy()),
            "i_lv_ka": np.abs(p) / (_SQRT3 * vn.loc[tr.lv_bus].to_numpy()),
            "vm_hv_pu": 1.0, "va_hv_degree": va.reindex(tr.hv_bus.to_numpy()).to_numpy(),
            "vm_lv_pu": 1.0, "va_lv_degree": va.reindex(tr.lv_bus.to_numpy()).to_numpy(),
            "loading_percent": 100.0 * np.abs(p) / (tr.sn_mva * tr.parallel).to_numpy(),
        }, index=tr.index)
    for name, df in out.items():
        net[name] = df
    return net
