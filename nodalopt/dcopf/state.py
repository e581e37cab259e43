"""The primal-dual point of a solved DC-OPF, in model order, for post-processing
(price decomposition, degeneracy, emissions).  Arrays are (element, time)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..network.arrays import NetworkArrays


@dataclass(frozen=True)
class SolvedState:
    net: NetworkArrays
    dt: float  # period length, h
    p: np.ndarray  # (G, T) MW injection
    pmin: np.ndarray  # (G, T) MW lower bound used (may be -inf)
    pmax: np.ndarray  # (G, T) MW upper bound used (may be +inf)
    theta: np.ndarray  # (N, T) rad, zero at reference nodes
    flow: np.ndarray  # (n_branch, T) MW
    lam: np.ndarray  # (N, T) $/MWh nodal balance duals
    mu: np.ndarray  # (n_branch, T) $/MWh per MW, signed flow-limit duals
    nu: np.ndarray  # (n_branch, T) signed angle-limit duals
    demand: np.ndarray  # (N, T) MW fixed demand at nodes (loads + fixed), before shedding
    shed: np.ndarray  # (N, T) MW
    pc: np.ndarray | None  # (S, T) storage charge MW
    pd: np.ndarray | None  # (S, T) storage discharge MW
    e: np.ndarray | None  # (S, T) storage energy MWh at period end
    voll: float | None
