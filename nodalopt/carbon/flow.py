"""Carbon emission flow: the average carbon intensity of the power consumed at each node.

Proportional sharing of the DC flows (Bialek's tracing; Kang et al., "Carbon
emission flow in networks", Sci. Rep. 2012).  In each period the power entering
a node mixes perfectly, so the node's intensity ``w_n`` (tCO2/MWh) satisfies

    w_n * P_n = sum_{g at n} ef_g * p_g+  +  sum_{branches l into n} w_{upstream(l)} * |flow_l|

where ``P_n`` is the node's gross inflow: positive injections (generation, storage
discharge) plus the flows arriving on branches.  A unit emits only when it
generates (``ef * max(p, 0)``): negative injections (an ext_grid exporting to the
upstream grid, controllable loads, any unit below 0 MW, storage charging) are
consumption at the node's intensity, like fixed loads, so that
``sum_n w_n * consumption_n = sum_g ef_g max(p_g, 0)`` in every period.
Storage discharge is a zero-emission source (the carbon of the energy when it
was charged is not carried over in time).  A node whose outflow exceeds its
recorded inflow (a fixed negative demand, e.g. a fixed generator booked as
negative load) gets the difference as a zero-emission source.

All periods are solved at once as one block-diagonal sparse system
``(diag(P) - F_in) w = E`` of size N*T; it is non-singular whenever the flow
pattern has no directed loop that carries power but feeds no consumer (DC flows
run from high to low angle, so loops only arise with phase shifters or negative
reactances).  Nodes with no inflow at all report intensity 0 (they consume nothing).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError
from ..network.arrays import NetworkArrays


def carbon_emission_flow(net: NetworkArrays, flow: np.ndarray, p: np.ndarray, ef: np.ndarray,
                         storage_discharge: np.ndarray | None = None,
                         demand: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodal carbon intensity and branch carbon flows by proportional sharing.

    Parameters
    ----------
    net : NetworkArrays
    flow : (n_branch, T) MW, positive from ``br_f`` to ``br_t``
    p : (G, T) MW injections (negative = consumption)
    ef : (G,) tCO2/MWh emission factors
    storage_discharge : (S, T) MW or None
    demand : (N, T) MW or None
        Fixed demand served at each node.  Where it is negative (fixed generation booked as
        negative load) it is a zero-emission source that mixes with the node's other inflows,
        so that a node which both absorbs power (a unit below 0 MW, storage charging) and has a
        negative demand still conserves carbon.  Without it, a node's surplus of outflow over
        recorded inflow is taken as that source (exact unless such a node also consumes).

    Returns
    -------
    node_intensity : (N, T) tCO2/MWh
        Average intensity of the power consumed at (and leaving) each node.
    flow_carbon : (n_branch, T) tCO2/h
        Carbon carried by each branch, signed like ``flow``.
    """
    flow = np.atleast_2d(np.asarray(flow, dtype=float))
    p = np.asarray(p, dtype=float).reshape(net.n_gen, -1)
    T = flow.shape[1]
    N, L = net.n_node, net.n_branch
    ef = np.asarray(ef, dtype=float).ravel()
    if flow.shape[0] != L or p.shape[1] != T or ef.size != net.n_gen:
        raise InputError(f"carbon_emission_flow: shapes flow {flow.shape}, p {p.shape}, ef {ef.shape} do not "
                         f"match {L} branches, {net.n_gen} injectors.")
    if not (np.isfinite(ef).all() and (ef >= 0).all()):
        raise InputError("carbon_emission_flow: emission factors must be finite and non-negative.")
    # sources at nodes (N, T): MW and tCO2/h
    pos = np.maximum(p, 0.0)
    cg = net.node_matrix(net.gen_node)
    src_mw = np.asarray(cg @ pos)
    src_co2 = np.asarray(cg @ (ef[:, None] * pos))
    if storage_discharge is not None and net.n_storage:
        src_mw = src_mw + np.asarray(net.node_matrix(net.st_node) @
                                     np.maximum(np.asarray(storage_discharge, float).reshape(net.n_storage, T), 0))
    if demand is not None:  # negative fixed demand: a zero-emission source at the node
        src_mw = src_mw + np.maximum(-np.asarray(demand, dtype=float).reshape(N, T), 0.0)
    # directed flows: upstream / downstream node of each branch and period
    up = np.where(flow >= 0, net.br_f[:, None], net.br_t[:, None])  # (L, T)
    dn = np.where(flow >= 0, net.br_t[:, None], net.br_f[:, None])
    mag = np.abs(flow)
    tt = np.broadcast_to(np.arange(T)[None, :], (L, T))
    inflow = np.zeros((N, T))
    outflow = np.zeros((N, T))
    np.add.at(inflow, (dn, tt), mag)
    np.add.at(outflow, (up, tt), mag)
    gross = np.maximum(src_mw + inflow, outflow)  # extra = zero-emission source (fixed negative demand)
    # block system over k = n * T + t
    kdn, kup = (dn * T + tt).ravel(), (up * T + tt).ravel()
    g = gross.ravel()
    live = g > 0
    diag = np.where(live, g, 1.0)
    a = sp.csr_matrix((-mag.ravel(), (kdn, kup)), shape=(N * T, N * T)) + sp.diags(diag)
    rhs = np.where(live, src_co2.ravel(), 0.0)
    w = spla.spsolve(sp.csc_matrix(a), rhs) if N * T else np.zeros(0)
    w = np.where(live, w, 0.0).reshape(N, T)
    if not np.isfinite(w).all():  # pragma: no cover - needs a loop of power feeding no consumer
        raise InputError("carbon_emission_flow: the flow pattern has a closed loop carrying power that reaches "
                         "no consumer; intensities are undefined.")
    flow_carbon = w[up, tt] * flow
    return w, flow_carbon
