"""Meeting pandapower and PyPSA users where they are (issue 19): the typed front door,
logging and progress, CF-conformant netCDF, PyPSA networks in and results written back."""

from __future__ import annotations

import inspect

import pytest
from helpers import pypsa_or_skip, three_bus

import nodalopt
from nodalopt.errors import InputError


# ------------------------------------------------------------------ front door
def test_solve_signature_names_every_option():
    params = inspect.signature(nodalopt.solve).parameters
    for name in ("hours", "profiles", "period_hours", "voll", "solver", "solver_options", "dc_model", "start",
                 "demo_profiles", "carbon_price", "co2_cap", "emission_factors", "screening", "method",
                 "losses", "settings", "executor", "workers", "scheduler", "resume", "warm_start"):
        assert name in params, name
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].annotation is not inspect.Parameter.empty
        assert name in (nodalopt.solve.__doc__ or ""), f"{name} is not documented"


def test_misspelled_keyword_suggests_the_closest_name():
    with pytest.raises(InputError, match=r"'hour'.*did you mean 'hours'"):
        nodalopt.solve(three_bus(), hour=24)
    with pytest.raises(InputError, match=r"'carbon_prize'.*did you mean 'carbon_price'"):
        nodalopt.solve(three_bus(), carbon_prize=50.0)


def test_feeder_options_on_a_plain_network_are_refused():
    with pytest.raises(InputError, match=r"\['losses'\] apply to a TDNetwork"):
        nodalopt.solve(three_bus(), losses=False)
    with pytest.raises(InputError, match=r"method.*TDNetwork"):
        nodalopt.solve(three_bus(), method="admm")


def test_named_options_reach_the_model():
    ds = nodalopt.solve(three_bus(), hours=2, period_hours=0.5, voll=1000.0, start="2031-05-01")
    assert ds.sizes["time"] == 2 and ds.attrs["period_hours"] == 0.5
    assert str(ds.time.values[0])[:10] == "2031-05-01"


# ------------------------------------------------------------------ CF netCDF
def test_netcdf_follows_cf_conventions(tmp_path):
    """Every unit parses with udunits (cf_units) and cf_xarray's pint registry, money has a currency,
    every variable and coordinate has a long_name, and cf_xarray finds the time axis."""
    cf_units = pytest.importorskip("cf_units")
    cfx = pytest.importorskip("cf_xarray.units")
    import xarray as xr

    ds = nodalopt.solve("case9", hours=2, carbon_price=30.0, emission_factors="synthetic")
    path = tmp_path / "r.nc"
    nodalopt.to_netcdf(ds, str(path))
    with xr.open_dataset(path) as f:
        assert f.attrs["Conventions"].startswith("CF-1.")
        assert f.cf.axes["T"] == ["time"] and f.cf.standard_names["time"] == ["time"]
        seen = 0
        for name in f.variables:
            attrs = f[name].attrs
            assert attrs.get("long_name"), f"{name} has no long_name"
            unit = attrs.get("units")
            if unit is None:
                continue
            seen += 1
            cf_units.Unit(unit)  # raises on anything udunits cannot parse ('$/MWh', 'MWh', 'tCO2/MWh')
            cfx.units.parse_units(unit)
        assert seen >= 15
        assert f.lmp.attrs["currency"] == "USD" and f.lmp.attrs["units_text"] == "USD/MWh"
        # the physical part of a price is per energy: USD/MWh -> 1/(MW h) converts to 1/(kW h) by 1e-3
        assert cf_units.Unit(f.lmp.attrs["units"]).convert(1.0, cf_units.Unit("1/(kW h)")) == pytest.approx(1e-3)
        assert cf_units.Unit(f.lme.attrs["units"]) == cf_units.Unit("kg/(kW h)")
    assert ds.lmp.attrs["units"] == "$/MWh"  # the in-memory Dataset is not modified


# ------------------------------------------------------------ logging, progress, CLI
def test_version_flag(capsys):
    from nodalopt.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nodalopt {nodalopt.__version__}"


@pytest.mark.parametrize("where", ["checkout", "elsewhere"])
def test_bench_runs_from_an_installed_script(where, tmp_path):
    """An installed ``nodalopt`` script has no working directory on sys.path; ``python -P`` reproduces
    that (the old code failed with 'the benchmark runner lives in ...' even inside the checkout)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    code = "import sys; from nodalopt.cli import main; sys.exit(main(['bench', '--list']))"
    r = subprocess.run([sys.executable, "-P", "-c", code], cwd=root if where == "checkout" else tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "case9241pegase" in r.stdout


def test_verbose_logs_steps_and_quiet_silences_warnings(capsys):
    from nodalopt.cli import main

    assert main(["solve", "case9", "--hours", "3", "-v"]) == 0
    err = capsys.readouterr().err
    assert "compiled case9" in err and "solved 3 pass(es)" in err
    assert main(["solve", "case9"]) == 0
    assert "compiled" not in capsys.readouterr().err  # default: warnings and errors only
    assert main(["-vv", "solve", "case9"]) == 0
    assert "DEBUG nodalopt.dcopf.model: CLARABEL" in capsys.readouterr().err


def test_quiet_cli_drops_warnings(tmp_path, capsys):
    import pandapower as pp

    from nodalopt.cli import main

    net = three_bus()
    net.line.at[0, "x_ohm_per_km"] = -0.1  # a warning (see test_bad_input)
    path = tmp_path / "neg.json"
    pp.to_json(net, str(path))
    assert main(["solve", str(path)]) == 0
    assert "negative reactance" in capsys.readouterr().err
    assert main(["solve", str(path), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_no_print_calls_in_the_package():
    """Only the command line's result output is printed; everything else goes through logging."""
    import ast
    from pathlib import Path

    pkg = Path(nodalopt.__file__).parent
    found = []
    for path in pkg.rglob("*.py"):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        # a command's result output (the `_cmd_*` handlers of the subcommands) and a module's `__main__` usage line
        allowed = {id(n) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) and fn.name.startswith("_cmd_")
                   for n in ast.walk(fn)}
        allowed |= {id(n) for blk in tree.body if isinstance(blk, ast.If) and "__main__" in ast.unparse(blk.test)
                    for n in ast.walk(blk)}
        found += [f"{path.relative_to(pkg)}:{n.lineno}" for n in calls if id(n) not in allowed]
    assert not found, found


def test_per_period_progress_bar(monkeypatch, capsys):
    from nodalopt import log

    monkeypatch.setattr(log, "PROGRESS_DELAY_S", 0.0)
    log.set_progress(True)
    try:
        nodalopt.solve("case9", hours=5)
    finally:
        log.set_progress(None)
    err = capsys.readouterr().err
    assert "periods" in err and "/5 [" in err  # the bar counts the 5 periods


def test_admm_expected_iterations_from_residual_decay():
    from nodalopt.admm.coordinator import expected_iterations

    # distance to the stopping test 1e3, falling by 0.1 decade per iteration: converged at iteration 30
    ratio = [3.0 - 0.1 * k for k in range(1, 11)]
    assert expected_iterations(10, ratio, 3000) in (30, 31)  # (31: rounding of the fitted slope)
    assert expected_iterations(10, ratio, 25) == 25  # capped at max_iter
    assert expected_iterations(3, ratio[:3], 3000) is None  # too few points
    assert expected_iterations(10, [1.0] * 10, 3000) is None  # stalled: unknown, not max_iter
    # a loss update throws the residuals back up: the estimate restarts from the jump
    jumped = ratio + [2.75 - 0.25 * k for k in range(6)]  # 2.0 -> 2.75, then down to 1.5 at iteration 16
    assert expected_iterations(16, jumped, 3000) in (22, 23)  # 1.5 / 0.25 = 6 more


def test_admm_progress_total_tracks_the_run():
    from test_admm import HOURS, _td

    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    m = ADMM(_td(), ADMMSettings(max_iter=3000), hours=HOURS)
    n = m.solve().attrs["admm_iterations"]
    totals = m.progress.totals
    assert m.progress.bar.total == n == len(totals)
    # half-way through, the estimate is within 30 % of the iterations the run took (not max_iter = 3000)
    half = [t for t in totals[n // 2 - 1:n // 2 + 2] if t is not None]
    assert half and all(abs(t - n) <= 0.3 * n for t in half), (n, totals)


# ------------------------------------------------------- PyPSA in, results back out
def _pypsa():
    import warnings

    pypsa = pypsa_or_skip()
    warnings.filterwarnings("ignore", message=".*absent slots")
    return pypsa


@pytest.mark.peers
def test_pypsa_network_solves_directly_like_its_csv_folder(tmp_path):
    """The CSV cross-check network (tests/test_csv_folder.py) solved from memory and from its exported
    folder: the same compiled arrays, so identical prices and dispatch."""
    import numpy as np
    from test_csv_folder import _pypsa_network

    from nodalopt.io import solve_csv_folder

    pypsa = _pypsa()
    n = _pypsa_network(pypsa)
    n.export_to_csv_folder(str(tmp_path / "net"))
    direct = nodalopt.solve(n)
    folder = solve_csv_folder(tmp_path / "net")
    for var in ("lmp", "p_gen", "flow", "soc_mwh"):
        np.testing.assert_array_equal(direct[var].values, folder[var].values)
    assert direct.attrs["objective"] == folder.attrs["objective"]
    assert list(direct.bus_name.values) == list(n.buses.index)
    six = nodalopt.solve(n, hours=6)
    np.testing.assert_array_equal(six.snapshot.values, folder.snapshot.values[:6])


@pytest.mark.peers
def test_pypsa_network_errors_name_the_table_row_and_column():
    from test_csv_folder import _pypsa_network

    pypsa = _pypsa()
    n = _pypsa_network(pypsa)
    n.generators.loc["gas", "p_min_pu"] = 1.5  # above p_max_pu; 'gas' is row 2 -> line 3
    with pytest.raises(InputError, match=r"<pypsa.Network>/generators.csv, line 3, column 'p_min_pu'"):
        nodalopt.solve(n)
    n = _pypsa_network(pypsa)
    n.add("Store", "h2", bus="north", e_nom=50)  # links are read since issue 19.2; stores are not
    with pytest.raises(InputError, match=r"stores.csv.*stores are not modelled"):
        nodalopt.solve(n)


@pytest.mark.peers
@pytest.mark.parametrize("reverse", [False, True])
def test_to_pypsa_fills_what_optimize_fills(reverse):
    """nodalopt's result written into the network against PyPSA's own optimize() (HiGHS) on the same
    network; ``reverse`` turns the binding line around so that its lower limit binds (mu_lower)."""
    import numpy as np
    from test_csv_folder import _pypsa_network

    pypsa = _pypsa()

    def net():
        n = _pypsa_network(pypsa)
        if reverse:
            n.lines.loc["n-s", ["bus0", "bus1"]] = ["south", "north"]
        return n

    ref = net()
    ref.optimize(solver_name="highs", include_objective_constant=False, assign_all_duals=True)
    n = net()
    assert nodalopt.to_pypsa(nodalopt.solve(n), n) is n
    tol = {"marginal_price": 1e-3, "mu_upper": 2e-3, "mu_lower": 2e-3}
    checked = 0
    for comp, attrs in (("buses", ["marginal_price"]), ("generators", ["p"]),
                        ("lines", ["p0", "p1", "mu_upper", "mu_lower"]),
                        ("transformers", ["p0", "p1", "mu_upper", "mu_lower"]),
                        ("storage_units", ["p", "p_dispatch", "p_store", "state_of_charge"])):
        for a in attrs:
            theirs = getattr(ref, f"{comp}_t")[a]
            ours = getattr(n, f"{comp}_t")[a]
            assert list(ours.index) == list(theirs.index) and set(theirs.columns) <= set(ours.columns)
            err = np.abs(ours[theirs.columns].to_numpy() - theirs.to_numpy()).max()
            assert err < tol.get(a, 1e-2), (comp, a, err)
            checked += 1
    assert checked == 14
    mu = n.lines_t.mu_lower if reverse else -n.lines_t.mu_upper
    assert float(mu.to_numpy().max()) > 10.0  # the line limit binds, on the side that was turned


@pytest.mark.peers
def test_to_pypsa_refuses_a_result_of_another_network():
    from test_csv_folder import _pypsa_network

    pypsa = _pypsa()
    ds = nodalopt.solve(_pypsa_network(pypsa))
    other = _pypsa_network(pypsa)
    other.remove("Bus", "east")
    with pytest.raises(InputError, match=r"buses \['east'\]"):
        nodalopt.to_pypsa(ds, other)
    with pytest.raises(InputError, match="bus_name"):
        nodalopt.to_pypsa(nodalopt.solve("case9"), other)


@pytest.mark.parametrize("case", ["case9", "case30", "case118"])
def test_write_back_gives_rundcopp_result_tables(case):
    """Every column pandapower's rundcopp writes to res_bus, res_gen, res_ext_grid, res_sgen, res_line and
    res_trafo, from nodalopt's result (prices unique on these cases): same NaN pattern, values within 1e-3
    (measured: 2.8e-8, 5.2e-8, 1.9e-6)."""
    import copy

    import numpy as np
    import pandapower as pp
    import pandapower.networks as pn

    net = getattr(pn, case)()
    ref = copy.deepcopy(net)
    pp.rundcopp(ref)
    ds = nodalopt.solve(net)
    assert bool(ds.lmp_unique.all())
    assert nodalopt.write_back(ds, net) is net
    checked = 0
    for table in ("res_bus", "res_gen", "res_ext_grid", "res_sgen", "res_line", "res_trafo"):
        assert list(net[table].index) == list(ref[table].index), table
        for col in ref[table].columns:
            ours, theirs = net[table][col].to_numpy(float), ref[table][col].to_numpy(float)
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{table}.{col}")
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3, err_msg=f"{table}.{col}")
            checked += 1
    assert checked >= 30


def test_write_back_needs_a_period_for_multi_period_results():
    import pandapower.networks as pn

    net = pn.case9()
    ds = nodalopt.solve(net, hours=3)
    with pytest.raises(InputError, match=r"3 periods.*period=0..2"):
        nodalopt.write_back(ds, net)
    nodalopt.write_back(ds, net, period=2)
    assert float(net.res_bus.lam_p.iloc[0]) == pytest.approx(float(ds.lmp.isel(time=2).values[0]))
