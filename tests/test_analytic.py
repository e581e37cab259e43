"""Hand-computed LMPs on 2- and 3-bus networks and the published PJM 5-bus prices."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import three_bus, two_bus

import nodalopt


def test_two_bus_congested():
    ds = nodalopt.solve(two_bus(limit_mw=60))
    # cheap unit sends 60 MW over the full line, the dear unit covers 90 MW
    np.testing.assert_allclose(ds.p_gen.values[0], [60, 90], atol=1e-5)
    np.testing.assert_allclose(ds.lmp.values[0], [10, 30], atol=1e-6)
    np.testing.assert_allclose(ds.lmp_energy.values[0], [10, 10], atol=1e-6)
    np.testing.assert_allclose(ds.lmp_congestion.values[0], [0, 20], atol=1e-6)
    np.testing.assert_allclose(ds.branch_mu.values[0], [20], atol=1e-6)  # from->to limit binds
    assert ds.attrs["objective"] == pytest.approx(60 * 10 + 90 * 30, rel=1e-8)


def test_two_bus_uncongested_single_price():
    ds = nodalopt.solve(two_bus(limit_mw=500))
    # cheap unit at its 100 MW limit, dear unit marginal everywhere
    np.testing.assert_allclose(ds.p_gen.values[0], [100, 50], atol=1e-5)
    np.testing.assert_allclose(ds.lmp.values[0], [30, 30], atol=1e-6)
    np.testing.assert_allclose(ds.lmp_congestion.values[0], [0, 0], atol=1e-6)


def test_three_bus_loop_flow():
    ds = nodalopt.solve(three_bus(limit_13=160))
    np.testing.assert_allclose(ds.p_gen.values[0], [180, 120], atol=1e-5)
    np.testing.assert_allclose(ds.lmp.values[0], [10, 20, 30], atol=1e-6)
    np.testing.assert_allclose(ds.lmp_congestion.values[0], [0, 10, 20], atol=1e-6)
    mu = ds.branch_mu.sel(branch="line:2").values[0]
    assert mu == pytest.approx(30, abs=1e-6)  # lambda_c = -PTDF^T mu with PTDF(0-2, bus 2) = -2/3
    assert ds.flow.sel(branch="line:2").values[0] == pytest.approx(160, abs=1e-5)


def test_pjm_5bus_published_lmps(pglib):
    """Li & Bo (2010), 'Small test systems for power system economic studies', PJM 5-bus:
    LMPs A 16.98, B 26.38, C 30.00, D 39.94, E 10.00 $/MWh (line D-E at its 240 MW limit)."""
    case = nodalopt.load_case(pglib / "pglib_opf_case5_pjm.m")
    ds = nodalopt.solve(case)
    np.testing.assert_allclose(ds.lmp.values[0], [16.98, 26.38, 30.00, 39.94, 10.00], atol=6e-3)
    assert ds.attrs["binding_branches"] == "branch:5"
    assert abs(ds.flow.sel(branch="branch:5").values[0]) == pytest.approx(240, abs=1e-5)
