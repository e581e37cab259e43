"""A ``pypsa.Network`` in memory -> the tables of a CSV network folder -> :class:`CsvCase`.

The network's component tables and time series are written as the CSV text that
``pypsa.Network.export_to_csv_folder`` would write (the same column selection: a column whose
values are all PyPSA's default is left out, so the reader applies the same documented default),
kept in memory, and parsed by the CSV folder reader (:func:`nodalopt.io.csv_folder.read_tables`).
So a network solved directly and its exported folder give the same arrays, bit for bit, and every
error names the component table, the row (as a line number of that table, header = line 1) and
the column.  PyPSA is only duck-typed here, never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..io import csv_folder as C

#: component tables handed to the reader (those it reads, and those it refuses when they have rows)
_TABLES = (*C.COMPONENTS, *C.UNSUPPORTED_COMPONENTS)


def is_pypsa_network(obj: Any) -> bool:
    """Whether ``obj`` is a ``pypsa.Network`` (checked by class, without importing PyPSA)."""
    return any(c.__name__ == "Network" and c.__module__.startswith("pypsa") for c in type(obj).__mro__)


def _static_columns(static: pd.DataFrame, defaults: pd.DataFrame) -> list[str]:
    """The columns ``export_to_csv_folder`` writes: all but derived ones and all-default ones."""
    out = []
    for col in static.columns:
        if col in ("g_pu", "b_pu"):
            continue
        if col in defaults.index:
            d = defaults.at[col, "default"]
            if pd.isnull(d) and pd.isnull(static[col]).all():
                continue
            if static[col].dtype == defaults.at[col, "dtype"] and (static[col] == d).all():
                continue
        out.append(col)
    return out


def _series_columns(df: pd.DataFrame, default: Any) -> pd.Index:
    if pd.isnull(default):
        return df.columns[(~pd.isnull(df)).any()]
    return df.columns[(df != default).any()]


def pypsa_texts(n: Any) -> tuple[str, dict[str, str]]:
    """The CSV texts (file name -> text) of ``n`` as a CSV network folder, and a label for messages."""
    name = str(getattr(n, "name", "") or "")
    label = f"<pypsa.Network {name!r}>" if name and name != "Unnamed Network" else "<pypsa.Network>"
    if bool(getattr(n, "has_periods", False)):
        raise InputError(f"{label}: multi-investment-period networks are not supported; solve one period.")
    if bool(getattr(n, "has_scenarios", False)):
        raise InputError(f"{label}: stochastic networks (scenarios) are not supported.")
    texts: dict[str, str] = {
        "network.csv": pd.DataFrame({"name": [name]}).to_csv(index=False),
        "snapshots.csv": n.snapshot_weightings.reset_index().to_csv(),
    }
    for list_name in _TABLES:
        if list_name not in n.components.keys():
            continue
        c = n.components[list_name]
        static = c.static
        if static.empty:
            continue
        defaults = c.defaults
        texts[f"{list_name}.csv"] = static[_static_columns(static, defaults)].to_csv()
        wanted = {a for comp, a in C.SERIES if comp == list_name} | C.REFUSED_SERIES.get(list_name, set())
        for attr, df in c.dynamic.items():
            if attr not in wanted or df.empty:
                continue
            cols = _series_columns(df, defaults.at[attr, "default"] if attr in defaults.index else None)
            if len(cols):
                texts[f"{list_name}-{attr}.csv"] = df.reset_index()[cols].to_csv()
    return label, texts


def read_pypsa(n: Any, *, base_mva: float = C.BASE_MVA, dc_model: str = "pypsa") -> C.CsvCase:
    """Compile a ``pypsa.Network`` into a :class:`~nodalopt.io.csv_folder.CsvCase`.

    Same semantics as :func:`nodalopt.io.read_csv_folder` on the folder
    ``n.export_to_csv_folder`` writes (see ``docs/csv_format.md``), without the files.

    Raises
    ------
    InputError
        Naming ``<pypsa.Network 'name'>/<component>.csv``, the row (line, header = 1) and the
        column of the first problem.
    """
    if not is_pypsa_network(n):
        raise InputError(f"expected a pypsa.Network, got {type(n).__name__}.")
    label, texts = pypsa_texts(n)
    root = Path(label)
    files = {fname: root / fname for fname in texts}

    def load(path: Path) -> C.Table:
        return C.parse_table(path, texts[path.name])

    # the name comes from network.csv unless PyPSA's placeholder ('Unnamed Network')
    return C.read_tables(root, files, load, base_mva=base_mva, dc_model=dc_model, name="pypsa_network")


def solve_pypsa(n: Any, *, base_mva: float = C.BASE_MVA, dc_model: str = "pypsa", **kwargs: Any) -> Any:
    """Solve a ``pypsa.Network`` over its snapshots (keywords as :func:`nodalopt.io.solve_csv_folder`).

    The result carries the coordinates ``bus_name``, ``snapshot`` and ``gen_carrier`` like a CSV
    folder's; :func:`nodalopt.to_pypsa` writes it back into the network.
    """
    ds = C.solve_case(read_pypsa(n, base_mva=base_mva, dc_model=dc_model), **kwargs)
    ds.attrs.update(source_format="pypsa")
    return ds
