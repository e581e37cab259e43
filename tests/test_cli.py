"""The command line: summary, netCDF output and exit codes."""

from __future__ import annotations

import xarray as xr

from nodalopt.cli import EXIT_INFEASIBLE, EXIT_INPUT, EXIT_OK, main


def test_solve_prints_summary_and_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "case9.nc"
    assert main(["solve", "case9", "--hours", "3", "-o", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    for word in ("status       optimal", "objective", "LMP          min", "binding", "build"):
        assert word in text
    ds = xr.open_dataset(out)
    assert ds.sizes["time"] == 3 and ds.lmp.attrs["units_text"] == "USD/MWh"  # CF units in the file (issue 19)


def test_bad_case_is_an_input_error(capsys):
    assert main(["solve", "no_such_case"]) == EXIT_INPUT
    assert "unknown case" in capsys.readouterr().err


def test_infeasible_exit_code(tmp_path, capsys):
    import pandapower as pp
    from helpers import three_bus

    net = three_bus(limit_13=1e4)
    net.load.at[0, "p_mw"] = 5000.0
    path = tmp_path / "big.json"
    pp.to_json(net, str(path))
    assert main(["solve", str(path)]) == EXIT_INFEASIBLE
    assert "infeasible" in capsys.readouterr().err


def test_bench_subcommand_reaches_the_runner(capsys):
    assert main(["bench", "--list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "case9241pegase" in out
    from nodalopt.network import pglib_dir

    if pglib_dir() is not None:  # PGLib cases are listed only when ../shared/pglib is there
        assert "pglib" in out
