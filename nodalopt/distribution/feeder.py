"""Radial pandapower feeder -> :class:`FeederArrays` (one immutable template per net).

Branch data (lines, transformers, impedances, bus-bus switches) come from
pandapower's own AC conversion (the ``_ppc`` that ``runpp`` builds), so series
impedances, tap ratios and pi-model shunts are exactly pandapower's.  Loads,
generators and storage are read from the element tables so each keeps its
identity (``"sgen:3"``).

Conventions (all arrays indexed by *node*; node 0 is the root, the ext_grid bus):

* every non-root node ``j`` has exactly one *branch into it*, indexed by ``j - 1``
  (``parent[j]`` is the upstream node); flows ``P, Q`` are sending-end MW / MVAr
  measured at the parent;
* impedances are in per unit of the feeder's ``sn_mva`` divided by ``sn_mva``
  (``r_mw`` in 1/MW): the series loss of a branch is ``r_mw * (P^2 + Q^2) / w``
  MW with ``w`` the squared sending-end voltage in pu;
* ``v`` is the squared voltage magnitude (pu^2).  A transformer's ideal ratio
  sits at the parent side (``kp = 1/tau^2``) or at the child side
  (``kc = tau^2``): ``v_child = kc * (kp * v_parent - 2 (r P + x Q) + |z|^2 l)``.
"""

from __future__ import annotations

import copy
import warnings
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..network import validate as V

#: voltage limits (pu) used where a feeder bus has no ``min_vm_pu`` / ``max_vm_pu``
DEFAULT_VM_MIN, DEFAULT_VM_MAX = 0.9, 1.1

_UNSUPPORTED = ["gen", "dcline", "motor", "asymmetric_load", "asymmetric_sgen", "ward", "xward", "svc",
                "tcsc", "ssc", "vsc", "line_dc", "load_dc", "source_dc"]


def _in_service(df: pd.DataFrame) -> pd.DataFrame:
    if not len(df):
        return df
    if "in_service" in df.columns:
        return df[_flag(df, "in_service", True)]
    return df


def _flag(df: pd.DataFrame, name: str, default: bool) -> np.ndarray:
    """Boolean column, NaN read as ``default`` (no fillna: object columns would warn about downcasting)."""
    if name not in df.columns:
        return np.full(len(df), default, bool)
    return np.where(df[name].isna().to_numpy(), default, df[name].to_numpy(dtype=object)).astype(bool)


def _col(df: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in df.columns:
        return df[name].to_numpy(dtype=float)
    return np.full(len(df), default, dtype=float)


def _names(table: str, idx: pd.Index) -> np.ndarray:
    return np.array([f"{table}:{i}" for i in idx], dtype=object)


@dataclass(frozen=True, eq=False)
class FeederArrays:
    """A radial feeder compiled to arrays; shared by every copy attached to a T&D network."""

    name: str
    base_mva: float
    node_label: np.ndarray  # (n,) "bus:<pp index>" or "aux:<k>"
    node_bus: np.ndarray  # (n,) pandapower bus index (-1 for auxiliary nodes)
    parent: np.ndarray  # (n,) int, -1 at the root
    depth: np.ndarray  # (n,) int
    br_names: np.ndarray  # (n - 1,) branch into node j at position j - 1
    r: np.ndarray  # (n - 1,) 1/MW
    x: np.ndarray  # (n - 1,) 1/MW
    kp: np.ndarray  # (n - 1,) ideal ratio at the parent side, 1/tau^2
    kc: np.ndarray  # (n - 1,) ideal ratio at the child side, tau^2
    rate_mva: np.ndarray  # (n - 1,) sending-end apparent power limit (inf = none)
    g_sh: np.ndarray  # (n,) MW withdrawn per pu^2 of v (shunt conductance)
    b_sh: np.ndarray  # (n,) MVAr injected per pu^2 of v (shunt susceptance, capacitive > 0)
    vm_min: np.ndarray  # (n,) pu
    vm_max: np.ndarray  # (n,) pu
    v_root: float  # pu^2
    # fixed loads (withdrawal, MW / MVAr at base)
    load_names: np.ndarray
    load_node: np.ndarray
    load_p: np.ndarray
    load_q: np.ndarray
    # renewable (uncontrollable sgen): curtailable, availability p_mw at base, fixed q/p ratio
    pv_names: np.ndarray
    pv_node: np.ndarray
    pv_p: np.ndarray
    pv_tan: np.ndarray
    pv_c1: np.ndarray
    # dispatchable DG (controllable sgen with cost)
    dg_names: np.ndarray
    dg_node: np.ndarray
    dg_pmin: np.ndarray
    dg_pmax: np.ndarray
    dg_c1: np.ndarray
    dg_c2: np.ndarray
    # flexible (controllable) loads: shiftable within the horizon, energy kept
    flex_names: np.ndarray
    flex_node: np.ndarray
    flex_p: np.ndarray
    flex_pmin: np.ndarray
    flex_pmax: np.ndarray
    flex_tan: np.ndarray
    # batteries (controllable storage)
    st_names: np.ndarray
    st_node: np.ndarray
    st_p_charge: np.ndarray
    st_p_discharge: np.ndarray
    st_e_min: np.ndarray
    st_e_max: np.ndarray
    st_e_init: np.ndarray
    st_e_final: np.ndarray
    st_eta_charge: np.ndarray
    st_eta_discharge: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_node(self) -> int:
        return int(self.parent.size)

    @property
    def n_branch(self) -> int:
        return int(self.parent.size - 1)

    @cached_property
    def subtree(self) -> sp.csr_matrix:
        """(n-1, n): entry [b, j] = 1 when node j lies in the subtree of branch b's child (path matrix)."""
        n = self.n_node
        rows, cols = [], []
        # walk every node up to the root: node j is below each branch on its path
        anc = np.arange(n)
        for _ in range(int(self.depth.max(initial=0))):
            on = anc > 0
            rows.append(anc[on] - 1)
            cols.append(np.flatnonzero(on))
            anc = np.where(on, self.parent[np.maximum(anc, 0)], anc)
            anc[anc < 0] = 0
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n - 1, n))

    def summary(self) -> str:
        return (f"feeder '{self.name}': {self.n_node} nodes, {self.load_names.size} loads, "
                f"{self.pv_names.size} PV, {self.dg_names.size} DG, {self.st_names.size} batteries, "
                f"{self.flex_names.size} flexible loads")


def _costs(net: Any, table: str, idx: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c1, c2, has_cost) of poly_cost rows for ``table`` elements ``idx``."""
    n = len(idx)
    c1, c2, has = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    pc = net.poly_cost if "poly_cost" in net else pd.DataFrame()
    if len(pc):
        rows = pc[(pc.et == table) & pc.element.isin(idx)]
        pos = pd.Series(np.arange(n), index=idx)
        k = pos[rows.element.to_numpy()].to_numpy()
        c1[k] = rows.cp1_eur_per_mw.to_numpy(float)
        c2[k] = rows.cp2_eur_per_mw2.to_numpy(float)
        has[k] = True
    return c1, c2, has


def _ratings(net: Any, names: np.ndarray) -> np.ndarray:
    """Apparent-power limit (MVA) of each named branch from its element table; inf where unrated.

    Lines: ``sqrt(3) * max_i_ka * vn_kv * df * parallel``; transformers: ``sn_mva * parallel``;
    both times ``max_loading_percent / 100``.  A branch whose ``max_loading_percent`` is NaN,
    or whose table has no such column, is unrated: pandapower's OPF rule (its ``RATE_A`` is
    then NaN or 0, which ``rundcopp`` leaves unconstrained) and the rule of the transmission
    compiler.  Ratings of 1e5 MVA and above (pandapower's 99999 kA placeholder) count as unrated.
    """
    rate = np.full(names.size, np.inf)
    table = np.array([str(n).split(":", 1)[0] for n in names])
    idx = np.array([int(str(n).split(":", 1)[1]) if ":" in str(n) else -1 for n in names])
    for t in ("line", "trafo"):
        m = table == t
        if not m.any():
            continue
        df = net[t].loc[idx[m]]
        if t == "line":
            vn = net.bus.vn_kv.reindex(df.from_bus.to_numpy()).to_numpy(float)
            r = np.sqrt(3) * df.max_i_ka.to_numpy(float) * vn * _col(df, "df", 1.0) * _col(df, "parallel", 1.0)
        else:
            r = df.sn_mva.to_numpy(float) * _col(df, "parallel", 1.0)
        mlp = _col(df, "max_loading_percent", np.nan)
        r = r * mlp / 100.0  # NaN (unrated) where max_loading_percent is NaN or absent
        rate[m] = np.where(np.isfinite(r) & (r > 0) & (r < 1e5), r, np.inf)
    return rate


def _tree(n: int, f: np.ndarray, t: np.ndarray, root: int, names: np.ndarray, node_label: np.ndarray,
          feeder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BFS from the root: (order, parent, parent_branch, depth); reject meshes and disconnected parts."""
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (a, b) in enumerate(zip(f.tolist(), t.tolist(), strict=True)):
        adj[a].append((b, k))
        adj[b].append((a, k))
    parent = np.full(n, -1, np.int64)
    pbr = np.full(n, -1, np.int64)
    depth = np.full(n, -1, np.int64)
    depth[root] = 0
    order = [root]
    tree_edge = np.zeros(f.size, bool)
    q = deque([root])
    while q:
        u = q.popleft()
        for w, k in adj[u]:
            if depth[w] < 0:
                depth[w], parent[w], pbr[w] = depth[u] + 1, u, k
                tree_edge[k] = True
                order.append(w)
                q.append(w)
    if (depth < 0).any():
        lost = np.flatnonzero(depth < 0)
        touching = [str(names[k]) for k in range(f.size) if f[k] in set(lost.tolist()) or t[k] in set(lost.tolist())]
        raise InputError(f"feeder '{feeder}' is disconnected: {lost.size} bus(es) "
                         f"{node_label[lost][:8].tolist()} cannot be reached from the ext_grid bus "
                         f"{node_label[root]} (their branches: {touching[:8] or 'none'}); close a switch, "
                         "set them out of service or attach them as a separate feeder.")
    extra = np.flatnonzero(~tree_edge)
    if extra.size:
        # every non-tree branch closes a loop: name the loop's branches
        k = int(extra[0])
        a, b = int(f[k]), int(t[k])
        pa, pb = [a], [b]
        while pa[-1] != root:
            pa.append(int(parent[pa[-1]]))
        while pb[-1] != root:
            pb.append(int(parent[pb[-1]]))
        common = next(x for x in pa if x in set(pb))
        loop = [str(names[pbr[x]]) for x in pa[:pa.index(common)]] + \
               [str(names[pbr[x]]) for x in pb[:pb.index(common)]] + [str(names[k])]
        others = [str(names[e]) for e in extra[1:6]]
        raise InputError(f"feeder '{feeder}' is meshed, not radial: branches {loop} form a loop"
                         + (f" (other loop-closing branches: {others})" if others else "")
                         + "; open a switch (or set a branch out of service) in each loop.")
    return np.asarray(order, np.int64), parent, pbr, depth


def compile_feeder(net: Any, name: str = "feeder", vm_min_pu: float | None = None,
                   vm_max_pu: float | None = None) -> FeederArrays:
    """Compile a radial pandapower net into a :class:`FeederArrays` template.

    The ext_grid bus becomes the root (the substation, connected to a
    transmission bus by :meth:`nodalopt.TDNetwork.add_feeder`).  Raises
    :class:`InputError` naming the branches of a loop (meshed feeder), the buses
    that cannot be reached (disconnected feeder) and any element with bad data.
    """
    from pandapower.pypower.idx_brch import BR_B, BR_G, BR_R, BR_STATUS, BR_X, F_BUS, T_BUS, TAP
    from pandapower.pypower.idx_bus import BS, GS

    if not hasattr(net, "bus") or not hasattr(net, "ext_grid"):
        raise InputError(f"feeder '{name}': expected a pandapower net, got {type(net).__name__}.")
    for t in _UNSUPPORTED:
        df = net[t] if t in net else None
        if isinstance(df, pd.DataFrame) and len(_in_service(df)):
            hint = " (use an sgen with controllable=True and a poly_cost for a dispatchable unit)" \
                if t == "gen" else ""
            raise InputError(f"feeder '{name}': table '{t}' has in-service elements "
                             f"{_names(t, _in_service(df).index[:5]).tolist()}, which the feeder model does not "
                             f"support{hint}.")
    eg = _in_service(net.ext_grid)
    if len(eg) != 1:
        raise InputError(f"feeder '{name}' needs exactly one in-service ext_grid (its substation); found "
                         f"{len(eg)}.")
    bus_ids = net.bus.index.to_numpy()
    for t in ("line", "trafo", "load", "sgen", "storage", "shunt", "ext_grid"):
        df = net[t]
        if not len(df):
            continue
        for c in [c for c in ("bus", "from_bus", "to_bus", "hv_bus", "lv_bus") if c in df.columns]:
            V.check_known_ids(df[c].to_numpy(), bus_ids, _names(t, df.index), c, f"feeder '{name}' net.{t}")
    line = _in_service(net.line)
    if len(line):
        V.check_self_loops(line.from_bus.to_numpy(), line.to_bus.to_numpy(), _names("line", line.index),
                           f"feeder '{name}' net.line")
        for c in ("r_ohm_per_km", "x_ohm_per_km", "length_km"):
            V.check_finite(line[c].to_numpy(float), _names("line", line.index), c, f"feeder '{name}' net.line")
        z = np.hypot(line.r_ohm_per_km.to_numpy(float), line.x_ohm_per_km.to_numpy(float)) \
            * line.length_km.to_numpy(float)
        V.check_positive(z, _names("line", line.index), "r_ohm_per_km/x_ohm_per_km",
                         f"feeder '{name}' net.line (zero impedance)")

    for t, cols in (("load", ("p_mw", "q_mvar")), ("sgen", ("p_mw", "q_mvar"))):  # before runpp chokes on NaN
        df = _in_service(net[t])
        for c in (c for c in cols if len(df) and c in df.columns):
            V.check_finite(df[c].to_numpy(float), _names(t, df.index), c, f"feeder '{name}' net.{t}")

    # pandapower's own AC conversion (switches, trafos, pi shunts) on a copy: runpp also tells
    # whether the feeder has a power-flow solution at its base load
    work = copy.deepcopy(net)
    try:
        import pandapower as pp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(work, calculate_voltage_angles=False, init="flat", tolerance_mva=1e-9,
                     numba=False)
    except Exception as exc:  # pandapower raises its own LoadflowNotConverged and friends
        raise InputError(f"feeder '{name}': pandapower runpp failed on the feeder at base load "
                         f"({type(exc).__name__}: {exc}); check impedances and loads.") from exc
    ppc = work._ppc
    lookups = work._pd2ppc_lookups
    bus_lookup = np.asarray(lookups["bus"], dtype=np.int64)
    base = float(ppc["baseMVA"])
    pbus, pbr = ppc["bus"], ppc["branch"]
    n_all = pbus.shape[0]

    # branch names, row by row of ppc['branch']
    br_name = np.empty(pbr.shape[0], dtype=object)
    br_name[:] = "branch"
    for table, (a, b) in lookups.get("branch", {}).items():
        idx = net[table].index if table in net else pd.RangeIndex(b - a)
        if table == "trafo3w":
            k = len(idx)
            nm = np.array([f"trafo3w:{i}" for i in idx], dtype=object)
            br_name[a:b] = np.concatenate([nm, nm, nm])[: b - a] if k else br_name[a:b]
        elif len(idx) == b - a:
            br_name[a:b] = _names(table, idx)
    on = pbr[:, BR_STATUS].real > 0
    fb = pbr[on, F_BUS].real.astype(np.int64)
    tb = pbr[on, T_BUS].real.astype(np.int64)
    names_on = br_name[on]

    # nodes: ppc buses in use; label by the smallest pandapower bus id fused into them
    used = np.zeros(n_all, bool)
    used[fb] = used[tb] = True
    root_ppc = int(bus_lookup[int(eg.bus.iloc[0])])
    used[root_ppc] = True
    label = np.empty(n_all, dtype=object)
    label[:] = [f"aux:{i}" for i in range(n_all)]
    pp_bus = np.full(n_all, -1, np.int64)
    order_ids = np.sort(bus_ids)
    for b_id in order_ids[::-1]:  # smallest id wins
        i = bus_lookup[b_id]
        label[i], pp_bus[i] = f"bus:{b_id}", b_id
    for t in ("load", "sgen", "storage"):
        df = _in_service(net[t])
        if len(df):
            nodes = bus_lookup[df.bus.to_numpy()]
            dead = ~used[nodes] & ~(nodes == root_ppc)
            if dead.any():
                raise InputError(f"feeder '{name}': {t} element(s) {_names(t, df.index[dead])[:5].tolist()} sit at "
                                 "buses with no in-service branch (islanded); remove them or connect the bus.")
    nodes_ppc = np.flatnonzero(used)
    pos = np.full(n_all, -1, np.int64)
    pos[nodes_ppc] = np.arange(nodes_ppc.size)
    n = nodes_ppc.size
    order, parent_l, pbr_l, depth_l = _tree(n, pos[fb], pos[tb], int(pos[root_ppc]), names_on,
                                            label[nodes_ppc], name)
    # renumber nodes in BFS order: node 0 = root, parents before children
    new = np.empty(n, np.int64)
    new[order] = np.arange(n)
    parent = np.full(n, -1, np.int64)
    parent[new[order[1:]]] = new[parent_l[order[1:]]]
    depth = depth_l[order]
    node_ppc = nodes_ppc[order]
    k_br = pbr_l[order[1:]]  # branch (row among in-service rows) into each non-root node
    rows = np.flatnonzero(on)[k_br]
    r_pu, x_pu = pbr[rows, BR_R].real, pbr[rows, BR_X].real
    tap = pbr[rows, TAP].real
    tap = np.where(tap == 0, 1.0, tap)
    from_is_parent = pbr[rows, F_BUS].real.astype(np.int64) == node_ppc[parent[1:]]
    kp = np.where(from_is_parent, 1.0 / tap**2, 1.0)
    kc = np.where(from_is_parent, 1.0, tap**2)
    rate = _ratings(net, np.asarray(names_on[k_br], dtype=object))
    if (x_pu <= 0).any():
        bad = np.asarray(names_on[k_br])[x_pu <= 0]
        raise InputError(f"feeder '{name}': branch(es) {bad[:5].tolist()} have non-positive reactance, which "
                         "LinDistFlow cannot represent; check x_ohm_per_km / vk_percent.")

    # shunts per node (MW / MVAr at v = 1 pu): bus shunts + half line charging at each end
    g = pbus[node_ppc, GS].real.copy()
    bsh = pbus[node_ppc, BS].real.copy()
    bb, gg = pbr[rows, BR_B].real / 2 * base, pbr[rows, BR_G].real / 2 * base
    # from-end half sits behind the ideal transformer (scaled by 1/tau^2), to-end half does not
    ch = np.arange(1, n)
    par = parent[1:]
    f_node = np.where(from_is_parent, par, ch)
    t_node = np.where(from_is_parent, ch, par)
    np.add.at(bsh, f_node, bb / tap**2)
    np.add.at(bsh, t_node, bb)
    np.add.at(g, f_node, gg / tap**2)
    np.add.at(g, t_node, gg)

    node_of_ppc = np.full(n_all, -1, np.int64)
    node_of_ppc[node_ppc] = np.arange(n)

    def node_of(df: pd.DataFrame) -> np.ndarray:
        return node_of_ppc[bus_lookup[df.bus.to_numpy()]]

    # an explicit vm_min_pu / vm_max_pu applies to every bus; otherwise the bus columns, else the defaults
    vmin = np.full(n, float(vm_min_pu if vm_min_pu is not None else DEFAULT_VM_MIN))
    vmax = np.full(n, float(vm_max_pu if vm_max_pu is not None else DEFAULT_VM_MAX))
    for c, arr, given in (("min_vm_pu", vmin, vm_min_pu), ("max_vm_pu", vmax, vm_max_pu)):
        if c in net.bus.columns and given is None:
            vals = net.bus[c].reindex(pp_bus[node_ppc]).to_numpy(float)
            arr[:] = np.where(np.isfinite(vals), vals, arr)
    if (vmin > vmax).any():
        raise InputError(f"feeder '{name}': min_vm_pu > max_vm_pu at {label[node_ppc][vmin > vmax][:5].tolist()}.")
    vm_root = float(eg.vm_pu.iloc[0])
    V.check_finite(np.array([vm_root]), np.array([f"ext_grid:{eg.index[0]}"]), "vm_pu", f"feeder '{name}' net.ext_grid")

    # ---- loads: fixed, or flexible (controllable) ---------------------------------
    ld = _in_service(net.load)
    lnames = _names("load", ld.index)
    for c in ("p_mw", "q_mvar"):
        if len(ld):
            V.check_finite(ld[c].to_numpy(float), lnames, c, f"feeder '{name}' net.load")
    lscale = _col(ld, "scaling", 1.0)
    ctrl = _flag(ld, "controllable", False)
    fixed, flex = ld[~ctrl], ld[ctrl]
    fl_names = _names("load", flex.index)
    fl_p = flex.p_mw.to_numpy(float) * lscale[ctrl] if len(flex) else np.zeros(0)
    fl_min, fl_max = _col(flex, "min_p_mw", np.nan), _col(flex, "max_p_mw", np.nan)
    if len(flex):
        V.check_finite(fl_min, fl_names, "min_p_mw", f"feeder '{name}' net.load (controllable)")
        V.check_finite(fl_max, fl_names, "max_p_mw", f"feeder '{name}' net.load (controllable)")
        V.check_bounds_order(fl_min, fl_max, fl_names, "min_p_mw", "max_p_mw", f"feeder '{name}' net.load")
    # ---- sgens: renewable (uncontrollable, curtailable) or dispatchable -------------
    sg = _in_service(net.sgen)
    sg_ctrl = _flag(sg, "controllable", False)
    ren, dg = sg[~sg_ctrl], sg[sg_ctrl]
    rnames, dnames = _names("sgen", ren.index), _names("sgen", dg.index)
    if len(ren):
        V.check_finite(ren.p_mw.to_numpy(float), rnames, "p_mw", f"feeder '{name}' net.sgen")
    r_p = ren.p_mw.to_numpy(float) * _col(ren, "scaling", 1.0) if len(ren) else np.zeros(0)
    r_q = ren.q_mvar.to_numpy(float) * _col(ren, "scaling", 1.0) if len(ren) else np.zeros(0)
    r_tan = np.divide(r_q, r_p, out=np.zeros_like(r_p), where=np.abs(r_p) > 1e-12)
    r_c1, _, _ = _costs(net, "sgen", ren.index)
    d_c1, d_c2, d_has = _costs(net, "sgen", dg.index)
    d_min, d_max = _col(dg, "min_p_mw", np.nan), _col(dg, "max_p_mw", np.nan)
    if len(dg):
        if not d_has.all():
            raise InputError(f"feeder '{name}': controllable sgen(s) {dnames[~d_has][:5].tolist()} have no "
                             "poly_cost row; add one (pp.create_poly_cost) or set controllable=False.")
        V.check_finite(d_min, dnames, "min_p_mw", f"feeder '{name}' net.sgen")
        V.check_finite(d_max, dnames, "max_p_mw", f"feeder '{name}' net.sgen")
        V.check_bounds_order(d_min, d_max, dnames, "min_p_mw", "max_p_mw", f"feeder '{name}' net.sgen")
    # ---- storage --------------------------------------------------------------------
    st = _in_service(net.storage)
    st_ctrl = _flag(st, "controllable", False) if "controllable" in st.columns else np.ones(len(st), bool)
    s = st[st_ctrl] if len(st) else st
    snames = _names("storage", s.index)
    lo, hi = _col(s, "min_p_mw", np.nan), _col(s, "max_p_mw", np.nan)
    emin, emax = _col(s, "min_e_mwh", 0.0), _col(s, "max_e_mwh", np.nan)
    soc = _col(s, "soc_percent", np.nan)
    if len(s):
        where = f"feeder '{name}' net.storage"
        for v, cname in ((lo, "min_p_mw"), (hi, "max_p_mw"), (emin, "min_e_mwh"), (emax, "max_e_mwh"),
                         (soc, "soc_percent")):
            V.check_finite(v, snames, cname, where)
        V.check_bounds_order(lo, hi, snames, "min_p_mw", "max_p_mw", where)
        V.check_bounds_order(emin, emax, snames, "min_e_mwh", "max_e_mwh", where)
        V.check_positive(emax, snames, "max_e_mwh", where)
    e0 = soc / 100.0 * emax
    soc_f = _col(s, "final_soc_percent", np.nan)
    e_final = np.where(np.isnan(soc_f), e0, soc_f / 100.0 * emax)
    eta_c, eta_d = _col(s, "charge_efficiency", 1.0), _col(s, "discharge_efficiency", 1.0)
    for v, cname in ((eta_c, "charge_efficiency"), (eta_d, "discharge_efficiency")):
        if ((v <= 0) | (v > 1) | np.isnan(v)).any():
            raise InputError(f"feeder '{name}' net.storage: column '{cname}' must be in (0, 1].")
    # fixed-schedule storage acts as load
    su = st[~st_ctrl] if len(st) else st
    f_load_names = np.concatenate([_names("load", fixed.index), _names("storage", su.index)])
    f_load_node = np.concatenate([node_of(fixed) if len(fixed) else np.zeros(0, np.int64),
                                  node_of(su) if len(su) else np.zeros(0, np.int64)])
    f_load_p = np.concatenate([fixed.p_mw.to_numpy(float) * lscale[~ctrl] if len(fixed) else np.zeros(0),
                               su.p_mw.to_numpy(float) * _col(su, "scaling", 1.0) if len(su) else np.zeros(0)])
    f_load_q = np.concatenate([fixed.q_mvar.to_numpy(float) * lscale[~ctrl] if len(fixed) else np.zeros(0),
                               _col(su, "q_mvar", 0.0) if len(su) else np.zeros(0)])
    fl_q = flex.q_mvar.to_numpy(float) * lscale[ctrl] if len(flex) else np.zeros(0)

    return FeederArrays(
        name=name, base_mva=base, node_label=label[node_ppc], node_bus=pp_bus[node_ppc], parent=parent,
        depth=depth, br_names=np.asarray(names_on[k_br], dtype=object),
        r=r_pu / base, x=x_pu / base, kp=kp, kc=kc, rate_mva=rate,
        g_sh=g, b_sh=bsh, vm_min=vmin, vm_max=vmax, v_root=vm_root**2,
        load_names=f_load_names, load_node=f_load_node, load_p=f_load_p, load_q=f_load_q,
        pv_names=rnames, pv_node=node_of(ren) if len(ren) else np.zeros(0, np.int64), pv_p=r_p,
        pv_tan=r_tan, pv_c1=r_c1,
        dg_names=dnames, dg_node=node_of(dg) if len(dg) else np.zeros(0, np.int64), dg_pmin=d_min,
        dg_pmax=d_max, dg_c1=d_c1, dg_c2=d_c2,
        flex_names=fl_names, flex_node=node_of(flex) if len(flex) else np.zeros(0, np.int64), flex_p=fl_p,
        flex_pmin=fl_min, flex_pmax=fl_max,
        flex_tan=np.divide(fl_q, fl_p, out=np.zeros_like(fl_p), where=np.abs(fl_p) > 1e-12),
        st_names=snames, st_node=node_of(s) if len(s) else np.zeros(0, np.int64),
        st_p_charge=np.maximum(hi, 0.0), st_p_discharge=np.maximum(-lo, 0.0), st_e_min=emin, st_e_max=emax,
        st_e_init=e0, st_e_final=e_final, st_eta_charge=eta_c, st_eta_discharge=eta_d,
        meta={"runpp_vm_pu": work.res_bus.vm_pu.reindex(pp_bus[node_ppc]).to_numpy(float),
              "runpp_p_import_mw": float(work.res_ext_grid.p_mw.sum())},
    )
