"""Example feeders with distributed resources, for the README, tests and benchmarks.

``case33bw_der`` is pandapower's ``case33bw`` (Baran & Wu 1989, 12.66 kV, 3.7 MW) with
rooftop PV on six buses, a 0.5 MW / 1 MWh battery at bus 17 (the far end of the
main lateral), a 0.3 MW shiftable data-centre load at bus 32 and voltage limits
0.9-1.1 pu.  All sizes are illustrative, chosen so that PV, battery and the flexible
load all matter for the prices; they are not measured data.
"""

from __future__ import annotations

import pandas as pd


def case33bw_der(pv_mw: float = 0.25, battery: bool = True, flexible: bool = True) -> object:
    """case33bw with PV, a battery and a shiftable load (see the module docstring)."""
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.case33bw()
    for bus in (6, 13, 17, 24, 29, 32):
        pp.create_sgen(net, bus, p_mw=pv_mw, q_mvar=0.0, name=f"PV {bus}", type="PV")
    if battery:
        pp.create_storage(net, 17, p_mw=0.0, max_e_mwh=1.0, min_e_mwh=0.0, soc_percent=50.0,
                          min_p_mw=-0.5, max_p_mw=0.5, controllable=True, name="battery 17")
        net.storage["charge_efficiency"] = 0.95
        net.storage["discharge_efficiency"] = 0.95
    if flexible:
        pp.create_load(net, 32, p_mw=0.3, q_mvar=0.0, controllable=True, min_p_mw=0.05, max_p_mw=0.6,
                       name="data centre 32")
    return net


def ev_fleet(n: int = 4, bus: int = 24, p_max_mw: float = 0.05, energy_mwh: float = 0.2,
             arrival: int = 18, departure: int = 24) -> pd.DataFrame:
    """``n`` identical EVs at ``bus`` charging ``energy_mwh`` each between ``arrival`` and ``departure``."""
    return pd.DataFrame({"name": [f"ev{k}" for k in range(n)], "bus": bus, "p_max_mw": p_max_mw,
                         "energy_mwh": energy_mwh, "arrival": arrival, "departure": departure})


#: feeder templates the command line knows by name
FEEDERS = {
    "case33bw": lambda: __import__("pandapower.networks", fromlist=["case33bw"]).case33bw(),
    "case33bw_der": case33bw_der,
    "cigre_mv": lambda: __import__("pandapower.networks", fromlist=["x"]).create_cigre_network_mv(with_der="pv_wind"),
}


def spread_feeders(td: object, feeder_net: object, n: int, prefix: str = "f", evs: pd.DataFrame | None = None,
                   buses: int = 40) -> list[str]:
    """Attach ``n`` copies of ``feeder_net`` round-robin over the ``buses`` largest-load transmission buses.

    Each copy replaces its base load of the bus's own load while the bus has enough left, and is
    put on top of the bus load otherwise.  Returns the feeder names.
    """
    import numpy as np

    from .td import TDNetwork

    assert isinstance(td, TDNetwork)
    tn = td.transmission
    bus_load = np.bincount(tn.load_node, weights=tn.load_p, minlength=tn.n_node) if tn.n_load else \
        np.zeros(tn.n_node)
    order = np.argsort(-bus_load[tn.bus_node], kind="stable")[:buses]
    tmpl = td.template(feeder_net, prefix)
    need = float(tmpl.load_p.sum() + tmpl.flex_p.sum())
    left = bus_load[tn.bus_node][order].copy()
    names = []
    for i in range(n):  # one call per attached copy
        k = i % order.size
        replace = bool(left[k] >= need)
        if replace:
            left[k] -= need
        name = f"{prefix}{i}"
        td.add_feeder(name, feeder_net, at_bus=int(tn.bus_ids[order[k]]), replace=replace, evs=evs)
        names.append(name)
    return names
