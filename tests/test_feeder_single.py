"""One feeder under a given substation price, single-bus networks, and the branch-rating rule.

References nobody here wrote: the published case33bw DLMP table (substation at 100 $/MWh,
no binding limits), pandapower ``rundcopp`` and ``runpp``, PyPSA + HiGHS.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import pytest
import xarray as xr

import nodalopt
from nodalopt.cli import EXIT_INPUT, EXIT_OK, main
from nodalopt.errors import InputError

#: published case33bw DLMPs ($/MWh) at a 100 $/MWh substation price, no binding limits
#: (1-based bus numbers of the Baran & Wu case; pandapower bus = number - 1)
PUBLISHED = {2: 100.48, 6: 107.98, 18: 114.72, 22: 101.25, 25: 104.96, 33: 112.66}


@functools.cache
def _case33bw() -> pp.pandapowerNet:
    return pn.case33bw()


def case33bw() -> pp.pandapowerNet:
    return copy.deepcopy(_case33bw())


def published_error(ds: xr.Dataset, feeder: str) -> float:
    got = np.array([float(ds.dlmp.sel(dnode=f"{feeder}:{b - 1}").values[0]) for b in PUBLISHED])
    return float(np.abs(got - np.array(list(PUBLISHED.values()))).max())


def one_bus_net(c1: float = 30.0, c2: float = 0.0, load_mw: float | None = 10.0) -> pp.pandapowerNet:
    net = pp.create_empty_network(name="one_bus")
    b = pp.create_bus(net, 110.0)
    pp.create_ext_grid(net, b, min_p_mw=-1000.0, max_p_mw=1000.0)
    if load_mw is not None:
        pp.create_load(net, b, p_mw=load_mw)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=c1, cp2_eur_per_mw2=c2)
    return net


# ------------------------------------------------------------ networks of one-bus islands
def test_single_bus_net_matches_rundcopp() -> None:
    """A 1-bus net (no angle left to solve for) used to end in 'no value for a solved variable'."""
    net = one_bus_net(c1=30.0, c2=0.5)
    ref = copy.deepcopy(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcopp(ref)
    ds = nodalopt.solve(net)
    assert float(ds.lmp.values[0, 0]) == pytest.approx(float(ref.res_bus.lam_p.iloc[0]), abs=1e-6)  # 40
    assert ds.attrs["objective"] == pytest.approx(float(ref.res_cost), rel=1e-9)  # 350
    assert float(ds.p_gen.values[0, 0]) == pytest.approx(10.0, abs=1e-6)


@pytest.mark.peers
def test_single_bus_pypsa_network(tmp_path: Path) -> None:
    pypsa = pytest.importorskip("pypsa")
    pytest.importorskip("highspy")
    from nodalopt.io import solve_csv_folder

    logging.getLogger("pypsa").setLevel(logging.ERROR)
    logging.getLogger("linopy").setLevel(logging.ERROR)
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2030-01-01", periods=3, freq="h"))
    n.add("Bus", "only", v_nom=110)
    n.add("Generator", "a", bus="only", p_nom=50, marginal_cost=20, marginal_cost_quadratic=0.1)
    n.add("Generator", "b", bus="only", p_nom=100, marginal_cost=35)
    n.add("Load", "l", bus="only", p_set=[30.0, 60.0, 90.0])
    n.export_to_csv_folder(str(tmp_path / "one"))
    n.optimize(solver_name="highs", include_objective_constant=False)
    ds = solve_csv_folder(tmp_path / "one")
    np.testing.assert_allclose(ds.lmp.values[:, 0], n.buses_t.marginal_price["only"].to_numpy(), atol=1e-4)
    assert ds.attrs["objective"] == pytest.approx(n.objective, rel=1e-6)


def test_published_dlmps_one_bus_transmission() -> None:
    """(a) The feeder under a 1-bus transmission net: an ext_grid at 100 $/MWh and nothing else."""
    t = one_bus_net(c1=100.0, load_mw=None)
    td = nodalopt.TDNetwork(t)
    td.add_feeder("f", case33bw(), at_bus=0, replace=False)
    ds = nodalopt.solve(td, hours=1)
    assert ds.attrs["status"] == "optimal"
    assert published_error(ds, "f") <= 0.01


# ------------------------------------------------------------ solve_feeder
def test_solve_feeder_published_dlmps() -> None:
    """(b) ``solve_feeder(price=100)``; the transmission price is the given one."""
    ds = nodalopt.solve_feeder(case33bw(), price=100.0)
    assert published_error(ds, "feeder") <= 0.01
    assert float(ds.lmp.values[0, 0]) == pytest.approx(100.0, abs=1e-6)
    assert ds.sizes["dnode"] == 33 and ds.sizes["time"] == 1


def test_solve_feeder_price_series_and_ac_loss_factors() -> None:
    """A price series sets the periods and their times; with fixed loads and nothing binding every
    DLMP is the price times the node's marginal loss factor, which ``runpp`` gives independently."""
    price = pd.Series([100.0, 50.0, -20.0, 200.0], index=pd.date_range("2031-05-01", periods=4, freq="30min"))
    net = case33bw()
    ds = nodalopt.solve_feeder(net, price=price)
    assert ds.sizes["time"] == 4 and ds.attrs["period_hours"] == 0.5
    np.testing.assert_array_equal(pd.DatetimeIndex(ds.time.values), price.index)
    np.testing.assert_allclose(ds.lmp.values[:, 0], price.to_numpy(), atol=1e-6)
    factor = ds.dlmp.values / price.to_numpy()[:, None]
    assert np.abs(factor - factor[0]).max() < 1e-6
    # marginal loss factor at bus 17 (published bus 18) from two AC power flows
    eps, imports = 1e-3, []
    for s in (1.0, -1.0):
        n2 = copy.deepcopy(net)
        pp.create_load(n2, 17, p_mw=s * eps, q_mvar=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(n2, tolerance_mva=1e-11, numba=False)
        imports.append(float(n2.res_ext_grid.p_mw.sum()))
    mlf = (imports[0] - imports[1]) / (2 * eps)
    assert float(factor[0, list(ds.dnode.values).index("feeder:17")]) == pytest.approx(mlf, abs=1e-4)


def test_solve_feeder_scalar_price_with_hours() -> None:
    ds = nodalopt.solve_feeder(case33bw(), price=80.0, hours=3, losses=False)
    assert ds.sizes["time"] == 3
    np.testing.assert_allclose(ds.lmp.values, 80.0, atol=1e-6)
    # lossless LinDistFlow, no limits binding: every DLMP is the substation price
    assert np.abs(ds.dlmp.values - 80.0).max() < 1e-5


@pytest.mark.parametrize("price, hours, match", [
    ([100.0, np.nan], None, "NaN or inf at period"),
    ([100.0, 90.0], 3, "2 values for hours=3"),
    (np.ones((2, 2)), None, "1-D"),
    ([], None, "empty"),
    ("cheap", None, "number"),
])
def test_solve_feeder_bad_price(price, hours, match) -> None:
    with pytest.raises(InputError, match=match):
        nodalopt.solve_feeder(case33bw(), price=price, hours=hours)


def test_solve_feeder_refuses_carbon_options() -> None:
    with pytest.raises(InputError, match="carbon_price"):
        nodalopt.solve_feeder(case33bw(), price=100.0, carbon_price=50.0)


def test_solve_feeder_uneven_time_index() -> None:
    idx = pd.DatetimeIndex(["2030-01-01 00:00", "2030-01-01 01:00", "2030-01-01 03:00"])
    with pytest.raises(InputError, match="evenly spaced"):
        nodalopt.solve_feeder(case33bw(), price=pd.Series([1.0, 2.0, 3.0], index=idx))


# ------------------------------------------------------------ command line
def test_cli_feeder_published_dlmps(tmp_path: Path, capsys) -> None:
    """(c) ``nodalopt feeder case33bw --price 100``."""
    out, table = tmp_path / "f.nc", tmp_path / "dlmp.csv"
    assert main(["feeder", "case33bw", "--price", "100", "-o", str(out), "--dlmp-csv", str(table)]) == EXIT_OK
    assert "DLMP         min" in capsys.readouterr().out
    with xr.open_dataset(out) as ds:
        assert published_error(ds.load(), "feeder") <= 0.01
    df = pd.read_csv(table, index_col=0)
    got = np.array([df[f"feeder:{b - 1}"].iloc[0] for b in PUBLISHED])
    assert np.abs(got - np.array(list(PUBLISHED.values()))).max() <= 0.01


def test_cli_feeder_price_csv(tmp_path: Path, capsys) -> None:
    p = tmp_path / "price.csv"
    p.write_text("time,price\n2030-01-01T00:00,100\n2030-01-01T00:15,40\n", encoding="utf-8")
    table = tmp_path / "dlmp.csv"
    assert main(["feeder", "case33bw", "--price", str(p), "--lossless", "--dlmp-csv", str(table)]) == EXIT_OK
    df = pd.read_csv(table, index_col=0, parse_dates=True)
    assert list(df.index) == list(pd.date_range("2030-01-01", periods=2, freq="15min"))
    np.testing.assert_allclose(df["feeder:17"].to_numpy(), [100.0, 40.0], atol=1e-4)
    p.write_text("time,price\n2030-01-01T00:00,100\n2030-01-01T00:15,n/a\n", encoding="utf-8")
    assert main(["feeder", "case33bw", "--price", str(p)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "line 3" in err and "'price'" in err and "price.csv" in err


def test_cli_feeder_unknown_feeder(capsys) -> None:
    assert main(["feeder", "no_such_feeder", "--price", "100"]) == EXIT_INPUT
    assert "case33bw" in capsys.readouterr().err


# ------------------------------------------------------------ NaN max_loading_percent: one rule
def _congested_feeder() -> pp.pandapowerNet:
    """case33bw with a 1.1 MVA rating on line 24 (the 0.92 MW + 0.95 MVAr lateral behind bus 5) and a
    DG behind it at 30 $/MWh + 20 $/MW^2h: below the 100 $/MWh substation price, so it runs as long as
    nothing stops it, and pushes ~1.6 MW back through the 1.1 MVA line."""
    net = case33bw()
    g = pp.create_sgen(net, 29, p_mw=0.0, q_mvar=0.0, controllable=True, min_p_mw=0.0, max_p_mw=4.0)
    pp.create_poly_cost(net, g, "sgen", cp1_eur_per_mw=30.0, cp2_eur_per_mw2=20.0)
    net.line.at[24, "max_i_ka"] = 1.1 / (np.sqrt(3) * float(net.bus.vn_kv.at[5]))
    return net


@pytest.mark.parametrize("how", ["nan", "absent"])
def test_feeder_branch_without_max_loading_percent_is_unrated(how) -> None:
    """pandapower's OPF leaves a branch with NaN (or no) max_loading_percent unconstrained (its RATE_A is
    NaN or 0); a feeder branch used to be limited at 100 % of max_i_ka instead."""
    rated = _congested_feeder()
    ds = nodalopt.solve_feeder(rated, price=100.0, losses=False)
    # rated at 100 %: line 24 binds and the DG sets the price behind it, c1 + 2 c2 p
    assert abs(float(ds.dlmp_congestion.sel(dnode="feeder:25").values[0])) > 1.0
    p_dg = float(ds.p_der.values[0, 0])
    assert float(ds.dlmp.sel(dnode="feeder:29").values[0]) == pytest.approx(30.0 + 40.0 * p_dg, abs=1e-4)
    net = _congested_feeder()
    if how == "nan":
        net.line["max_loading_percent"] = np.nan
    else:
        net.line = net.line.drop(columns="max_loading_percent")
    ds = nodalopt.solve_feeder(net, price=100.0, losses=False)
    assert np.abs(ds.dlmp_congestion.values).max() < 1e-6
    assert np.abs(ds.dlmp.values - 100.0).max() < 1e-5
    p_dg = float(ds.p_der.values[0, 0])
    assert p_dg == pytest.approx((100.0 - 30.0) / (2 * 20.0), abs=1e-4)  # 1.75 MW, beyond the 1.1 MVA line


def test_transmission_branch_with_nan_max_loading_percent_is_unrated() -> None:
    """The same rule on the transmission side, checked against ``rundcopp``: case9 with line 2 at 30 % of
    its rating binds; with NaN max_loading_percent it does not, in both tools."""
    net = pn.case9()
    net.line.at[2, "max_i_ka"] *= 0.3
    for value, congested in ((100.0, True), (np.nan, False)):
        net.line.at[2, "max_loading_percent"] = value
        ref = copy.deepcopy(net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.rundcopp(ref)
        ds = nodalopt.solve(net)
        np.testing.assert_allclose(ds.lmp.values[0], ref.res_bus.lam_p.to_numpy(), atol=1e-3)
        spread = float(np.ptp(ds.lmp.values))
        assert (spread > 1.0) == congested
