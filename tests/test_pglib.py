"""PGLib-OPF v23.07 DC baseline objectives (PowerModels DCPPowerModel) with dc_model="pglib".

Every typical-conditions case up to 3,000 buses must solve to status optimal with
the default solver and match BASELINE.md within 1e-4 relative (the baseline is
rounded to 5 significant digits).  Skips when ../shared/pglib is absent.
"""

from __future__ import annotations

import warnings

import pytest

import nodalopt
from conftest import pglib_baseline
from nodalopt.network import pglib_dir

_dir = pglib_dir()
_CASES = sorted(((n, b, o) for n, (b, o) in pglib_baseline(_dir).items() if b <= 3000
                 and (_dir / f"{n}.m").is_file()), key=lambda c: c[1]) if _dir else []


@pytest.mark.pglib
@pytest.mark.parametrize(("name", "buses", "objective"), _CASES, ids=[c[0] for c in _CASES])
def test_pglib_dc_baseline(name, buses, objective):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # negative reactances are reported, not fatal
        ds = nodalopt.solve(_dir / f"{name}.m", dc_model="pglib")
    assert ds.attrs["status"] == "optimal"
    assert ds.attrs["objective"] == pytest.approx(objective, rel=1e-4)
    assert ds.attrs["decomposition_residual"] <= 1e-6 * max(1.0, float(abs(ds.lmp).max()))


def test_pglib_cases_present_or_skipped():
    if _dir is None:
        pytest.skip("../shared/pglib is absent")
    assert len(_CASES) >= 35  # every TYP case up to 3,000 buses is exercised
