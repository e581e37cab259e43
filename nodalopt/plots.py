"""Plots of nodal prices: one feeder as a tree, and time x node heat maps.

matplotlib is an optional dependency (``pip install nodalopt[plots]``); it is imported
only when a plot function is called.

Every function returns the matplotlib ``Axes`` it drew on.  The artists a caller may
want to inspect carry a ``gid`` (``Artist.get_gid()``):

==========================  ===================================================
``"nodalopt:nodes"``        :func:`plot_feeder` node scatter; ``get_array()`` holds the
                            plotted values, ``get_offsets()`` the positions, both in
                            the dataset order of the feeder's dnodes
``"nodalopt:edges"``        :func:`plot_feeder` branches, one path per branch
``"nodalopt:substation"``   :func:`plot_feeder` marker of the feeder root
``"nodalopt:heatmap"``      :func:`plot_price_heatmap` image; ``get_array()`` is
                            (node, time) in the order of :func:`node_order`
``"nodalopt:price_curve"``  :func:`plot_price_curve` line; ``get_xydata()`` holds the
                            (extra MW, $/MWh) vertices, two per piece
==========================  ===================================================

:func:`find_artist` fetches one of them from an Axes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

__all__ = ["plot_feeder", "plot_price_heatmap", "plot_price_curve", "tree_layout", "feeder_layout", "node_order",
           "find_artist"]

TimeLike: TypeAlias = int | str | pd.Timestamp | np.datetime64 | _dt.datetime

NODES_GID = "nodalopt:nodes"
EDGES_GID = "nodalopt:edges"
SUBSTATION_GID = "nodalopt:substation"
HEATMAP_GID = "nodalopt:heatmap"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("nodalopt's plots need matplotlib: pip install nodalopt[plots]") from exc
    return plt


# ------------------------------------------------------------------ layout
def tree_layout(parent: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Tidy layout of a forest given by parent pointers.

    ``x`` is the depth (branches from the root); ``y`` is minus the leaf order: every
    leaf gets its own row, a node sits on the row of its first leaf, and children are
    taken longest-path first, so the main trunk of a feeder is one straight horizontal
    line and each lateral drops below the node it leaves.  Several roots (several
    feeders) are stacked top to bottom in index order.

    Parameters
    ----------
    parent : array of int, shape (n,)
        Index of each node's parent, ``-1`` at a root (``ds.dnode_parent``).

    Returns
    -------
    x, y : ndarray of float, shape (n,)
        Node coordinates.  ``-y`` sorted with ``x`` as a tie-break is a depth-first
        preorder (see :func:`node_order`).

    Raises
    ------
    InputError
        If a parent index is out of range or the pointers contain a cycle.
    """
    x, lo, _ = _layout(np.asarray(parent))
    return x.astype(float), -lo.astype(float)


def _layout(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth, first-leaf row, depth-first preorder) of a forest, vectorized per depth level."""
    parent = parent.astype(np.int64, copy=False).ravel()
    n = parent.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    if ((parent < -1) | (parent >= n)).any() or (parent == np.arange(n)).any():
        raise InputError(f"parent pointers must be -1 (root) or the index of another node in 0..{n - 1}.")
    # depth by pointer jumping: ceil(log2 n) rounds on a forest, never settles on a cycle
    depth = (parent >= 0).astype(np.int64)
    anc = parent.copy()
    for _ in range(int(np.ceil(np.log2(n))) + 2):
        live = anc >= 0
        if not live.any():
            break
        depth = depth + np.where(live, depth[np.where(live, anc, 0)], 0)
        anc = np.where(live, anc[np.where(live, anc, 0)], -1)
    if (anc >= 0).any():
        raise InputError("parent pointers contain a cycle; they must describe a radial (tree) network.")
    child = np.flatnonzero(parent >= 0)
    # bottom-up: leaves below each node and longest path below it
    nleaf = (np.bincount(parent[child], minlength=n) == 0).astype(np.int64)
    height = np.zeros(n, dtype=np.int64)
    levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]
    for nodes in levels[:0:-1]:
        np.add.at(nleaf, parent[nodes], nleaf[nodes])
        np.maximum.at(height, parent[nodes], height[nodes] + 1)
    # sibling order: longest path first, then index; offset of each child within its parent's rows
    rel = np.zeros(n, dtype=np.int64)
    sib = child[np.lexsort((child, -height[child], parent[child]))]
    csum = np.cumsum(nleaf[sib]) - nleaf[sib]
    first = np.r_[True, parent[sib][1:] != parent[sib][:-1]] if sib.size else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(first, csum, 0)) if sib.size else csum
    rel[sib] = csum - start
    roots = np.flatnonzero(parent < 0)
    lo = np.zeros(n, dtype=np.int64)
    lo[roots] = np.cumsum(nleaf[roots]) - nleaf[roots]
    for nodes in levels[1:]:
        lo[nodes] = lo[parent[nodes]] + rel[nodes]
    order = np.lexsort((depth, lo))
    return depth, lo, order


def _feeder_index(ds: xr.Dataset, feeder: str) -> np.ndarray:
    """Positions (in the dnode dimension) of the dnodes of ``feeder``."""
    if "dnode" not in ds.dims or "feeder" not in ds.coords:
        raise InputError("the dataset has no distribution feeders (no 'dnode' dimension with a 'feeder' "
                         "coordinate); solve a TDNetwork to get one.")
    names = ds["feeder"].values.astype(str)
    valid = list(dict.fromkeys(names.tolist()))
    if not isinstance(feeder, str) or feeder not in valid:
        raise InputError(f"feeder {feeder!r} is not in the dataset; valid feeders: {valid}.")
    return np.flatnonzero(names == feeder)


def _local_parent(ds: xr.Dataset, idx: np.ndarray) -> np.ndarray:
    """``dnode_parent`` of the nodes ``idx`` renumbered to positions within ``idx``."""
    if "dnode_parent" not in ds.coords:
        raise InputError("the dataset has no 'dnode_parent' coordinate; solve the TDNetwork again with this "
                         "version of nodalopt.")
    gpar = ds["dnode_parent"].values.astype(np.int64)[idx]
    pos = np.full(ds.sizes["dnode"], -1, dtype=np.int64)
    pos[idx] = np.arange(idx.size)
    par = np.where(gpar >= 0, pos[np.maximum(gpar, 0)], -1)
    if ((gpar >= 0) & (par < 0)).any():
        raise InputError("dnode_parent points outside the feeder; the dataset is inconsistent.")
    return par


def feeder_layout(ds: xr.Dataset, feeder: str) -> dict[str, tuple[float, float]]:
    """Tree coordinates of one feeder's dnodes, as used by :func:`plot_feeder`.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of ``nodalopt.solve`` on a ``TDNetwork``.
    feeder : str
        Feeder name.

    Returns
    -------
    dict
        ``{dnode label: (x, y)}`` (see :func:`tree_layout`).
    """
    idx = _feeder_index(ds, feeder)
    x, y = tree_layout(_local_parent(ds, idx))
    labels = ds["dnode"].values[idx].astype(str)
    return {lab: (float(a), float(b)) for lab, a, b in zip(labels, x, y, strict=True)}


def node_order(ds: xr.Dataset, var: str = "dlmp", feeder: str | None = None) -> np.ndarray:
    """Node labels in the row order of :func:`plot_price_heatmap`.

    Feeder nodes (``dnode``) come feeder by feeder, each in depth-first order from the
    substation (the top-to-bottom order of :func:`plot_feeder`'s tree, so each lateral is
    one contiguous block); any other node dimension (e.g. transmission ``bus``) keeps
    the dataset order.

    Parameters
    ----------
    ds : xarray.Dataset
        Solve result.
    var : str
        A (time, node) variable of ``ds``.
    feeder : str, optional
        Only this feeder's dnodes.

    Returns
    -------
    ndarray
        Labels of the node dimension of ``ds[var]``.
    """
    da, ndim = _time_node(ds, var)
    return da[ndim].values[_row_index(ds, ndim, feeder)]


def _row_index(ds: xr.Dataset, ndim: Hashable, feeder: str | None) -> np.ndarray:
    if ndim != "dnode":
        if feeder is not None:
            raise InputError(f"feeder={feeder!r} applies to feeder variables (dims time, dnode), not to "
                             f"dimension {ndim!r}.")
        return np.arange(ds.sizes[ndim])
    order = _layout(ds["dnode_parent"].values)[2] if "dnode_parent" in ds.coords else np.arange(ds.sizes[ndim])
    if feeder is None:
        return order
    keep = np.zeros(ds.sizes[ndim], dtype=bool)
    keep[_feeder_index(ds, feeder)] = True
    return order[keep[order]]


# ------------------------------------------------------------------ helpers
def _time_node(ds: xr.Dataset, var: str) -> tuple[xr.DataArray, Hashable]:
    """``ds[var]`` as (time, node) and the name of its node dimension."""
    cands = [str(k) for k, v in ds.data_vars.items() if v.ndim == 2 and "time" in v.dims]
    if var not in ds.data_vars:
        raise InputError(f"variable {var!r} is not in the dataset; (time, node) variables: {cands}.")
    da = ds[var]
    if da.ndim != 2 or "time" not in da.dims:
        raise InputError(f"variable {var!r} has dims {da.dims}; a (time, node) variable is needed: {cands}.")
    ndim = next(d for d in da.dims if d != "time")
    return da.transpose("time", ndim), ndim


def _time_position(ds: xr.Dataset, time: TimeLike) -> int:
    times = ds.indexes["time"]
    if isinstance(time, int | np.integer) and not isinstance(time, bool):
        if not -len(times) <= int(time) < len(times):
            raise InputError(f"time={time} is out of range; the dataset has {len(times)} periods "
                             f"(positions 0..{len(times) - 1}).")
        return int(time) % len(times)
    try:
        loc = times.get_loc(pd.Timestamp(time) if isinstance(times, pd.DatetimeIndex) else time)
    except (KeyError, ValueError, TypeError):
        loc = None
    if not isinstance(loc, int | np.integer):
        raise InputError(f"time={time!r} is not a period of the dataset; give a position 0..{len(times) - 1} "
                         f"or a timestamp from {times[0]} to {times[-1]}.")
    return int(loc)


def _time_label(t: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return pd.Timestamp(t).strftime(fmt) if isinstance(t, np.datetime64 | pd.Timestamp | _dt.datetime) else str(t)


def _cbar_label(da: xr.DataArray) -> str:
    units = da.attrs.get("units")
    label = f"{da.name} [{units}]" if units else str(da.name)
    return label.replace("$", r"\$")  # a literal dollar, never mathtext


def find_artist(ax: Axes, gid: str) -> Artist:
    """The artist of ``ax`` with the given ``gid`` (e.g. ``"nodalopt:nodes"``).

    Raises
    ------
    LookupError
        If ``ax`` holds no such artist.
    """
    for art in ax.get_children():
        if art.get_gid() == gid:
            return art
    raise LookupError(f"no artist with gid {gid!r} on these axes.")


# ------------------------------------------------------------------ plots
def plot_feeder(ds: xr.Dataset, feeder: str, time: TimeLike = 0, var: str = "dlmp", ax: Axes | None = None,
                cmap: str = "viridis", layout: Mapping[Any, tuple[float, float]] | None = None, *,
                labels: bool = True) -> Axes:
    """Draw one feeder as a tree with its nodes coloured by ``ds[var]`` in one period.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of ``nodalopt.solve`` on a ``TDNetwork``.
    feeder : str
        Feeder name (``ds.feeder`` values).
    time : int or timestamp
        Period: a position along ``time`` or a timestamp of ``ds.time``.
    var : str
        A (time, dnode) variable: ``"dlmp"``, ``"dlmp_loss"``, ``"vm_pu"``, ...
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    cmap : str
        Colour map of the nodes.
    layout : mapping, optional
        Node positions ``{key: (x, y)}`` instead of the tree layout, e.g. from pandapower
        geodata.  Keys are dnode labels (``"f1:5"``) or feeder bus ids (``5`` or ``"5"``).
    labels : bool
        Write the feeder bus id next to each node.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.  The node scatter has gid ``"nodalopt:nodes"`` (values and
        positions in the dataset order of the feeder's dnodes), the branches
        ``"nodalopt:edges"`` (a LineCollection with one path per branch, parent to child:
        an elbow in the tree layout, a straight line with ``layout``) and the root
        ``"nodalopt:substation"``; get them with :func:`find_artist`.

    Raises
    ------
    InputError
        Unknown feeder (the message lists the valid ones), variable or period.
    ImportError
        If matplotlib is not installed.
    """
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    da, ndim = _time_node(ds, var)
    if ndim != "dnode":
        raise InputError(f"plot_feeder needs a (time, dnode) variable, {var!r} has dims {da.dims}; use "
                         f"plot_price_heatmap for transmission variables.")
    idx = _feeder_index(ds, feeder)
    t = _time_position(ds, time)
    values = da.values[t, idx]
    labs = ds["dnode"].values[idx].astype(str)
    buses = np.array([s.split(":", 1)[1] for s in labs])
    par = _local_parent(ds, idx)
    if layout is None:
        x, y = tree_layout(par)
    else:
        xy = []
        for lab, bus in zip(labs, buses, strict=True):
            key = next((k for k in (lab, bus, int(bus) if bus.lstrip("-").isdigit() else None)
                        if k is not None and k in layout), None)
            if key is None:
                raise InputError(f"layout has no position for dnode {lab!r} (key {lab!r}, {bus!r} or bus id); "
                                 f"give one for every node of feeder {feeder!r}.")
            xy.append(layout[key])
        x, y = np.asarray(xy, dtype=float).T
    if ax is None:
        rows = np.unique(np.round(y, 6)).size if layout is None else 10
        _, ax = plt.subplots(figsize=(9, min(2.2 + 0.7 * rows, 10)), layout="constrained")
    child = np.flatnonzero(par >= 0)
    xp, yp, xc, yc = x[par[child]], y[par[child]], x[child], y[child]
    if layout is None:  # elbow: down the parent's column, then across to the child
        seg = np.stack([np.c_[xp, yp], np.c_[xp, yc], np.c_[xc, yc]], axis=1)
    else:
        seg = np.stack([np.c_[xp, yp], np.c_[xc, yc]], axis=1)
    ax.add_collection(LineCollection(list(seg), colors="0.55", linewidths=1.5, zorder=1, gid=EDGES_GID))
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    nodes = ax.scatter(x, y, c=values, cmap=cmap, vmin=vmin, vmax=vmax, s=70, edgecolors="0.2",
                       linewidths=0.6, zorder=2)
    nodes.set_gid(NODES_GID)
    roots = np.flatnonzero(par < 0)
    ax.scatter(x[roots], y[roots], c=values[roots], cmap=cmap, vmin=vmin, vmax=vmax, marker="s", s=170,
               edgecolors="k", linewidths=1.5, zorder=3, gid=SUBSTATION_GID)
    tbus = ""
    if "substation_bus" in ds.coords and "substation" in ds.dims and feeder in ds.indexes["substation"]:
        tbus = f"\n(at bus {int(ds['substation_bus'].sel(substation=feeder))})"
    for r in roots:
        ax.annotate(f"substation{tbus}", (x[r], y[r]), xytext=(-12, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=8, fontweight="bold")
    if labels:
        for xi, yi, b in zip(x, y, buses, strict=True):
            ax.annotate(b, (xi, yi), xytext=(0, 8), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7, color="0.25")
    ax.figure.colorbar(nodes, ax=ax, label=_cbar_label(da))
    ax.set_title(f"{var} on feeder {feeder} at {_time_label(ds['time'].values[t])}")
    ax.autoscale_view()
    ax.margins(0.06, 0.12)
    if layout is None:
        from matplotlib.ticker import MaxNLocator

        ax.set_xlabel("branches from the substation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    return ax


def plot_price_heatmap(ds: xr.Dataset, var: str = "dlmp", feeder: str | None = None, ax: Axes | None = None,
                       cmap: str = "viridis") -> Axes:
    """Heat map of a (time, node) variable: nodes down, hours across.

    Parameters
    ----------
    ds : xarray.Dataset
        Solve result (``TDNetwork`` or transmission only).
    var : str
        A (time, node) variable: ``"dlmp"`` and its components, ``"vm_pu"``, or the
        transmission ``"lmp"`` (time, bus).
    feeder : str, optional
        Only this feeder's dnodes; ``None``: every node (feeders separated by white lines).
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    cmap : str
        Colour map.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.  The image has gid ``"nodalopt:heatmap"``; its ``get_array()``
        is (node, time) with rows in the order of :func:`node_order`.

    Raises
    ------
    InputError
        Unknown variable or feeder (the message lists the valid ones).
    ImportError
        If matplotlib is not installed.
    """
    plt = _pyplot()
    da, ndim = _time_node(ds, var)
    rows = _row_index(ds, ndim, feeder)
    data = da.values.T[rows]
    names = da[ndim].values[rows].astype(str)
    n_node, n_time = data.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(9, min(2.5 + 0.13 * n_node, 12)), layout="constrained")
    im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, origin="upper")
    im.set_gid(HEATMAP_GID)
    ax.figure.colorbar(im, ax=ax, label=_cbar_label(da))
    # time axis: at most ~12 labels, on whole hours when the index is hourly
    times = ds["time"].values
    step = next((s for s in (1, 2, 3, 4, 6, 8, 12, 24) if n_time / s <= 13), max(1, n_time // 12))
    ticks = np.arange(0, n_time, step)
    if np.issubdtype(times.dtype, np.datetime64):
        stamps = pd.DatetimeIndex(times)
        one_day = stamps.normalize().nunique() == 1
        ax.set_xticks(ticks, [s.strftime("%H:%M" if one_day else "%m-%d %H:%M") for s in stamps[ticks]])
        ax.set_xlabel(f"time ({stamps[0]:%Y-%m-%d})" if one_day else "time")
    else:
        ax.set_xticks(ticks, [str(v) for v in times[ticks]])
        ax.set_xlabel("time")
    # node axis: every label up to 60 rows, else thinned
    ystep = max(1, int(np.ceil(n_node / 60)))
    yt = np.arange(0, n_node, ystep)
    ax.set_yticks(yt, list(names[yt]), fontsize=7 if n_node > 25 else 9)
    ax.set_ylabel(str(ndim))
    if ndim == "dnode" and feeder is None and "feeder" in ds.coords:
        f = ds["feeder"].values.astype(str)[rows]
        for b in np.flatnonzero(f[1:] != f[:-1]):
            ax.axhline(b + 0.5, color="w", linewidth=1.5)
    where = f"feeder {feeder}" if feeder is not None else ("all feeders" if ndim == "dnode" else f"every {ndim}")
    ax.set_title(f"{var}, {where}")
    return ax


def plot_price_curve(curve: pd.DataFrame, ax: Axes | None = None, annotate: bool = True) -> Axes:
    """The price a bus sees against extra demand: the pieces of :func:`nodalopt.signals.price_curve`.

    Each piece is drawn from ``(start_mw, price_start)`` to ``(end_mw, price_end)``; a vertical
    step joins pieces where the price jumps.  With ``annotate``, each breakpoint is labelled with
    the event that ends its piece.
    """
    need = {"start_mw", "end_mw", "price_start", "price_end", "event"}
    if not need <= set(curve.columns):
        raise InputError(f"plot_price_curve needs the columns {sorted(need)} of price_curve(); got "
                         f"{sorted(curve.columns)}.")
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    x = np.column_stack([curve.start_mw, curve.end_mw]).ravel()
    y = np.column_stack([curve.price_start, curve.price_end]).ravel()
    (line,) = ax.plot(x, y, drawstyle="default", color="C0", lw=2)
    line.set_gid("nodalopt:price_curve")
    if annotate:
        for _, r in curve.iterrows():
            if r.event:
                ax.axvline(r.end_mw, color="0.7", lw=0.8, ls=":")
                ax.annotate(str(r.event), (r.end_mw, r.price_end), fontsize=7, rotation=90, va="bottom")
    ax.set_xlabel("extra demand at the bus (MW)")
    ax.set_ylabel("price ($/MWh)")
    return ax
