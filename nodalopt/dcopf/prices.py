"""LMPs and their components from the duals of one solve.

With the balance written as ``demand + B theta - generation = 0`` (dual
``lambda``) and branch limits ``|Bf theta + s| <= F`` (duals ``mu+``, ``mu-``),
stationarity with respect to the non-reference angles gives::

    B_red lambda_c = -(Bf_red^T (mu+ - mu-) + A_red^T (nu+ - nu-))

so ``lambda = lambda_ref + lambda_c`` where ``lambda_c = -PTDF^T mu`` is the
congestion component, computed here with one sparse factorization of
``B_red`` (no dense PTDF).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError, SolverError
from ..network.arrays import NetworkArrays
from .formulation import reduced

#: absolute tolerance ($/MWh) on lmp == energy + congestion
DECOMPOSITION_TOL = 1e-6


@dataclass(frozen=True)
class NodePrices:
    lmp: np.ndarray  # (N, T) $/MWh at nodes
    energy: np.ndarray
    congestion: np.ndarray
    residual: float  # max |lmp - energy - congestion|


def decompose(net: NetworkArrays, lam: np.ndarray, mu_branch: np.ndarray, nu_angle: np.ndarray
              ) -> NodePrices:
    """Split nodal prices (N, T) into reference-energy and congestion parts.

    ``mu_branch`` (n_branch, T) and ``nu_angle`` (n_branch, T) are the signed
    shadow prices ($/MWh per MW and per rad) of flow and angle limits.
    """
    rhs = reduced(net.bf, net).T @ mu_branch
    if np.any(nu_angle):
        rhs = rhs + reduced(net.incidence, net).T @ nu_angle
    b_red = sp.csc_matrix(reduced(net.bbus, net)[net.nonref_nodes])
    n_red = net.nonref_nodes.size
    lam_c = np.zeros_like(lam)
    if n_red and np.any(rhs):
        try:
            lu = spla.splu(b_red)
        except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
            raise InputError(f"{net.name}: the reduced susceptance matrix is singular ({exc}): an island "
                             "without a reference node, or branch susceptances that cancel (negative "
                             "reactances); LMP components cannot be computed.") from exc
        lam_c[net.nonref_nodes] = -lu.solve(np.asarray(rhs, dtype=float).reshape(n_red, -1))
    island_ref = np.full(int(net.node_island.max()) + 1, -1, np.int64)
    island_ref[net.node_island[net.ref_node]] = net.ref_node
    ref_of_node = island_ref[net.node_island]
    live = ref_of_node >= 0
    energy = np.where(live[:, None], lam[np.maximum(ref_of_node, 0)], np.nan)
    residual = float(np.nanmax(np.abs(lam - energy - lam_c)[live])) if live.any() else 0.0
    return NodePrices(lmp=lam, energy=energy, congestion=lam_c, residual=residual)


def check_decomposition(prices: NodePrices, scale: float) -> None:
    """Refuse to publish prices whose components do not add up."""
    tol = DECOMPOSITION_TOL * max(1.0, scale)
    if not prices.residual <= tol:
        raise SolverError(
            f"LMP components do not add up: max |lmp - energy - congestion| = {prices.residual:.3g} "
            f"$/MWh > {tol:.1g}; the duals are not accurate enough. Tighten the solver tolerances "
            "(solver_options) or try another solver.", status="inaccurate_duals")
