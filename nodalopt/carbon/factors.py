"""Emission factors per injector (tCO2/MWh of electricity).

The table ``data/emission_factors.csv`` (shipped as ``nodalopt/data/emission_factors.csv``)
holds typical *direct* combustion factors: IPCC 2006 default fuel factors
(Vol. 2, Ch. 2, Table 2.2, kg CO2/TJ) divided by typical net plant efficiencies,
which the file header states.  Biomass is 0 under the IPCC direct-accounting
convention (biogenic CO2 is a memo item); its stack value is kept in the file
for reference.  Nuclear, hydro, wind and solar emit nothing directly.

Fuel names are matched case-insensitively, with spaces and hyphens read as
underscores, and through a small documented alias list (:data:`ALIASES`):
``"gas"`` and ``"natural_gas"`` mean a combined-cycle plant (``gas_ccgt``),
``"hard_coal"`` means ``coal``, ``"brown_coal"`` means ``lignite``, ...
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import InputError
from ..network.arrays import DISPATCHABLE

#: alias -> canonical fuel name in the table
ALIASES: dict[str, str] = {
    "hard_coal": "coal", "bituminous_coal": "coal", "coal_hard": "coal",
    "brown_coal": "lignite",
    "gas": "gas_ccgt", "natural_gas": "gas_ccgt", "ccgt": "gas_ccgt",
    "ocgt": "gas_ocgt", "gas_turbine": "gas_ocgt",
    "fuel_oil": "oil", "diesel": "oil",
    "uranium": "nuclear",
    "onwind": "wind", "offwind": "wind", "onshore_wind": "wind", "offshore_wind": "wind",
    "pv": "solar", "solar_pv": "solar",
    "ror": "hydro", "run_of_river": "hydro",
}

#: classes used by :func:`synthetic_factors`, cheapest third first
SYNTHETIC_CLASSES: tuple[str, str, str] = ("coal", "gas_ccgt", "gas_ocgt")


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, float], ...]:
    text = resources.files("nodalopt").joinpath("data/emission_factors.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))))
    return tuple((r["fuel"].strip(), float(r["co2_t_per_mwh"])) for r in rows)


def factor_table() -> dict[str, float]:
    """Fuel name -> typical direct emission factor in tCO2/MWh_el (a fresh dict)."""
    return dict(_table())


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(key, key)


def factors_from_fuel(fuel_names: np.ndarray, where: str) -> np.ndarray:
    """Emission factor (tCO2/MWh) for each fuel name.

    Parameters
    ----------
    fuel_names : array of str
        One fuel per injector (see :func:`factor_table` and :data:`ALIASES`).
    where : str
        Where the names came from, quoted in the error message (e.g. ``"net.gen column 'fuel'"``).

    Raises
    ------
    InputError
        Naming the unknown fuels and listing the valid names and aliases.
    """
    table = factor_table()
    names = np.asarray(fuel_names, dtype=object).ravel()
    canon = np.array([_canonical(n) for n in names], dtype=object)
    unknown = sorted({str(n) for n, c in zip(names, canon, strict=True) if c not in table})
    if unknown:
        raise InputError(f"{where}: unknown fuel(s) {unknown[:8]}; valid fuels: {sorted(table)}; aliases: "
                         f"{sorted(ALIASES)}. Give co2_t_per_mwh per unit for other technologies.")
    return np.array([table[c] for c in canon], dtype=float)


def synthetic_factors(c1: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """A deterministic, *synthetic* emission factor per injector for cases without fuel data.

    Rule: renewables and controllable loads get 0.  Dispatchable units are
    ranked by linear cost ``c1`` (average ranks, so units with equal cost get
    the same class); the cheapest third is labelled ``coal``, the middle third
    ``gas_ccgt`` and the dearest third ``gas_ocgt`` (:data:`SYNTHETIC_CLASSES`),
    and get those fuels' factors from :func:`factor_table`.  The assignment
    mimics a thermal merit order; it is an illustration, not data.

    Parameters
    ----------
    c1 : (G,) array, $/MWh
    kinds : (G,) array of generator kinds (``nodalopt.network.arrays.DISPATCHABLE`` ...)
    """
    c1 = np.asarray(c1, dtype=float).ravel()
    kinds = np.asarray(kinds).ravel()
    if c1.shape != kinds.shape:
        raise InputError(f"synthetic_factors: {c1.size} costs for {kinds.size} generator kinds.")
    table = factor_table()
    out = np.zeros(c1.size)
    disp = np.flatnonzero(kinds == DISPATCHABLE)
    if disp.size:
        cost = np.nan_to_num(c1[disp], nan=0.0)
        # average rank in [0, n): ties share a rank
        order = np.argsort(cost, kind="stable")
        srt = cost[order]
        first = np.searchsorted(srt, cost, side="left")
        last = np.searchsorted(srt, cost, side="right")
        avg_rank = 0.5 * (first + last - 1)  # 0-based average rank
        q = (avg_rank + 0.5) / disp.size  # mid-rank quantile in (0, 1)
        cls = np.clip(np.floor(3.0 * q).astype(int), 0, 2)
        values = np.array([table[c] for c in SYNTHETIC_CLASSES])
        out[disp] = values[cls]
    return out
