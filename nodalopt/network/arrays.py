"""The compiled network: one immutable bundle of arrays every formulation reads.

All front-ends (pandapower, MATPOWER, CSV) produce a :class:`NetworkArrays`.
Quantities are in MW, MWh, $/h, $/MWh, radians; susceptances in per unit on
``base_mva``.  Model *nodes* are the electrical nodes after bus-bus switches are
fused (plus auxiliary star points); public *buses* map onto nodes through
``bus_node`` so prices can be reported per user bus id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError

# generator kinds
DISPATCHABLE = 0  #: cost-based unit with [pmin, pmax]
RENEWABLE = 1  #: variable renewable, 0 <= p <= availability (curtailable)
FLEX_LOAD = 2  #: controllable load, modelled as a negative injection
FIXED = 3  #: non-controllable injector held at its set point (pmin = pmax = p_mw), e.g. a pandapower sgen


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class NetworkArrays:
    """Arrays describing one network, ready for any formulation.

    Parameters are documented by group: ``node_*`` electrical nodes, ``bus_*``
    public buses, ``br_*`` branches, ``gen_*`` injectors, ``load_*`` fixed
    loads, ``st_*`` storage units.
    """

    name: str
    base_mva: float
    # nodes
    n_node: int
    ref_node: np.ndarray  # one reference node per island
    node_island: np.ndarray
    node_fixed_demand: np.ndarray  # MW not tied to a load element (shunt G, wards, fixed units)
    # public buses
    bus_ids: np.ndarray  # int64 ids as the user knows them
    bus_node: np.ndarray
    # branches
    br_names: np.ndarray
    br_f: np.ndarray
    br_t: np.ndarray
    br_b: np.ndarray  # per unit susceptance used in the DC model
    br_shift: np.ndarray  # rad, flow = base*b*(th_f - th_t - shift)
    br_rate: np.ndarray  # MW, inf = unlimited
    br_angmin: np.ndarray  # rad, -inf = none
    br_angmax: np.ndarray
    # injectors
    gen_names: np.ndarray
    gen_node: np.ndarray
    gen_kind: np.ndarray
    gen_pmin: np.ndarray  # MW (may be -inf)
    gen_pmax: np.ndarray  # MW (may be +inf)
    gen_c0: np.ndarray  # $/h
    gen_c1: np.ndarray  # $/MWh
    gen_c2: np.ndarray  # $/MW^2h
    gen_ramp_up: np.ndarray  # MW/h, inf = none
    gen_ramp_down: np.ndarray
    # piecewise-linear costs: cost_g >= slope * p + intercept for each segment row
    pwl_gen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pwl_slope: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pwl_intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # fixed loads
    load_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    load_node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    load_p: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # storage
    st_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    st_node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_p_charge: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MW
    st_p_discharge: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MW
    st_e_min: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MWh
    st_e_max: np.ndarray = field(default_factory=lambda: np.zeros(0))
    st_e_init: np.ndarray = field(default_factory=lambda: np.zeros(0))
    st_e_final: np.ndarray = field(default_factory=lambda: np.zeros(0))
    st_eta_charge: np.ndarray = field(default_factory=lambda: np.zeros(0))
    st_eta_discharge: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # DC links (pandapower dcline): p = MW withdrawn at dc_f, dc_eff * p - dc_loss MW injected at dc_t
    dc_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    dc_f: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dc_t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dc_pmin: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MW (negative: power flows to -> from)
    dc_pmax: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dc_eff: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MW delivered per MW withdrawn
    dc_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))  # MW, constant part of the losses
    dc_c0: np.ndarray = field(default_factory=lambda: np.zeros(0))  # $/h
    dc_c1: np.ndarray = field(default_factory=lambda: np.zeros(0))  # $/MWh on p
    # emission factors tCO2/MWh per injector (NaN = unknown); empty = none given
    gen_co2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gen_fuel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    # free-form provenance (dc model, source file, fix-ups)
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for v in self.__dict__.values():
            if isinstance(v, np.ndarray):
                _ro(v)

    # ------------------------------------------------------------------ sizes
    @property
    def n_branch(self) -> int:
        return int(self.br_f.size)

    @property
    def n_gen(self) -> int:
        return int(self.gen_node.size)

    @property
    def n_load(self) -> int:
        return int(self.load_node.size)

    @property
    def n_storage(self) -> int:
        return int(self.st_node.size)

    @property
    def n_dcline(self) -> int:
        return int(self.dc_f.size)

    @property
    def co2_factors(self) -> np.ndarray:
        """Emission factor per injector in tCO2/MWh (NaN where unknown)."""
        if self.gen_co2.size == self.n_gen:
            return self.gen_co2
        return np.full(self.n_gen, np.nan)

    # ------------------------------------------------------- sparse operators
    @cached_property
    def incidence(self) -> sp.csr_matrix:
        """Branch-node incidence (n_branch x n_node), +1 at from, -1 at to."""
        nbr = self.n_branch
        rows = np.r_[np.arange(nbr), np.arange(nbr)]
        cols = np.r_[self.br_f, self.br_t]
        vals = np.r_[np.ones(nbr), -np.ones(nbr)]
        return sp.csr_matrix((vals, (rows, cols)), shape=(nbr, self.n_node))

    @cached_property
    def bf(self) -> sp.csr_matrix:
        """Flow operator in MW/rad: flow = bf @ theta - base*b*shift."""
        return sp.csr_matrix(sp.diags(self.base_mva * self.br_b) @ self.incidence)

    @cached_property
    def bf_red(self) -> sp.csr_matrix:
        """:attr:`bf` without the reference-node columns (their angle is fixed at zero)."""
        return self._without_ref_columns(self.bf)

    @cached_property
    def incidence_red(self) -> sp.csr_matrix:
        """:attr:`incidence` without the reference-node columns."""
        return self._without_ref_columns(self.incidence)

    def _without_ref_columns(self, m: sp.spmatrix) -> sp.csr_matrix:
        return sp.csr_matrix(sp.csc_matrix(m)[:, self.nonref_nodes])

    @cached_property
    def bbus(self) -> sp.csr_matrix:
        """Nodal susceptance in MW/rad: injection = bbus @ theta + shift injection."""
        return sp.csr_matrix(self.incidence.T @ self.bf)

    @cached_property
    def shift_injection(self) -> np.ndarray:
        """MW injected at nodes by phase shifts (add to bbus @ theta)."""
        f = -self.base_mva * self.br_b * self.br_shift
        return np.asarray(self.incidence.T @ f).ravel()

    @cached_property
    def shift_flow(self) -> np.ndarray:
        return -self.base_mva * self.br_b * self.br_shift

    def node_matrix(self, nodes: np.ndarray) -> sp.csr_matrix:
        """Node x element incidence for elements located at ``nodes``."""
        n = nodes.size
        return sp.csr_matrix((np.ones(n), (nodes, np.arange(n))), shape=(self.n_node, n))

    @cached_property
    def nonref_nodes(self) -> np.ndarray:
        mask = np.ones(self.n_node, bool)
        mask[self.ref_node] = False
        return np.flatnonzero(mask)

    @cached_property
    def ref_of_node(self) -> np.ndarray:
        """Reference node of each node's island (every island has one, dead islands included)."""
        island_ref = np.full(int(self.node_island.max()) + 1, -1, np.int64)
        island_ref[self.node_island[self.ref_node]] = self.ref_node
        return _ro(island_ref[self.node_island])

    @cached_property
    def b_red_lu(self) -> spla.SuperLU:
        """Sparse LU of the susceptance matrix without reference rows and columns (factorised once).

        Used by the price decomposition, the degeneracy test and the singularity check of
        networks with negative reactances (:func:`~nodalopt.network.validate.check_susceptance`).
        """
        nr = self.nonref_nodes
        b_red = sp.csc_matrix(sp.csc_matrix(self.bbus)[:, nr][nr])
        try:
            return spla.splu(b_red)
        except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
            raise InputError(f"{self.name}: the reduced susceptance matrix is singular ({exc}): an island "
                             "without a reference node, or branch susceptances that cancel (negative "
                             "reactances); LMP components cannot be computed.") from exc

    def solve_b_red(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``B_red x = rhs`` for (non-reference nodes x k) right-hand sides."""
        return np.asarray(self.b_red_lu.solve(np.asarray(rhs, dtype=float).reshape(self.nonref_nodes.size, -1)))

    @cached_property
    def names_index(self) -> dict[str, dict[str, int]]:
        """Element name -> position, per group (``gen``, ``load``, ``storage``, ``branch``)."""
        return {
            "gen": {str(n): i for i, n in enumerate(self.gen_names)},
            "load": {str(n): i for i, n in enumerate(self.load_names)},
            "storage": {str(n): i for i, n in enumerate(self.st_names)},
            "branch": {str(n): i for i, n in enumerate(self.br_names)},
            "dcline": {str(n): i for i, n in enumerate(self.dc_names)},
        }

    def summary(self) -> str:
        return (
            f"{self.name}: {self.bus_ids.size} buses ({self.n_node} nodes, "
            f"{self.ref_node.size} island(s)), {self.n_branch} branches "
            f"({int(np.isfinite(self.br_rate).sum())} rated), {self.n_gen} injectors, "
            f"{self.n_load} loads, {self.n_storage} storage units"
            + (f", {self.n_dcline} DC links" if self.n_dcline else "")
        )
