"""File formats beyond the network front-ends: CSV network folders (PyPSA layout)."""

from __future__ import annotations

from .csv_folder import CsvCase, read_csv_folder, solve_csv_folder, write_csv_results
from .writeback import to_pypsa, write_back

__all__ = ["CsvCase", "read_csv_folder", "solve_csv_folder", "write_csv_results", "to_pypsa", "write_back"]
