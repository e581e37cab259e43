"""AC power flow of radial feeders: the exact branch-flow (DistFlow) equations, solved by a
backward/forward sweep that is vectorized over every feeder copy and every period at once.

For a radial network of series impedances with shunts at the nodes, the branch-flow
equations are the AC power flow (no approximation):

    P_b = sum_{j below b} (p_j + g_j v_j + r_{b(j)} l_{b(j)})        (sending-end MW)
    Q_b = sum_{j below b} (q_j - b_j v_j + x_{b(j)} l_{b(j)})
    l_b = (P_b^2 + Q_b^2) / (kp_b v_parent)
    v_child = kc_b (kp_b v_parent - 2 (r_b P_b + x_b Q_b) + |z_b|^2 l_b)

Each sweep is three sparse products with the forest's path matrix.  The tests compare
the result with pandapower ``runpp`` (agreement ~1e-9 pu); the sweep is what the
loss-factor iteration of the T&D model calls for thousands of (feeder, hour) points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceError
from .td import Forest


@dataclass
class BranchFlow:
    """AC operating point of every node / branch (rows) in every scenario (columns)."""

    v: np.ndarray  # (M, S) squared voltage magnitude, pu^2
    P: np.ndarray  # (Bn, S) sending-end MW
    Q: np.ndarray  # (Bn, S) sending-end MVAr
    L: np.ndarray  # (Bn, S) (P^2 + Q^2) / w, MW^2 per pu^2 (loss = r * L)
    p_import: np.ndarray  # (I, S) MW drawn at each copy's root
    q_import: np.ndarray  # (I, S)
    iterations: int

    @property
    def vm_pu(self) -> np.ndarray:
        return np.sqrt(self.v)

    def losses(self, fo: Forest) -> np.ndarray:
        """(Bn, S) series loss MW per branch."""
        return fo.r[:, None] * self.L


def branch_flow(fo: Forest, p: np.ndarray, q: np.ndarray, tol: float = 1e-11, max_iter: int = 200) -> BranchFlow:
    """Solve the AC power flow of every feeder copy for node withdrawals ``p, q`` (M, S) in MW / MVAr.

    Withdrawals exclude shunts (added here, voltage dependent).  Raises
    :class:`ConvergenceError` naming the feeder when the sweep does not converge
    (typically a load beyond the feeder's voltage-collapse point).
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.ndim == 1:
        p, q = p[:, None], q[:, None]
    D = fo.subtree.tocsr()
    DT = D.T.tocsr()
    cin, cout, par = fo.cin, fo.cout, fo.par
    pi = fo.ratio_path[:, None]
    pi_child = pi[fo.child]
    r, x, kp, kc, z2 = (a[:, None] for a in (fo.r, fo.x, fo.kp, fo.kc, fo.z2))
    u_root = fo.v_root[:, None]  # u = v / pi; u_root broadcast to every node of the copy
    v = np.broadcast_to(fo.v_root[:, None] * pi, p.shape).copy()
    L = np.zeros((fo.n_branch, p.shape[1]))
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        pw = p + fo.g_sh[:, None] * v + cin @ (r * L)
        qw = q - fo.b_sh[:, None] * v + cin @ (x * L)
        P = D @ pw
        Q = D @ qw
        w = kp * (par @ v)
        if (w <= 0).any() or not np.isfinite(w).all():
            break
        L = (P**2 + Q**2) / w
        delta = kc * (-2.0 * (r * P + x * Q) + z2 * L)
        v_new = pi * (u_root + DT @ (delta / pi_child))
        step = float(np.max(np.abs(v_new - v), initial=0.0))
        v = v_new
        if step < tol:
            break
    if not np.isfinite(v).all() or (v <= 0).any() or it >= max_iter:
        bad = np.unique(fo.inst_of_node[np.flatnonzero(~np.isfinite(v).all(axis=1) | (v <= 0).any(axis=1))])
        names = [fo.names[i] for i in bad[:5]] or fo.names[:5]
        raise ConvergenceError(f"AC power flow of feeder(s) {names} did not converge in {max_iter} sweeps "
                               "(voltage collapse?): the loads are beyond what the feeder can carry; reduce "
                               "scale or the loads.")
    pw = p + fo.g_sh[:, None] * v + cin @ (r * L)
    qw = q - fo.b_sh[:, None] * v + cin @ (x * L)
    roots = fo.inst_node0
    p_imp = (pw + cout @ P)[roots]
    q_imp = (qw + cout @ Q)[roots]
    return BranchFlow(v=v, P=P, Q=Q, L=L, p_import=p_imp, q_import=q_imp, iterations=it)
