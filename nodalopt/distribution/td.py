"""Transmission + distribution network: a transmission net with radial feeders attached.

``TDNetwork.add_feeder`` compiles each distinct feeder net once (:func:`compile_feeder`)
and keeps a reference to the shared template, so a thousand copies of one feeder cost a
thousand small records, not a thousand deep copies.  :meth:`TDNetwork.forest` stacks
all attached copies into one :class:`Forest`: every array of every copy side by side,
with global node numbers, built per template with array arithmetic (no loop over nodes
or elements).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..network import compile_network
from ..network.arrays import NetworkArrays
from .feeder import FeederArrays, compile_feeder

EV_COLUMNS = ("bus", "p_max_mw", "energy_mwh", "arrival", "departure")


@dataclass(frozen=True)
class FeederCopy:
    """One feeder attached to a transmission bus (a record pointing at a shared template)."""

    name: str
    template: FeederArrays
    at_bus: int
    scale: float
    replace: bool
    substation_mva: float
    evs: pd.DataFrame | None
    profiles: Mapping[tuple[str, str], Any] | None


class TDNetwork:
    """A transmission network with radial distribution feeders hanging from its buses.

    Parameters
    ----------
    transmission : pandapowerNet, MatpowerCase, NetworkArrays or case name
        The transmission network (solved as a DC-OPF).
    dc_model : str
        Passed to :func:`nodalopt.compile_network`.

    Examples
    --------
    >>> td = nodalopt.TDNetwork(nodalopt.load_case("case118"))            # doctest: +SKIP
    >>> td.add_feeder("f1", pandapower.networks.case33bw(), at_bus=12)    # doctest: +SKIP
    >>> ds = nodalopt.solve(td, hours=24)                                 # doctest: +SKIP
    """

    def __init__(self, transmission: Any, dc_model: str = "pandapower") -> None:
        self.transmission = compile_network(transmission, dc_model=dc_model)
        self._templates: dict[tuple[int, float | None, float | None], tuple[Any, FeederArrays]] = {}
        self.feeders: list[FeederCopy] = []
        self._names: set[str] = set()

    def __repr__(self) -> str:
        return (f"TDNetwork({self.transmission.name}: {self.transmission.n_node} buses, "
                f"{len(self.feeders)} feeders, {self.n_dnode} feeder nodes)")

    @property
    def n_dnode(self) -> int:
        return int(sum(f.template.n_node for f in self.feeders))

    def template(self, feeder_net: Any, name: str, vm_min_pu: float | None = None,
                 vm_max_pu: float | None = None) -> FeederArrays:
        """The compiled template of ``feeder_net`` (compiled once per net object and voltage limits)."""
        key = (id(feeder_net), vm_min_pu, vm_max_pu)
        hit = self._templates.get(key)
        if hit is not None and hit[0] is feeder_net:
            return hit[1]
        if isinstance(feeder_net, FeederArrays):
            return feeder_net
        arrays = compile_feeder(feeder_net, name=name, vm_min_pu=vm_min_pu, vm_max_pu=vm_max_pu)
        self._templates[key] = (feeder_net, arrays)  # keep the net alive so its id stays unique
        return arrays

    def add_feeder(self, name: str, feeder_net: Any, at_bus: int, scale: float = 1.0, *, replace: bool = True,
                   substation_mva: float | None = None, evs: pd.DataFrame | None = None,
                   profiles: Mapping[tuple[str, str], Any] | None = None,
                   vm_min_pu: float | None = None, vm_max_pu: float | None = None) -> FeederCopy:
        """Attach a radial feeder to transmission bus ``at_bus``.

        Parameters
        ----------
        name : str
            Unique feeder name (``dnode`` labels are ``"<name>:<bus>"``).
        feeder_net : pandapowerNet or FeederArrays
            A radial net whose ext_grid bus is the substation.  The same object
            attached many times is compiled once.
        at_bus : int
            Transmission bus (pandapower index) the substation connects to.
        scale : float
            Multiplies every load and resource of the feeder (MW and MWh); impedances stay.
        replace : bool
            True: the feeder replaces ``scale x`` its base load of the bus's own load
            (the bus's loads shrink in proportion, keeping their profiles).  False: the
            feeder comes on top of the bus's load.
        substation_mva : float, optional
            Apparent-power limit of the substation (polygon, as branch limits).
        evs : DataFrame, optional
            EV charging: columns ``bus`` (feeder bus), ``p_max_mw``, ``energy_mwh`` (to deliver
            within the window), ``arrival`` and ``departure`` (period indices, departure
            exclusive); optional ``name``.
        profiles : mapping, optional
            Feeder profiles keyed like :mod:`nodalopt.profiles`: ``("load", "p_mw")``,
            ``("sgen", "p_mw")`` as a DataFrame (time x element index of ``feeder_net``, MW
            before ``scale``) or a 1-D scaling per period.
        vm_min_pu, vm_max_pu : float, optional
            Voltage limits (pu) for every bus of the feeder.  When not given, each bus's
            ``min_vm_pu`` / ``max_vm_pu`` apply, else 0.9 / 1.1.
        """
        if not isinstance(name, str) or not name or ":" in name:
            raise InputError(f"feeder name must be a non-empty string without ':', got {name!r}.")
        if name in self._names:
            raise InputError(f"feeder name {name!r} is already used; give each feeder a unique name.")
        if not (np.isfinite(scale) and scale > 0):
            raise InputError(f"feeder {name!r}: scale must be a positive number, got {scale!r}.")
        if int(at_bus) not in set(self.transmission.bus_ids.tolist()):
            raise InputError(f"feeder {name!r}: at_bus={at_bus!r} is not a bus of the transmission network "
                             f"{self.transmission.name} (buses {self.transmission.bus_ids[:5].tolist()}...).")
        if substation_mva is not None and not (np.isfinite(substation_mva) and substation_mva > 0):
            raise InputError(f"feeder {name!r}: substation_mva must be positive, got {substation_mva!r}.")
        tmpl = self.template(feeder_net, name, vm_min_pu, vm_max_pu)
        if evs is not None:
            evs = _check_evs(evs, tmpl, name)
        copy_ = FeederCopy(name=name, template=tmpl, at_bus=int(at_bus), scale=float(scale), replace=bool(replace),
                           substation_mva=float(substation_mva) if substation_mva is not None else np.inf,
                           evs=evs, profiles=profiles)
        self.feeders.append(copy_)
        self._names.add(name)
        return copy_

    def forest(self) -> Forest:
        if not self.feeders:
            raise InputError("the TDNetwork has no feeders; call add_feeder(...) first or solve the "
                             "transmission network directly.")
        return Forest.build(self.feeders, self.transmission)


def _check_evs(evs: pd.DataFrame, tmpl: FeederArrays, name: str) -> pd.DataFrame:
    if not isinstance(evs, pd.DataFrame):
        raise InputError(f"feeder {name!r}: evs must be a DataFrame with columns {EV_COLUMNS}.")
    missing = [c for c in EV_COLUMNS if c not in evs.columns]
    if missing:
        raise InputError(f"feeder {name!r}: evs lacks column(s) {missing}; needed: {EV_COLUMNS}.")
    vals = evs[list(EV_COLUMNS)].to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"feeder {name!r}: evs row {evs.index.tolist()[r]!r} column '{EV_COLUMNS[c]}' is NaN or inf.")
    known = set(tmpl.node_bus[tmpl.node_bus >= 0].tolist())
    unknown = [b for b in evs.bus.astype(int).tolist() if b not in known]
    if unknown:
        raise InputError(f"feeder {name!r}: evs column 'bus' names bus(es) {unknown[:5]} that are not buses "
                         f"of the feeder.")
    if (evs.p_max_mw <= 0).any() or (evs.energy_mwh < 0).any():
        raise InputError(f"feeder {name!r}: evs need p_max_mw > 0 and energy_mwh >= 0.")
    if (evs.departure <= evs.arrival).any() or (evs.arrival < 0).any():
        r = evs.index[(evs.departure <= evs.arrival) | (evs.arrival < 0)].tolist()[0]
        raise InputError(f"feeder {name!r}: evs row {r!r} needs 0 <= arrival < departure (period indices).")
    return evs.copy()


def _tile_nodes(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-template array on its nodes -> (global positions, tiled values) for copies at ``offsets``."""
    n = values.shape[0]
    pos = (offsets[:, None] + np.arange(n)[None, :]).ravel()
    return pos, np.tile(values, offsets.size)


@dataclass
class Forest:
    """Every attached feeder copy stacked: M nodes, Bn = M - I branches, I copies (instances)."""

    names: list[str]  # (I,) feeder names
    n_node: int
    inst_node0: np.ndarray  # (I,) global index of each copy's root
    inst_of_node: np.ndarray  # (M,)
    inst_tnode: np.ndarray  # (I,) transmission node of each copy
    inst_scale: np.ndarray
    inst_replace: np.ndarray
    inst_sub_mva: np.ndarray
    node_label: np.ndarray  # (M,) "<feeder>:<bus>"
    node_bus: np.ndarray
    parent: np.ndarray  # (M,) global, -1 at roots
    child: np.ndarray  # (Bn,) node each branch feeds
    br_names: np.ndarray  # (Bn,) "<feeder>:<branch>"
    r: np.ndarray
    x: np.ndarray
    kp: np.ndarray
    kc: np.ndarray
    rate: np.ndarray
    g_sh: np.ndarray
    b_sh: np.ndarray
    vm_min: np.ndarray
    vm_max: np.ndarray
    v_root: np.ndarray  # (M,) squared root voltage of each node's copy
    elements: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, feeders: list[FeederCopy], tnet: NetworkArrays) -> Forest:
        n_i = len(feeders)
        sizes = np.array([f.template.n_node for f in feeders], np.int64)
        node0 = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
        M = int(sizes.sum())
        tmpl_ids: dict[int, int] = {}
        groups: list[list[int]] = []
        tmpls: list[FeederArrays] = []
        for i, f in enumerate(feeders):
            k = tmpl_ids.setdefault(id(f.template), len(tmpls))
            if k == len(tmpls):
                tmpls.append(f.template)
                groups.append([])
            groups[k].append(i)
        node_arr = {k: np.zeros(M) for k in ("g_sh", "b_sh", "vm_min", "vm_max")}
        parent = np.full(M, -1, np.int64)
        node_bus = np.full(M, -1, np.int64)
        local_label = np.empty(M, dtype=object)
        br_local = np.empty(M, dtype=object)
        br = {k: np.zeros(M) for k in ("r", "x", "kp", "kc", "rate")}
        inst_of_node = np.repeat(np.arange(n_i), sizes)
        scale = np.array([f.scale for f in feeders])
        elements: dict[str, dict[str, list[np.ndarray]]] = {}
        el_fields = {
            "load": ("load_names", "load_node", {"p": "load_p", "q": "load_q"}),
            "pv": ("pv_names", "pv_node", {"p": "pv_p", "tan": "pv_tan", "c1": "pv_c1"}),
            "dg": ("dg_names", "dg_node", {"pmin": "dg_pmin", "pmax": "dg_pmax", "c1": "dg_c1", "c2": "dg_c2"}),
            "flex": ("flex_names", "flex_node", {"p": "flex_p", "pmin": "flex_pmin", "pmax": "flex_pmax",
                                                 "tan": "flex_tan"}),
            "st": ("st_names", "st_node", {"p_charge": "st_p_charge", "p_discharge": "st_p_discharge",
                                           "e_min": "st_e_min", "e_max": "st_e_max", "e_init": "st_e_init",
                                           "e_final": "st_e_final", "eta_charge": "st_eta_charge",
                                           "eta_discharge": "st_eta_discharge"}),
        }
        #: fields that scale with the copy's ``scale`` (MW / MWh)
        scaled = {"p", "pmin", "pmax", "p_charge", "p_discharge", "e_min", "e_max", "e_init", "e_final"}
        for k, t in enumerate(tmpls):
            members = np.asarray(groups[k], np.int64)
            offs = node0[members]
            pos, _ = _tile_nodes(np.zeros(t.n_node), offs)
            for key in node_arr:
                node_arr[key][pos] = np.tile(getattr(t, key), members.size)
            par = np.where(t.parent >= 0, t.parent, -1)
            parent[pos] = np.where(np.tile(par, members.size) >= 0,
                                   np.tile(par, members.size) + np.repeat(offs, t.n_node), -1)
            node_bus[pos] = np.tile(t.node_bus, members.size)
            local_label[pos] = np.tile(t.node_label, members.size)
            brpos = (offs[:, None] + np.arange(1, t.n_node)[None, :]).ravel()  # branch stored at its child
            for key, attr in (("r", "r"), ("x", "x"), ("kp", "kp"), ("kc", "kc"), ("rate", "rate_mva")):
                br[key][brpos] = np.tile(getattr(t, attr), members.size)
            br_local[brpos] = np.tile(t.br_names, members.size)
            for kind, (nm, nd, cols) in el_fields.items():
                names = getattr(t, nm)
                e = elements.setdefault(kind, {"names": [], "node": [], "inst": [], **{c: [] for c in cols}})
                e["names"].append(np.tile(names, members.size))
                e["node"].append((np.asarray(getattr(t, nd), np.int64)[None, :] + offs[:, None]).ravel())
                e["inst"].append(np.repeat(members, names.size))
                for c, attr in cols.items():
                    v = np.tile(getattr(t, attr), members.size)
                    if c in scaled:
                        v = v * np.repeat(scale[members], names.size)
                    if c == "c2":
                        v = v / np.repeat(scale[members], names.size)
                    e[c].append(v)
        fnames = np.array([f.name for f in feeders], dtype=object)
        elem: dict[str, dict[str, np.ndarray]] = {}
        for kind, e in elements.items():
            cat = {c: np.concatenate(v) if v else np.zeros(0) for c, v in e.items()}
            order = np.argsort(cat["inst"], kind="stable")  # instance (add) order
            cat = {c: v[order] for c, v in cat.items()}
            cat["node"] = cat["node"].astype(np.int64)
            cat["inst"] = cat["inst"].astype(np.int64)
            cat["names"] = np.array([f"{fnames[i]}:{n}" for i, n in zip(cat["inst"], cat["names"], strict=True)],
                                    dtype=object)
            elem[kind] = cat
        elem["ev"] = _ev_elements(feeders, node0, fnames)
        nonroot = np.flatnonzero(parent >= 0)
        labels = np.array([f"{fnames[i]}:{lab.split(':', 1)[1] if lab.startswith('bus:') else lab}"
                           for i, lab in zip(inst_of_node, local_label, strict=True)], dtype=object)
        vroot = np.array([f.template.v_root for f in feeders])[inst_of_node]
        tnode = tnet.bus_node[np.searchsorted(tnet.bus_ids, [f.at_bus for f in feeders])] \
            if np.all(np.diff(tnet.bus_ids) > 0) else \
            tnet.bus_node[[int(np.flatnonzero(tnet.bus_ids == f.at_bus)[0]) for f in feeders]]
        return cls(
            names=[f.name for f in feeders], n_node=M, inst_node0=node0, inst_of_node=inst_of_node,
            inst_tnode=np.asarray(tnode, np.int64), inst_scale=scale,
            inst_replace=np.array([f.replace for f in feeders]),
            inst_sub_mva=np.array([f.substation_mva for f in feeders]),
            node_label=labels, node_bus=node_bus, parent=parent, child=nonroot,
            br_names=np.array([f"{fnames[inst_of_node[c]]}:{br_local[c]}" for c in nonroot], dtype=object),
            r=br["r"][nonroot], x=br["x"][nonroot], kp=br["kp"][nonroot], kc=br["kc"][nonroot],
            rate=br["rate"][nonroot], g_sh=node_arr["g_sh"], b_sh=node_arr["b_sh"],
            vm_min=node_arr["vm_min"], vm_max=node_arr["vm_max"], v_root=vroot, elements=elem)

    # ------------------------------------------------------------------ sizes, matrices
    @property
    def n_inst(self) -> int:
        return int(self.inst_node0.size)

    @property
    def n_branch(self) -> int:
        return int(self.child.size)

    @property
    def z2(self) -> np.ndarray:
        return self.r**2 + self.x**2

    def node_matrix(self, nodes: np.ndarray) -> sp.csr_matrix:
        """(M, k) incidence: element e sits at node ``nodes[e]``."""
        k = nodes.size
        return sp.csr_matrix((np.ones(k), (nodes, np.arange(k))), shape=(self.n_node, k))

    @cached_property
    def cin(self) -> sp.csr_matrix:
        """(M, Bn): +1 at each branch's child node."""
        return self.node_matrix(self.child)

    @cached_property
    def cout(self) -> sp.csr_matrix:
        """(M, Bn): +1 at each branch's parent node."""
        return self.node_matrix(self.parent[self.child])

    @cached_property
    def par(self) -> sp.csr_matrix:
        """(Bn, M) selects each branch's parent node."""
        return sp.csr_matrix(self.cout.T)

    @cached_property
    def roots(self) -> sp.csr_matrix:
        """(M, I): +1 at each copy's root."""
        return self.node_matrix(self.inst_node0)

    @cached_property
    def subtree(self) -> sp.csr_matrix:
        """(Bn, M): 1 where the node lies below the branch (the branch is on the node's path to its root)."""
        M = self.n_node
        bpos = np.full(M, -1, np.int64)
        bpos[self.child] = np.arange(self.n_branch)
        rows, cols = [], []
        anc = np.arange(M)
        while True:
            on = self.parent[anc] >= 0
            if not on.any():
                break
            rows.append(bpos[anc[on]])
            cols.append(np.flatnonzero(on))
            anc = np.where(on, self.parent[anc], anc)
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(r.size), (r, c)), shape=(self.n_branch, M))

    @cached_property
    def ratio_path(self) -> np.ndarray:
        """(M,) product of kc*kp along each node's path from the root (1 without transformer ratios)."""
        return np.exp(np.asarray(self.subtree.T @ np.log(self.kc * self.kp))).ravel()


def _ev_elements(feeders: list[FeederCopy], node0: np.ndarray, fnames: np.ndarray) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("names", "node", "inst", "pmax", "energy", "arrival",
                                                          "departure")}
    for i, f in enumerate(feeders):
        if f.evs is None or not len(f.evs):
            continue
        t = f.template
        bus_node = pd.Series(np.arange(t.n_node), index=t.node_bus)
        bus_node = bus_node[bus_node.index >= 0]
        bus_node = bus_node[~bus_node.index.duplicated()]
        ev = f.evs
        nm = ev["name"].astype(str).to_numpy() if "name" in ev.columns else np.array([f"ev:{k}" for k in ev.index])
        parts["names"].append(np.array([f"{f.name}:{n}" for n in nm], dtype=object))
        parts["node"].append(bus_node[ev.bus.astype(int).to_numpy()].to_numpy() + node0[i])
        parts["inst"].append(np.full(len(ev), i))
        parts["pmax"].append(ev.p_max_mw.to_numpy(float) * f.scale)
        parts["energy"].append(ev.energy_mwh.to_numpy(float) * f.scale)
        parts["arrival"].append(ev.arrival.to_numpy(np.int64))
        parts["departure"].append(ev.departure.to_numpy(np.int64))
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    for k in ("node", "inst", "arrival", "departure"):
        out[k] = out[k].astype(np.int64)
    if not parts["names"]:
        out["names"] = np.zeros(0, dtype=object)
    return out
