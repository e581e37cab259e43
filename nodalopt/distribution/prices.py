"""DLMP components from the KKT conditions of the feeder network variables.

The network variables of one period, ``x = [P, Q, v, P_sub, Q_sub]`` (branch flows,
squared voltages, substation import), carry no cost, so stationarity reads

    E^T y + G^T mu + c = 0,

with ``E`` the equality rows (active and reactive balance at every node, voltage drop
on every branch; square and invertible on a radial feeder), ``G`` the inequality rows
(voltage limits, branch and substation polygons) with their multipliers ``mu``, and
``c`` the transmission price where ``P_sub`` enters the transmission balance.  ``y``
is linear in the right-hand side, so the DLMP (the active-balance part of ``y``)
splits exactly into

* ``dlmp_energy``: the LMP of the transmission bus the feeder hangs from;
* ``dlmp_loss``: the response to that LMP alone, minus it (marginal losses);
* ``dlmp_congestion``: the response to the branch and substation limits;
* ``dlmp_voltage``: the response to the voltage limits.

The components are computed by sparse solves with ``E^T`` and checked against the
solver's own balance duals (the KKT residual is reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import SolverError
from .lindistflow import POLYGON_SIDES, polygon_matrices
from .td import Forest


@dataclass
class FeederDuals:
    """Raw duals of one solve (already divided by the period length: $/MWh, $/MVArh)."""

    pbal: np.ndarray  # (M, T)
    qbal: np.ndarray  # (M, T)
    vdef: np.ndarray  # (Bn, T)
    vmax: np.ndarray  # (Bn, T) zero where no limit
    vmin: np.ndarray  # (Bn, T)
    poly: np.ndarray  # (K * n_rated, T)
    poly_rows: np.ndarray
    sub: np.ndarray  # (K * n_sub, T)
    sub_rows: np.ndarray
    lmp_root: np.ndarray  # (I, T) transmission LMP at each copy's bus
    grad_p: np.ndarray | None = None  # (Bn, T) gradient of the loss-curvature term w.r.t. P ($/MWh)
    grad_q: np.ndarray | None = None


@dataclass
class DLMP:
    dlmp: np.ndarray  # (M, T) $/MWh (solver duals)
    energy: np.ndarray
    loss: np.ndarray
    congestion: np.ndarray
    voltage: np.ndarray
    q_price: np.ndarray  # (M, T) $/MVArh
    residual: float  # max |sum of components - dlmp|


def stationarity_matrix(fo: Forest, aP: np.ndarray, aQ: np.ndarray, aW: np.ndarray) -> sp.csc_matrix:
    """E for one period: rows [P-balance (M), Q-balance (M), voltage drop (Bn)],
    columns [P (Bn), Q (Bn), v (Bn), P_sub (I), Q_sub (I)], as in :mod:`lindistflow`."""
    M, Bn, n_i = fo.n_node, fo.n_branch, fo.n_inst
    cin, cout = fo.cin, fo.cout
    PC = sp.csr_matrix(fo.par @ cin)  # (Bn, Bn): parent's v of each branch, through v_full
    d = sp.diags
    r, x, kp, kc, z2 = fo.r, fo.x, fo.kp, fo.kc, fo.z2
    g, b = fo.g_sh, fo.b_sh
    dLdv = d(aW * kp) @ PC
    roots = fo.roots
    zM_I = sp.csr_matrix((M, n_i))
    Ebal_p = sp.hstack([cout - cin + cin @ d(r * aP), cin @ d(r * aQ), d(g) @ cin + cin @ d(r) @ dLdv, -roots, zM_I])
    Ebal_q = sp.hstack([cin @ d(x * aP), cout - cin + cin @ d(x * aQ), -d(b) @ cin + cin @ d(x) @ dLdv, zM_I,
                        -roots])
    Ev = sp.hstack([d(kc * (2 * r - z2 * aP)), d(kc * (2 * x - z2 * aQ)),
                    sp.identity(Bn) - d(kc * kp) @ PC - d(kc * z2) @ dLdv, sp.csr_matrix((Bn, 2 * n_i))])
    return sp.csc_matrix(sp.vstack([Ebal_p, Ebal_q, Ev]))


def _rhs_parts(fo: Forest, du: FeederDuals, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G^T mu (+ c) split into coupling, congestion and voltage parts, on the x ordering."""
    Bn, n_i = fo.n_branch, fo.n_inst
    n = 3 * Bn + 2 * n_i
    coupling = np.zeros(n)
    coupling[3 * Bn: 3 * Bn + n_i] = du.lmp_root[:, t]
    if du.grad_p is not None and du.grad_q is not None:  # second-order loss term: part of the loss response
        coupling[:Bn] += du.grad_p[:, t]
        coupling[Bn:2 * Bn] += du.grad_q[:, t]
    cong = np.zeros(n)
    if du.poly_rows.size:
        cp_, cq = polygon_matrices(Bn, du.poly_rows, POLYGON_SIDES)
        cong[:Bn] += cp_.T @ du.poly[:, t]
        cong[Bn:2 * Bn] += cq.T @ du.poly[:, t]
    if du.sub_rows.size:
        cp_, cq = polygon_matrices(n_i, du.sub_rows, POLYGON_SIDES)
        cong[3 * Bn: 3 * Bn + n_i] += cp_.T @ du.sub[:, t]
        cong[3 * Bn + n_i:] += cq.T @ du.sub[:, t]
    volt = np.zeros(n)
    volt[2 * Bn: 3 * Bn] = du.vmax[:, t] - du.vmin[:, t]
    return coupling, cong, volt


def decompose(fo: Forest, du: FeederDuals, aP: np.ndarray, aQ: np.ndarray, aW: np.ndarray,
              tol: float = 1e-6) -> DLMP:
    """Split the DLMPs of every node and period into energy, loss, congestion and voltage parts.

    Raises :class:`SolverError` when the components do not add up to the solver's own
    DLMPs within ``tol * max(1, |dlmp|)`` (inaccurate duals: no prices are published).
    """
    M, T = fo.n_node, du.pbal.shape[1]
    out = {k: np.zeros((M, T)) for k in ("loss", "congestion", "voltage")}
    energy = du.lmp_root[fo.inst_of_node]
    for t in range(T):
        E = stationarity_matrix(fo, aP[:, t], aQ[:, t], aW[:, t])
        lu = spla.splu(sp.csc_matrix(E.T))
        parts = _rhs_parts(fo, du, t)
        sol = lu.solve(-np.column_stack(parts))  # (rows of E, 3)
        yp = sol[:M]
        out["loss"][:, t] = yp[:, 0] - energy[:, t]
        out["congestion"][:, t] = yp[:, 1]
        out["voltage"][:, t] = yp[:, 2]
    total = energy + out["loss"] + out["congestion"] + out["voltage"]
    resid = float(np.max(np.abs(total - du.pbal), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(du.pbal), initial=0.0)))
    if resid > tol * scale:
        raise SolverError(f"DLMP components do not add up to the DLMPs (max residual {resid:.2e} $/MWh > "
                          f"{tol * scale:.1e}): the solver's duals are not accurate enough to publish; tighten "
                          "the solver tolerances.", status="inaccurate_duals")
    return DLMP(dlmp=du.pbal, energy=energy, loss=out["loss"], congestion=out["congestion"],
                voltage=out["voltage"], q_price=du.qbal, residual=resid)
