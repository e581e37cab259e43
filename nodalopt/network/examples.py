"""Built-in example networks derived from pandapower cases (documented fix-ups)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def rate_all_branches(net: Any, mva: float) -> Any:
    """Give every line and 2-winding transformer a thermal limit of ``mva`` MVA (in place).

    Lines: ``max_loading_percent = 100 * mva / (max_i_ka * sqrt(3) * vn_kv * df * parallel)``;
    transformers: ``max_loading_percent = 100 * mva / (sn_mva * parallel)``.
    """
    ln = net.line
    vn = net.bus.vn_kv.loc[ln.from_bus].to_numpy()
    full = ln.max_i_ka.to_numpy() * np.sqrt(3) * vn * ln.df.to_numpy() * ln.parallel.to_numpy()
    net.line["max_loading_percent"] = 100.0 * mva / full
    if len(net.trafo):
        net.trafo["max_loading_percent"] = 100.0 * mva / (net.trafo.sn_mva * net.trafo.parallel).to_numpy()
    return net


def case118_200mva() -> Any:
    """IEEE 118-bus (pandapower ``case118``) with every branch rated 200 MVA.

    As shipped, case118 has 9,900 MVA limits and never congests; at 200 MVA six
    branches bind in the single-period solve and prices separate by about
    10 $/MWh.  Bus 8 then sits between two binding branches in series, so its
    price is degenerate (flagged in ``lmp_unique``).
    """
    import pandapower.networks as pn

    net = rate_all_branches(pn.case118(), 200.0)
    net.name = "case118_200mva"
    return net


EXAMPLES: dict[str, Callable[[], Any]] = {"case118_200mva": case118_200mva}
