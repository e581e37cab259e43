"""Which nodal prices are unique?

Per period, every nodal price can be written ``lambda_n = lambda_ref(island n)
- sum_l PTDF[l, n] mu_l`` over the *active* branch limits ``l``.  A resource
strictly inside its bounds (a marginal generator, partial load shedding) pins
the price at its node to its marginal cost, which gives one linear equation on
the unknowns ``(lambda_ref, mu)``.  The price at node ``n`` is unique exactly
when its row ``[e_island(n), -PTDF[:, n]]`` lies in the row space of the pinning
equations; otherwise the optimal duals form a set and solvers legitimately
return different points (interior point lands mid-interval, simplex at a
vertex).  Storage, ramp and angle constraints are not used as pins, so the
test is conservative: a price it calls unique is unique, one it flags may
still be unique through intertemporal coupling.
"""

from __future__ import annotations

import numpy as np

from ..network.arrays import NetworkArrays


def unique_prices(net: NetworkArrays, flow: np.ndarray, p_gen: np.ndarray, pmin: np.ndarray,
                  pmax: np.ndarray, shed: np.ndarray, demand: np.ndarray, rtol: float = 1e-6,
                  ptol: float = 1e-4) -> np.ndarray:
    """Boolean (N, T): True where the node's price is unique in period t."""
    N, T = net.n_node, flow.shape[1]
    rate = net.br_rate[:, None]
    active = np.isfinite(rate) & (np.abs(flow) >= rate * (1 - rtol) - ptol) & (net.br_b[:, None] != 0)
    cols = np.flatnonzero(active.any(axis=1))
    # PTDF rows of every branch active in some period: P = Bf_red B_red^{-1}  (k x N)
    ptdf = np.zeros((cols.size, N))
    if cols.size and net.nonref_nodes.size:
        ptdf[:, net.nonref_nodes] = net.solve_b_red(net.bf_red[cols].toarray().T).T
    # one unknown reference price per island that has generation (dead islands have no price)
    live_isl = np.unique(net.node_island[net.gen_node])
    island_col = np.full(int(net.node_island.max()) + 1, -1, np.int64)
    island_col[live_isl] = np.arange(live_isl.size)
    isl = island_col[net.node_island]
    n_isl = live_isl.size
    tol_g = ptol * np.maximum(1.0, np.abs(p_gen))
    interior = (p_gen > pmin + tol_g) & (p_gen < pmax - tol_g)
    partial_shed = (shed > ptol) & (shed < demand - ptol)
    out = np.zeros((N, T), bool)
    for t in range(T):  # periods are independent here; each step is a small dense SVD
        k_act = active[cols, t]
        rows = np.zeros((N, n_isl + int(k_act.sum())))
        live = isl >= 0
        rows[np.flatnonzero(live), isl[live]] = 1.0
        rows[:, n_isl:] = -ptdf[k_act].T
        pin_nodes = np.unique(np.r_[net.gen_node[interior[:, t]], np.flatnonzero(partial_shed[:, t])])
        m = rows[pin_nodes]
        if m.size:
            _, s, vt = np.linalg.svd(m, full_matrices=False)
            basis = vt[s > 1e-9 * max(1.0, s.max(initial=0.0))]
            resid = rows - (rows @ basis.T) @ basis
        else:
            resid = rows
        scale = np.maximum(1.0, np.abs(rows).max(axis=1))
        out[:, t] = live & (np.abs(resid).max(axis=1) <= 1e-7 * scale)
    return out
