from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from nodalopt.network import pglib_dir


@pytest.fixture(scope="session")
def pglib() -> Path:
    d = pglib_dir()
    if d is None:
        pytest.skip("../shared/pglib is absent")
    return d


def pglib_baseline(d: Path) -> dict[str, tuple[int, float]]:
    """Case name -> (buses, DC objective $/h) from BASELINE.md, typical conditions."""
    out: dict[str, tuple[int, float]] = {}
    for line in (d / "BASELINE.md").read_text().splitlines():
        m = re.match(r"\| (pglib_opf_\S+) \| (\d+) \| \d+ \| ([0-9.e+\-]+) \|", line)
        if m and "__" not in m.group(1) and m.group(1) not in out:
            out[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return out


@pytest.fixture(autouse=True)
def _quiet_pandapower_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="pandapower")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield
