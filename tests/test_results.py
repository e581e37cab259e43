"""The result Dataset, profiles, multi-period coupling (storage, ramps) and re-solves."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
import xarray as xr
from helpers import three_bus

import nodalopt
from nodalopt.profiles import demo_profiles


def storage_case():
    net = three_bus(limit_13=1e4)
    net.poly_cost.loc[net.poly_cost.et == "gen", "cp2_eur_per_mw2"] = 0.05
    net.poly_cost.loc[net.poly_cost.et == "ext_grid", "cp2_eur_per_mw2"] = 0.02
    pp.create_storage(net, 2, p_mw=0, max_e_mwh=100, min_e_mwh=0, soc_percent=50, max_p_mw=40,
                      min_p_mw=-40, controllable=True)
    net.storage["charge_efficiency"] = 0.95
    net.storage["discharge_efficiency"] = 0.95
    net.gen["ramp_up_mw_per_h"] = 30.0
    net.gen["ramp_down_mw_per_h"] = 30.0
    return net


@pytest.fixture(scope="module")
def day():
    net = storage_case()
    return net, nodalopt.solve(net, hours=24)


def test_dataset_layout_and_units(day):
    _, ds = day
    for name, dims in {"lmp": ("time", "bus"), "lmp_energy": ("time", "bus"),
                       "lmp_congestion": ("time", "bus"), "demand": ("time", "bus"),
                       "load_shed": ("time", "bus"), "p_gen": ("time", "gen"),
                       "flow": ("time", "branch"), "branch_mu": ("time", "branch"),
                       "soc_mwh": ("time", "storage")}.items():
        assert ds[name].dims == dims
        assert ds[name].attrs["units"]
    assert ds.lmp.attrs["units"] == "$/MWh"
    assert np.issubdtype(ds.time.dtype, np.datetime64)
    assert ds.bus.dtype.kind == "i"
    assert list(ds.gen.values) == ["ext_grid:0", "gen:0"]
    assert list(ds.branch.values) == ["line:0", "line:1", "line:2"]
    for key in ("status", "objective", "solver", "build_s", "solve_s"):
        assert key in ds.attrs
    assert ds.attrs["status"] == "optimal" and ds.attrs["solver"] == "CLARABEL"
    np.testing.assert_allclose(ds.lmp, ds.lmp_energy + ds.lmp_congestion, atol=1e-6)


def test_netcdf_round_trip(day, tmp_path):
    _, ds = day
    path = tmp_path / "r.nc"
    nodalopt.to_netcdf(ds, str(path))
    back = xr.open_dataset(path).load()
    xr.testing.assert_allclose(back[["lmp", "p_gen", "flow", "soc_mwh"]], ds[["lmp", "p_gen", "flow", "soc_mwh"]])
    assert back.lmp.attrs["units"] == "1/(MW h)" and back.lmp.attrs["currency"] == "USD"  # CF units (issue 19)
    assert back.attrs["status"] == "optimal"
    assert back.lmp_unique.dtype == bool


def test_storage_arbitrage_and_energy_balance(day):
    net, ds = day
    e = ds.soc_mwh.values[:, 0]
    p = ds.p_storage.values[:, 0]
    assert e.min() >= -1e-6 and e.max() <= 100 + 1e-6
    assert e[-1] == pytest.approx(50, abs=1e-5)  # back to the initial state
    lmp2 = ds.lmp.sel(bus=2).values
    # charges in cheap hours, discharges in dear hours
    assert lmp2[p < -1].mean() < lmp2[p > 1].mean()
    # energy bookkeeping with efficiencies
    charge, discharge = np.maximum(-p, 0), np.maximum(p, 0)
    e_rec = 50 + np.cumsum(0.95 * charge - discharge / 0.95)
    np.testing.assert_allclose(e, e_rec, atol=1e-3)


def test_ramp_limits_hold(day):
    _, ds = day
    dp = np.diff(ds.p_gen.sel(gen="gen:0").values)
    assert np.all(np.abs(dp) <= 30 + 1e-5)


def test_demo_profiles_are_applied(day):
    net, ds = day
    shape = demo_profiles()["load"].to_numpy()
    np.testing.assert_allclose(ds.demand.sel(bus=2).values, 300 * shape, atol=1e-9)
    assert ds.sizes["time"] == 24


def test_profile_forms_agree():
    net = three_bus(limit_13=1e4)
    scale = np.array([0.5, 0.8, 1.0])
    frame = pd.DataFrame({0: 300 * scale}, index=pd.date_range("2031-06-01", periods=3, freq="h"))
    da = xr.DataArray(frame.to_numpy(), dims=("time", "load"), coords={"load": [0]})
    a = nodalopt.solve(net, profiles={("load", "p_mw"): frame})
    b = nodalopt.solve(net, profiles={("load", "p_mw"): da})
    c = nodalopt.solve(net, profiles={("load", "p_mw"): scale})
    for other in (b, c):
        np.testing.assert_allclose(other.p_gen.values, a.p_gen.values, atol=1e-5)
    assert pd.Timestamp(a.time.values[0]) == pd.Timestamp("2031-06-01")


def test_renewable_availability_profile():
    net = three_bus(limit_13=1e4)
    pp.create_sgen(net, 2, p_mw=100.0, type="PV")
    avail = pd.DataFrame({0: [0.0, 50.0, 100.0]})
    ds = nodalopt.solve(net, profiles={("sgen", "max_p_mw"): avail})
    np.testing.assert_allclose(ds.p_gen.sel(gen="sgen:0").values, [0, 50, 100], atol=1e-4)


def test_resolve_reuses_the_compiled_problem():
    net = storage_case()
    model = nodalopt.DCOPF(net, hours=24)
    first = model.solve()
    prob = model._built.problem
    compiled = prob._cache.param_prog  # cvxpy's compiled (DPP) program
    loads = pd.DataFrame({0: np.linspace(250, 320, 24)})
    second = model.solve({("load", "p_mw"): loads})
    assert model._built.problem is prob  # same cvxpy problem, new parameter values
    assert compiled is not None and prob._cache.param_prog is compiled  # not canonicalized again
    assert second.attrs["resolve"] == 1
    fresh = nodalopt.solve(storage_case(), profiles={("load", "p_mw"): loads})
    # 1e-3 $/MWh, the price accuracy of an interior-point solve at the default tolerances: the
    # hour-0 price (storage at its initial state) is 20 $/MWh at tolerance 1e-12, and both the
    # re-solve and the fresh solve land 4e-4 to 6e-4 below it, on different interior paths
    np.testing.assert_allclose(second.lmp.values, fresh.lmp.values, atol=1e-3)
    np.testing.assert_allclose(second.attrs["objective"], fresh.attrs["objective"], rtol=1e-9)
    assert not np.allclose(first.lmp.values, second.lmp.values)


def test_demo_csv_in_data_matches_package_copy():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    shipped = repo / "data" / "profiles" / "demo_24h.csv"
    if not shipped.exists():
        pytest.skip("not running from a checkout")
    packaged = pd.read_csv(shipped, comment="#").set_index("hour")
    pd.testing.assert_frame_equal(packaged, demo_profiles())


def test_uncoupled_periods_solved_separately_match_the_joint_solve():
    net = nodalopt.load_case("case118_200mva")
    sep = nodalopt.solve(net, hours=6)
    assert sep.attrs["periods_solved_separately"] == 1
    net.gen["ramp_up_mw_per_h"] = 1e6  # a ramp limit that never binds couples the periods formally
    joint = nodalopt.solve(net, hours=6)
    assert joint.attrs["periods_solved_separately"] == 0
    assert sep.attrs["objective"] == pytest.approx(joint.attrs["objective"], rel=1e-8)
    u = sep.lmp_unique.values & joint.lmp_unique.values
    np.testing.assert_allclose(sep.lmp.values[u], joint.lmp.values[u], atol=1e-5)


def test_resolve_screens_slack_limits_and_stays_exact():
    """A coupled re-solve leaves out the ramp and flow limits that were slack in the last solution (Clarabel's
    presolve drops them), checks its solution against all of them and puts violated ones back: the prices are
    those of a fresh full solve, also when the new profile makes other limits bind (a second pass)."""
    net = storage_case()
    net.line.loc[0, "max_i_ka"] = 0.25  # a rated line that binds in some hours
    model = nodalopt.DCOPF(net, hours=24)
    model.solve()
    zigzag = pd.DataFrame({0: 220.0 + 120.0 * (np.arange(24) % 2)})  # ramps bind where they were slack
    second = model.solve({("load", "p_mw"): zigzag})
    stats = model.screen_stats
    assert second.attrs["screened_limits"] > 0 and stats["violated"] > 0 and stats["full"] == 0
    fresh_model = nodalopt.DCOPF(net, hours=24, screening=False)
    fresh = fresh_model.solve({("load", "p_mw"): zigzag})
    assert "screened_limits" not in fresh.attrs
    # duals of this storage + ramp day are sensitive: two full solves at Clarabel tolerances 1e-9 and 1e-11
    # differ by 3.1e-4 $/MWh (the screened re-solve is 1.9e-4 from the first, 1.8e-4 from the second)
    np.testing.assert_allclose(second.lmp.values, fresh.lmp.values, atol=1e-3)
    np.testing.assert_allclose(second.branch_mu.values, fresh.branch_mu.values, atol=1e-3)
    # the dispatch is not unique at the 1e-2 MW level (storage): the two full solves differ by 7.8e-3 MW
    np.testing.assert_allclose(second.p_gen.values, fresh.p_gen.values, atol=2e-2)
    assert abs(second.attrs["objective"] - fresh.attrs["objective"]) <= 1e-7 * abs(fresh.attrs["objective"])
    ramp = np.abs(np.diff(second.p_gen.sel(gen=[g for g in second.gen.values if g.startswith("gen:")]).values, axis=0))
    assert ramp.max() <= 30.0 + 1e-6 and np.isclose(ramp.max(), 30.0, atol=1e-4)  # binding, not violated
