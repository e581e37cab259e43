"""Built-in example networks derived from pandapower cases (documented fix-ups).

Each example is a function with a docstring saying exactly what it changes; :data:`EXAMPLES`
maps the names :func:`nodalopt.load_case` and ``nodalopt solve`` accept to them.

The PEGASE cases as pandapower ships them (``case1354pegase``, ``case2869pegase``,
``case9241pegase``) are infeasible as DC-OPFs: MATPOWER's ``RATE_A = 0`` ("no limit") became a
99.999 MVA transformer (or a 99,999 kA line) with a 100 % loading limit, and every unit costs
1 $/MWh.  ``case1354pegase_fixed``, ``case2869pegase_fixed`` and ``case9241pegase_fixed`` undo
the first and replace the second by seeded costs (:func:`pegase_fixed`); they are the cases the
benchmarks and the README's performance table use.
"""

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


#: seed of the cost draw of the fixed PEGASE cases
PEGASE_SEED = 20240601


def pegase_unlimited_trafos(net: Any) -> None:
    """PEGASE: transformers with sn_mva = 99.999 get no thermal limit (max_loading_percent = NaN).

    In the MATPOWER source these branches have RATE_A = 0 ("unlimited");
    pandapower's converter turns that into sn_mva = 99.999 and a 100 MVA
    limit, which makes the case infeasible.
    """
    t = net.trafo
    net.trafo["max_loading_percent"] = np.where(np.isclose(t.sn_mva, 99.999), np.nan,
                                                t.max_loading_percent.astype(float))


def pegase_unlimited_lines(net: Any) -> None:
    """PEGASE: lines with max_i_ka = 99999 (RATE_A = 0 in the source) get no thermal limit (NaN)."""
    big = net.line.max_i_ka.to_numpy(float) >= 99999.0
    net.line["max_loading_percent"] = np.where(big, np.nan, net.line.max_loading_percent.astype(float))


def pegase_costs(net: Any) -> None:
    """PEGASE: every unit costs 1.0 $/MWh in the source (a loss-minimizing objective);
    replace by deterministic costs: cp1 ~ U(20, 60) $/MWh and cp2 ~ U(0.002, 0.02) $/MW^2h
    from numpy's default_rng(PEGASE_SEED = 20240601), drawn in net.poly_cost row order.
    """
    rng = np.random.default_rng(PEGASE_SEED)
    n = len(net.poly_cost)
    net.poly_cost["cp1_eur_per_mw"] = rng.uniform(20.0, 60.0, n)
    net.poly_cost["cp2_eur_per_mw2"] = rng.uniform(0.002, 0.02, n)


#: the fix-ups of the ``*_fixed`` PEGASE cases, applied in this order
PEGASE_FIXUPS: tuple[Callable[[Any], None], ...] = (pegase_unlimited_trafos, pegase_unlimited_lines, pegase_costs)


def pegase_fixed(source: str) -> Any:
    """A pandapower PEGASE case with :data:`PEGASE_FIXUPS` applied, named ``<source>_fixed``.

    * :func:`pegase_unlimited_trafos`: transformers of sn_mva 99.999 (RATE_A = 0) unlimited;
    * :func:`pegase_unlimited_lines`: lines of max_i_ka 99,999 (RATE_A = 0) unlimited;
    * :func:`pegase_costs`: seeded costs cp1 ~ U(20, 60) $/MWh, cp2 ~ U(0.002, 0.02) $/MW^2h
      instead of 1 $/MWh everywhere.
    """
    import pandapower.networks as pn

    net = getattr(pn, source)()
    for fix in PEGASE_FIXUPS:
        fix(net)
    net.name = f"{source}_fixed"
    return net


def case1354pegase_fixed() -> Any:
    """pandapower ``case1354pegase`` with the PEGASE fix-ups (:func:`pegase_fixed`)."""
    return pegase_fixed("case1354pegase")


def case2869pegase_fixed() -> Any:
    """pandapower ``case2869pegase`` with the PEGASE fix-ups (:func:`pegase_fixed`)."""
    return pegase_fixed("case2869pegase")


def case9241pegase_fixed() -> Any:
    """pandapower ``case9241pegase`` with the PEGASE fix-ups (:func:`pegase_fixed`)."""
    return pegase_fixed("case9241pegase")


EXAMPLES: dict[str, Callable[[], Any]] = {
    "case118_200mva": case118_200mva,
    "case1354pegase_fixed": case1354pegase_fixed,
    "case2869pegase_fixed": case2869pegase_fixed,
    "case9241pegase_fixed": case9241pegase_fixed,
}

#: pandapower cases that are infeasible as shipped -> the example that fixes them
FIXED_VARIANTS: dict[str, str] = {"case1354pegase": "case1354pegase_fixed",
                                  "case2869pegase": "case2869pegase_fixed",
                                  "case9241pegase": "case9241pegase_fixed"}


def fixed_variant_hint(name: str) -> str:
    """A sentence pointing an infeasible shipped case to its fixed variant ("" for other names)."""
    fixed = FIXED_VARIANTS.get(str(name))
    if fixed is None:
        return ""
    return (f"As shipped by pandapower, {name} is infeasible as a DC-OPF (MATPOWER's RATE_A = 0, 'unlimited', "
            f"became 100 MVA transformer limits; every unit costs 1 $/MWh): solve {fixed!r} instead, the "
            "same case with those limits removed and seeded costs (nodalopt.network.examples.pegase_fixed).")
