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

from ..errors import SolverError
from ..network.arrays import NetworkArrays

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
    rhs = net.bf_red.T @ mu_branch
    if np.any(nu_angle):
        rhs = rhs + net.incidence_red.T @ nu_angle
    lam_c = np.zeros_like(lam)
    if net.nonref_nodes.size and np.any(rhs):
        lam_c[net.nonref_nodes] = -net.solve_b_red(rhs)
    energy = lam[net.ref_of_node]
    residual = float(np.max(np.abs(lam - energy - lam_c), initial=0.0))
    return NodePrices(lmp=lam, energy=energy, congestion=lam_c, residual=residual)


def check_decomposition(prices: NodePrices, scale: float) -> None:
    """Refuse to publish prices whose components do not add up."""
    tol = DECOMPOSITION_TOL * max(1.0, scale)
    if not prices.residual <= tol:
        raise SolverError(
            f"LMP components do not add up: max |lmp - energy - congestion| = {prices.residual:.3g} "
            f"$/MWh > {tol:.1g}; the duals are not accurate enough. Tighten the solver tolerances "
            "(solver_options) or try another solver.", status="inaccurate_duals")
