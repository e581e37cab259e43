"""No prices from a non-optimal solve: infeasible, unbounded, solver trouble, load shedding."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from helpers import three_bus, two_bus

import nodalopt
from nodalopt.errors import InfeasibleError, SolverError, UnboundedError


def test_infeasible_names_bus_hour_and_mw():
    net = three_bus(limit_13=1e4)
    prof = pd.DataFrame({0: [300.0, 1100.0, 300.0]})  # hour 1 needs 100 MW more than installed
    with pytest.raises(InfeasibleError, match=r"bus 2 hour 1: \+100\.000 MW") as info:
        nodalopt.solve(net, profiles={("load", "p_mw"): prof})
    (bus, hour, mw), = info.value.shortfall
    assert (bus, hour) == (2, 1) and mw == pytest.approx(100.0, abs=1e-3)


def test_infeasible_behind_a_congested_line():
    net = two_bus(limit_mw=60)
    net.gen.at[0, "max_p_mw"] = 50.0  # 60 MW import + 50 MW local < 150 MW load
    with pytest.raises(InfeasibleError, match=r"bus 1 hour 0: \+40\.000 MW"):
        nodalopt.solve(net)


def test_unbounded_names_the_generator():
    net = pp.create_empty_network()
    b0, b1 = pp.create_bus(net, 110), pp.create_bus(net, 110)
    pp.create_line_from_parameters(net, b0, b1, 1, 0.01, 0.4, 0, 1.0)  # no rating: unlimited
    pp.create_ext_grid(net, b0)  # controllable=False: no P limits
    pp.create_ext_grid(net, b1)
    pp.create_load(net, b1, p_mw=10)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    pp.create_poly_cost(net, 1, "ext_grid", cp1_eur_per_mw=20)  # buy low, sell high, forever
    with pytest.raises(UnboundedError, match=r"ext_grid:0.*ext_grid:1"):
        nodalopt.solve(net)


def test_solver_trouble_is_an_error_not_a_price():
    net = nodalopt.load_case("case118")
    with pytest.raises(SolverError) as info:
        nodalopt.solve(net, solver_options={"max_iter": 2})
    assert info.value.status in ("user_limit", "optimal_inaccurate", "solver_error", "infeasible_inaccurate")


def test_load_shedding_has_its_own_status():
    net = three_bus(limit_13=1e4)
    prof = pd.DataFrame({0: [300.0, 1100.0]})
    ds = nodalopt.solve(net, profiles={("load", "p_mw"): prof}, voll=3000.0)
    assert ds.attrs["status"] == "optimal_with_load_shedding"
    assert float(ds.load_shed.sel(bus=2).values[1]) == pytest.approx(100.0, abs=1e-3)
    assert float(ds.lmp.sel(bus=2).values[1]) == pytest.approx(3000.0, abs=1e-3)
    assert float(ds.demand.sel(bus=2).values[1]) == pytest.approx(1000.0, abs=1e-3)
    assert float(ds.load_shed.values[0].sum()) == 0.0


def test_no_shedding_means_plain_optimal():
    ds = nodalopt.solve(three_bus(), voll=3000.0)
    assert ds.attrs["status"] == "optimal"
    np.testing.assert_allclose(ds.lmp.values[0], [10, 20, 30], atol=1e-6)
    assert float(ds.load_shed.sum()) == 0.0
