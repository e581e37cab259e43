"""Changes that must not change the prices."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from pandapower.toolbox import reindex_buses
from test_rundcopp import congest

import nodalopt


@pytest.fixture(scope="module")
def base_net():
    net = nodalopt.load_case("case118")
    congest(net, 4, 0.8)
    return net


@pytest.fixture(scope="module")
def base_ds(base_net):
    return nodalopt.solve(base_net)


def test_renumbered_buses(base_net, base_ds):
    net = copy.deepcopy(base_net)
    rng = np.random.default_rng(7)
    old = net.bus.index.to_numpy()
    new = rng.permutation(np.arange(1000, 1000 + old.size))
    reindex_buses(net, dict(zip(old, new, strict=True)))
    ds = nodalopt.solve(net)
    mapped = ds.lmp.sel(bus=new).values
    np.testing.assert_allclose(mapped, base_ds.lmp.sel(bus=old).values, atol=1e-6)
    assert ds.attrs["objective"] == pytest.approx(base_ds.attrs["objective"], rel=1e-9)


def test_different_sn_mva(base_net, base_ds):
    net = copy.deepcopy(base_net)
    net.sn_mva = 1000.0  # base power is a numerical choice, not physics
    ds = nodalopt.solve(net)
    unique = base_ds.lmp_unique.values
    np.testing.assert_allclose(ds.lmp.values[unique], base_ds.lmp.values[unique], atol=1e-5)
    np.testing.assert_allclose(ds.flow.values, base_ds.flow.values, atol=1e-3)
    assert ds.attrs["objective"] == pytest.approx(base_ds.attrs["objective"], rel=1e-8)


def test_half_hour_periods_give_same_prices(base_net):
    shape = np.array([0.8, 0.9, 1.0, 0.95])
    hourly = pd.DataFrame(np.outer(shape, base_net.load.p_mw), columns=base_net.load.index)
    half = pd.DataFrame(np.repeat(hourly.to_numpy(), 2, axis=0), columns=base_net.load.index)
    ds60 = nodalopt.solve(base_net, profiles={("load", "p_mw"): hourly}, period_hours=1.0)
    ds30 = nodalopt.solve(base_net, profiles={("load", "p_mw"): half}, period_hours=0.5)
    u = ds60.lmp_unique.values
    np.testing.assert_allclose(ds30.lmp.values[::2][u], ds60.lmp.values[u], atol=1e-5)
    np.testing.assert_allclose(ds30.lmp.values[1::2][u], ds60.lmp.values[u], atol=1e-5)
    # the same MW for half as long costs half as much per period, the same in total
    assert ds30.attrs["objective"] == pytest.approx(ds60.attrs["objective"], rel=1e-7)
    assert np.ptp(ds60.lmp.values) > 1.0
