"""PGLib-OPF v23.07 DC baseline objectives (PowerModels DCPPowerModel) with dc_model="pglib".

Every typical-conditions case up to 3,000 buses must solve to status optimal with
the default solver and match BASELINE.md within 1e-4 relative (the baseline is
rounded to 5 significant digits).  Skips when ../shared/pglib is absent.
"""

from __future__ import annotations

import warnings

import pytest
from conftest import pglib_baseline

import nodalopt
from nodalopt.network import pglib_dir

_dir = pglib_dir()
_CASES = sorted(((n, b, o) for n, (b, o) in pglib_baseline(_dir).items() if b <= 3000
                 and (_dir / f"{n}.m").is_file()), key=lambda c: c[1]) if _dir else []


#: Known deviations from the baseline (case name -> reason), run as strict xfails.  None at present:
#: case1803_snem (+1.2e-4 before) matches since the pglib model flips and rescales opposite parallel
#: transformers as PowerModels' parser does (see test_powermodels_branch_flips below).
_KNOWN: dict[str, str] = {}


def _param(c):
    marks = [pytest.mark.xfail(reason=_KNOWN[c[0]], strict=True)] if c[0] in _KNOWN else []
    return pytest.param(*c, id=c[0], marks=marks)


@pytest.mark.pglib
@pytest.mark.parametrize(("name", "buses", "objective"), [_param(c) for c in _CASES])
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


@pytest.mark.pglib
def test_snem_two_solvers_agree():
    """Interior point (Clarabel) and simplex (HiGHS) give the same optimum on case1803_snem."""
    import cvxpy as cp

    if _dir is None:
        pytest.skip("../shared/pglib is absent")
    if "HIGHS" not in cp.installed_solvers():
        pytest.skip("HiGHS not installed")
    path = _dir / "pglib_opf_case1803_snem.m"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a = nodalopt.solve(path, dc_model="pglib")
        b = nodalopt.solve(path, dc_model="pglib", solver="HIGHS")
    assert a.attrs["objective"] == pytest.approx(b.attrs["objective"], rel=1e-7)
    assert a.attrs["objective"] == pytest.approx(87696.4565, rel=1e-6)  # baseline 8.7696e4


def test_julia_dict_order():
    """The emulated Julia Dict iteration order matches Julia's documented outputs."""
    from nodalopt.network.matpower import _julia_dict_order

    assert _julia_dict_order(["A", "B"]) == [1, 0]  # Dict("A"=>1, "B"=>2) shows "B" first
    assert _julia_dict_order(["foo", "bar", "baz"]) == [1, 2, 0]  # merge() docstring: bar, baz, foo
    n = 5000  # growth by rehashing: every key once
    assert sorted(_julia_dict_order([str(i) for i in range(1, n + 1)])) == list(range(n))


def test_powermodels_branch_flips():
    """PowerModels flips the later-visited one of two opposite parallel branches, b -> b / tap^2."""
    import numpy as np

    from nodalopt.network.matpower import _powermodels_reversed

    # PowerModels' test case5: branch 6 (4 -> 3) is reported as reversed to match branch 5 (3 -> 4)
    ft = [(1, 2), (1, 4), (1, 10), (2, 3), (3, 4), (4, 3), (4, 10)]
    br = np.zeros((7, 13))
    br[:, :2] = ft
    assert _powermodels_reversed(br).tolist() == [False] * 5 + [True, False]
    assert not _powermodels_reversed(br[[0, 1, 2, 3, 4, 6]]).any()
    if _dir is None:
        pytest.skip("../shared/pglib is absent")
    case = nodalopt.network.read_matpower(_dir / "pglib_opf_case1803_snem.m")
    flip = _powermodels_reversed(case.branch)
    assert np.flatnonzero(flip & (case.branch[:, 8] > 0) & (case.branch[:, 8] != 1)).tolist() == [
        491, 861, 1225, 1250, 1430, 1431, 1435, 1849]  # 18 flips, these 8 are transformers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = nodalopt.network.from_matpower(case, dc_model="pglib")
    k = list(net.br_names).index("branch:1225")  # 401 -> 102, tap 0.99057, flipped
    r, x, tap = case.branch[1225, 2], case.branch[1225, 3], case.branch[1225, 8]
    assert net.br_b[k] == pytest.approx(x / (r * r + x * x) / tap**2, rel=1e-12)
