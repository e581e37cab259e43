"""Vectorized input checks shared by every front-end.

Each check receives the element names (``"gen:3"``), the column label as the
user knows it and a ``where`` string (table or file), so a message can name
exactly what to fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.sparse.csgraph import connected_components

from ..errors import InputError

if TYPE_CHECKING:
    from .arrays import NetworkArrays


def _list(names: ArrayLike, mask: np.ndarray, limit: int = 5) -> str:
    bad = [str(n) for n in np.asarray(names)[mask][:limit]]
    more = int(mask.sum()) - len(bad)
    return ", ".join(bad) + (f" (+{more} more)" if more > 0 else "")


def check_finite(values: np.ndarray, names: ArrayLike, column: str, where: str,
                 allow_inf: bool = False) -> None:
    """Raise if ``values`` holds NaN (or inf unless ``allow_inf``)."""
    v = np.asarray(values, dtype=float)
    bad = np.isnan(v) if allow_inf else ~np.isfinite(v)
    if bad.any():
        what = "NaN" if allow_inf else "NaN or inf"
        raise InputError(f"{where}: column '{column}' has {what} for {_list(names, bad)}; "
                         "give a finite number for every in-service element.")


def check_positive(values: np.ndarray, names: ArrayLike, column: str, where: str,
                   strict: bool = True) -> None:
    v = np.asarray(values, dtype=float)
    bad = (v <= 0) if strict else (v < 0)
    if bad.any():
        rel = "zero or negative" if strict else "negative"
        raise InputError(f"{where}: column '{column}' is {rel} for {_list(names, bad)} "
                         f"(values {v[bad][:5].tolist()}); ratings and capacities must be > 0 "
                         "(leave the limit column empty/NaN for an unlimited branch).")


def check_bounds_order(lo: np.ndarray, hi: np.ndarray, names: ArrayLike, lo_col: str,
                       hi_col: str, where: str) -> None:
    bad = np.asarray(lo) > np.asarray(hi)
    if bad.any():
        raise InputError(f"{where}: '{lo_col}' > '{hi_col}' for {_list(names, bad)} "
                         f"({lo_col}={np.asarray(lo)[bad][:5].tolist()}, "
                         f"{hi_col}={np.asarray(hi)[bad][:5].tolist()}); swap or correct them.")


def check_reactance(x: np.ndarray, names: ArrayLike, column: str, where: str) -> None:
    """Zero reactance is an error, negative reactance (series compensation) a warning."""
    x = np.asarray(x, dtype=float)
    check_finite(x, names, column, where)
    zero = x == 0
    if zero.any():
        raise InputError(f"{where}: column '{column}' is zero for {_list(names, zero)}; a DC "
                         "branch needs a non-zero reactance (model a closed bus-bus switch instead).")
    neg = x < 0
    if neg.any():
        warnings.warn(f"{where}: negative reactance in '{column}' for {_list(names, neg)} "
                      "(series compensation); accepted.", stacklevel=3)


def check_self_loops(f: np.ndarray, t: np.ndarray, names: ArrayLike, where: str) -> None:
    bad = np.asarray(f) == np.asarray(t)
    if bad.any():
        raise InputError(f"{where}: {_list(names, bad)} connect a bus to itself (from bus == to "
                         "bus); remove the branch or fix its bus.")


def check_known_ids(ref: np.ndarray, known: np.ndarray, names: ArrayLike, column: str,
                    where: str) -> np.ndarray:
    """Map id values to positions in ``known``; raise for unknown ids."""
    known = np.asarray(known)
    ref = np.asarray(ref)
    order = np.argsort(known, kind="stable")
    pos = np.searchsorted(known, ref, sorter=order)
    pos = np.clip(pos, 0, max(known.size - 1, 0))
    ok = known.size > 0
    found = order[pos] if ok else np.zeros(ref.size, np.int64)
    bad = (~np.asarray(known[found] == ref)) if ok else np.ones(ref.size, bool)
    if bad.any():
        raise InputError(f"{where}: column '{column}' refers to unknown bus id(s) "
                         f"{ref[bad][:5].tolist()} for {_list(names, bad)}; use an existing bus.")
    return found


def check_unique(ids: Sequence[object] | np.ndarray, column: str, where: str) -> None:
    arr = np.asarray(ids)
    u, c = np.unique(arr, return_counts=True)
    if (c > 1).any():
        raise InputError(f"{where}: duplicate id(s) in '{column}': {u[c > 1][:5].tolist()}; "
                         "ids must be unique.")


def islands(n_node: int, f: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Connected component label of each node."""
    g = sp.coo_matrix((np.ones(f.size), (f, t)), shape=(n_node, n_node))
    _, lab = connected_components(g, directed=False)
    return np.asarray(lab, dtype=np.int64)


def check_susceptance(net: NetworkArrays, where: str) -> NetworkArrays:
    """Raise if the reduced susceptance matrix is singular, naming the negative-reactance branches.

    The island detection only sees which branches have ``b != 0``; with negative
    susceptances (series compensation, negative-x star branches) the nodal
    susceptances can still cancel, e.g. two parallel branches with ``x`` and
    ``-x``: the network then looks connected but fixes no angle, and neither the
    dispatch nor the prices are determined.  Only checked when some ``b < 0``
    (otherwise every island's reduced Laplacian is non-singular), on the sparse LU
    that the price decomposition reuses (``net.b_red_lu``).  Returns ``net``.
    """
    neg = np.asarray(net.br_b) < 0
    if not neg.any():
        return net
    try:
        u = np.abs(net.b_red_lu.U.diagonal())
        singular = bool(u.size) and bool(u.min() <= 1e-12 * max(u.max(), 1.0))
    except InputError:  # SuperLU: "Factor is exactly singular"
        singular = True
    if singular:
        raise InputError(f"{where}: the branch susceptances cancel (singular susceptance matrix); "
                         f"negative reactance on {_list(net.br_names, neg)}. Check the sign of these "
                         "reactances or take the branches out of service.")
    return net


def choose_references(node_island: np.ndarray, ref_candidates: np.ndarray,
                      gen_node: np.ndarray, load_node: np.ndarray, load_p: np.ndarray,
                      load_names: np.ndarray, fixed_demand: np.ndarray,
                      node_label: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One reference node per island; returns (ref_node, live_island_mask).

    Raises for an island that has demand but no generation, or generation but
    no reference (ext_grid / slack) bus.  Islands with neither are *dead*: they
    get an arbitrary reference and their buses are dropped from the results.
    """
    n_isl = int(node_island.max()) + 1 if node_island.size else 0
    has_gen = np.zeros(n_isl, bool)
    has_gen[node_island[gen_node]] = True
    demand = np.zeros(n_isl)
    np.add.at(demand, node_island[load_node], np.abs(load_p))
    np.add.at(demand, node_island, np.abs(fixed_demand))
    has_load = demand > 0
    starved = has_load & ~has_gen
    if starved.any():
        isl = np.flatnonzero(starved)
        lmask = np.isin(node_island[load_node], isl)
        what = _list(load_names, lmask) if lmask.any() else _list(node_label, np.isin(node_island, isl))
        raise InputError(f"{where}: islanded load without generation: {what} sit in an island with "
                         "no generator or external grid; connect the island, add a source, or set "
                         "the loads out of service.")
    ref = np.full(n_isl, -1, np.int64)
    cand = np.asarray(ref_candidates, np.int64)
    # first candidate per island wins
    ref[node_island[cand[::-1]]] = cand[::-1]
    live = has_gen
    missing = live & (ref < 0)
    if missing.any():
        isl = np.flatnonzero(missing)
        raise InputError(f"{where}: no reference bus in the island containing "
                         f"{_list(node_label, np.isin(node_island, isl))}; add an ext_grid or "
                         "mark a generator as slack (gen.slack=True / MATPOWER bus type 3).")
    dead = ref < 0
    if dead.any():
        first = np.full(n_isl, -1, np.int64)
        nodes = np.arange(node_island.size)
        first[node_island[nodes[::-1]]] = nodes[::-1]
        ref[dead] = first[dead]
    return ref, live
