"""CSV network folders (PyPSA layout): PyPSA parity, schema errors with file/line/column, round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import pypsa_or_skip as _pypsa

from nodalopt.errors import InputError
from nodalopt.io import csv_folder as C
from nodalopt.io import read_csv_folder, solve_csv_folder, write_csv_results

pytestmark = pytest.mark.filterwarnings("ignore:.*absent slots")
EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "csv_example"


# ------------------------------------------------------------------ helpers
def _pypsa_network(pypsa, T: int = 24):
    """Five buses on two voltage levels, two transformers in a loop, ramping coal, wind profile,
    storage; quadratic costs everywhere so the prices are unique (no dual degeneracy)."""
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2030-06-01", periods=T, freq="h"))
    h = np.arange(T)
    for c, co2 in (("coal", 0.34), ("gas", 0.2), ("wind", 0.0), ("oil", 0.27), ("battery", 0.0)):
        n.add("Carrier", c, co2_emissions=co2)
    for b, v in (("north", 220), ("south", 220), ("east", 220), ("west", 220), ("city", 110)):
        n.add("Bus", b, v_nom=v)
    for name, a, b, x, s in (("n-s", "north", "south", 20, 150), ("n-e", "north", "east", 25, 200),
                             ("e-s", "east", "south", 30, 120), ("w-n", "west", "north", 15, 300),
                             ("w-s", "west", "south", 40, 80)):
        n.add("Line", name, bus0=a, bus1=b, x=x, r=x / 10, s_nom=s)
    n.add("Transformer", "tr", bus0="south", bus1="city", x=0.1, s_nom=250, tap_ratio=1.02)
    n.add("Transformer", "tr2", bus0="west", bus1="city", x=0.12, s_nom=100)
    n.add("Generator", "coal", bus="north", p_nom=300, marginal_cost=20, marginal_cost_quadratic=0.02,
          carrier="coal", efficiency=0.4, ramp_limit_up=0.04, ramp_limit_down=0.04)
    n.add("Generator", "gas", bus="west", p_nom=200, marginal_cost=40, marginal_cost_quadratic=0.05,
          carrier="gas", efficiency=0.55, p_min_pu=0.1)
    wind = 0.2 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * (h + 3) / 24))
    n.add("Generator", "wind", bus="east", p_nom=150, marginal_cost=0.5, marginal_cost_quadratic=0.004,
          p_max_pu=wind, carrier="wind")
    n.add("Generator", "peaker", bus="city", p_nom=100, marginal_cost=80, marginal_cost_quadratic=0.1,
          carrier="oil", efficiency=0.35)
    n.add("Load", "city", bus="city", p_set=80 + 220 * np.sin(np.pi * h / 24) ** 2)
    n.add("Load", "south", bus="south", p_set=120 + 60 * np.cos(2 * np.pi * h / 24))
    n.add("Load", "east", bus="east", p_set=60.0)
    n.add("StorageUnit", "bat", bus="south", p_nom=30, max_hours=4, efficiency_store=0.9,
          efficiency_dispatch=0.95, carrier="battery")
    return n


def _lmp_frame(ds) -> pd.DataFrame:
    return pd.DataFrame(ds.lmp.values, columns=np.asarray(ds.bus_name.values, dtype=str))


@pytest.fixture()
def case(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    shutil.copytree(EXAMPLE, d)
    (d / "README.md").unlink(missing_ok=True)
    return d


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, startswith: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(startswith):
            return i
    raise AssertionError(startswith)


def _raises(folder: Path, *parts: str) -> str:
    with pytest.raises(InputError) as ei:
        read_csv_folder(folder)
    msg = str(ei.value)
    for p in parts:
        assert p in msg, f"{p!r} not in: {msg}"
    return msg


# ------------------------------------------------------------ (a) PyPSA parity
@pytest.mark.peers
def test_pypsa_written_folder_matches_pypsa_lmps(tmp_path: Path) -> None:
    pypsa = _pypsa()
    n = _pypsa_network(pypsa)
    n.export_to_csv_folder(str(tmp_path / "net"))
    n.optimize(solver_name="highs", include_objective_constant=False)
    ref = n.buses_t.marginal_price
    ds = solve_csv_folder(tmp_path / "net")
    assert ds.sizes["time"] == 24
    ours = _lmp_frame(ds)[list(ref.columns)]
    assert np.abs(ours.to_numpy() - ref.to_numpy()).max() < 1e-3
    # congestion and time-coupling are exercised, and the prices are unique
    assert float(np.abs(ds.branch_mu).max()) > 1.0
    assert float(ref.max().max() - ref.min().max()) > 10.0
    if "lmp_unique" in ds:
        assert bool(ds.lmp_unique.all())
    assert ds.attrs["objective"] == pytest.approx(n.objective, rel=1e-6)
    np.testing.assert_array_equal(pd.DatetimeIndex(ds.time.values), ref.index)
    gp = ds.p_gen.to_pandas()  # generator names are the 'gen' index (issue 19.3; was "gen:NAME")
    assert np.abs(gp[n.generators_t.p.columns].to_numpy() - n.generators_t.p.to_numpy()).max() < 1e-2


def test_pypsa_semantics_compiled(tmp_path: Path) -> None:
    """Units: line x in ohm on bus v_nom, transformer x per unit on s_nom, ramp per snapshot,
    emissions per MWh electric, storage energy = p_nom * max_hours."""
    c = read_csv_folder(EXAMPLE)
    a = c.arrays
    names = list(map(str, a.br_names))
    i = names.index("line:north-centre")
    assert a.base_mva * a.br_b[i] == pytest.approx(220.0**2 / 18.0)
    j = names.index("transformer:south-city")
    assert a.base_mva * a.br_b[j] == pytest.approx(300.0 / 0.12)
    assert a.br_rate[i] == 250.0
    g = list(map(str, a.gen_names)).index("gen:coal_north")
    assert a.gen_ramp_up[g] == pytest.approx(0.08 * 400)
    assert a.gen_pmin[g] == pytest.approx(100.0)
    assert a.meta["gen_co2_t_per_mwh"][g] == pytest.approx(0.34 / 0.38)
    assert a.co2_factors[g] == pytest.approx(0.34 / 0.38)  # tCO2/MWh electric, for the carbon feature
    assert a.co2_factors[list(map(str, a.gen_names)).index("gen:wind_east")] == 0.0
    assert list(a.meta["gen_carrier"]) == ["coal", "gas", "wind", "solar", "oil"]
    assert a.st_e_max[0] == pytest.approx(120.0)
    assert a.st_eta_charge[0] == pytest.approx(0.92)
    assert c.n_snapshots == 24 and c.period_hours == 1.0
    assert set(c.profiles) == {("load", "p_mw"), ("gen", "max_p_mw")}
    assert c.profiles[("gen", "max_p_mw")]["wind_east"].iloc[0] == pytest.approx(0.6768 * 200)


# ---------------------------------------------------------- (b) malformed CSVs
def test_missing_required_column(case: Path) -> None:
    p = case / "lines.csv"
    _edit(p, "name,bus0,bus1,x,r,s_nom", "name,bus0,bus1,reactance,r,s_nom")
    _raises(case, "lines.csv", "line 1", "column 'x'", "missing")


def test_unknown_bus_reference(case: Path) -> None:
    p = case / "lines.csv"
    _edit(p, "east-south,east,south", "east-south,east,sud")
    _raises(case, "lines.csv", f"line {_line_of(p, 'east-south')}", "column 'bus1'", "'sud'")


def test_duplicate_ids(case: Path) -> None:
    p = case / "buses.csv"
    _edit(p, "port,220", "east,220")
    _raises(case, "buses.csv", f"line {_line_of(p, 'east,220') + 2}", "column 'name'", "duplicate")


def test_nan_value(case: Path) -> None:
    p = case / "generators.csv"
    _edit(p, "ccgt_west,west,gas,250,0,45,", "ccgt_west,west,gas,250,0,NaN,")
    _raises(case, "generators.csv", "line 3", "column 'marginal_cost'", "NaN")


def test_non_numeric_value(case: Path) -> None:
    p = case / "lines.csv"
    _edit(p, "north-west,north,west,22,", "north-west,north,west,22ohm,")
    _raises(case, "lines.csv", "line 3", "column 'x'", "'22ohm' is not a number")


def test_empty_required_value(case: Path) -> None:
    _edit(case / "generators.csv", "oil_city,city,oil,80,", "oil_city,city,oil,,")
    _raises(case, "generators.csv", "line 6", "column 'p_nom'", "empty")


def test_negative_rating(case: Path) -> None:
    _edit(case / "lines.csv", "west-port,west,port,24,2.4,160", "west-port,west,port,24,2.4,-160")
    _raises(case, "lines.csv", "line 8", "column 's_nom'", "negative")


def test_negative_generator_rating(case: Path) -> None:
    _edit(case / "generators.csv", "solar_port,port,solar,120,", "solar_port,port,solar,-120,")
    _raises(case, "generators.csv", "line 5", "column 'p_nom'", "negative")


def test_wrong_delimiter(case: Path) -> None:
    p = case / "buses.csv"
    p.write_text(p.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    _raises(case, "buses.csv", "line 1", "column 1", "';'")


def test_non_utf8_bytes(case: Path) -> None:
    p = case / "buses.csv"
    p.write_bytes(p.read_bytes().replace(b"port,220", "pört,220".encode("latin-1")))
    _raises(case, "buses.csv", "line 7", "column 'name'", "UTF-8")


def test_utf8_bom_accepted(case: Path) -> None:
    for name in ("buses.csv", "lines.csv", "snapshots.csv", "loads-p_set.csv"):
        p = case / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    c = read_csv_folder(case)
    assert list(c.bus_names)[:2] == ["north", "west"]
    assert c.n_snapshots == 24


def test_missing_snapshots_with_time_series(case: Path) -> None:
    (case / "snapshots.csv").unlink()
    _raises(case, "generators-p_max_pu.csv", "line 1", "column 1", "snapshots.csv is missing")


def test_time_series_problems(case: Path) -> None:
    p = case / "loads-p_set.csv"
    _edit(p, "snapshot,city,south,centre", "snapshot,city,south,middle")
    _raises(case, "loads-p_set.csv", "line 1", "column 'middle'", "unknown element")
    _edit(p, "snapshot,city,south,middle", "snapshot,city,south,centre")
    _edit(p, "2030-07-01 05:00:00,", "2030-07-02 05:00:00,")
    _raises(case, "loads-p_set.csv", "line 7", "column 'snapshot'", "snapshots.csv")
    _edit(p, "2030-07-02 05:00:00,", "2030-07-01 05:00:00,")
    p.write_text("\n".join(p.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    _raises(case, "loads-p_set.csv", "line 25", "column 'snapshot'", "23 rows for the 24 snapshots")


def test_ragged_row_and_size_limit(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _edit(case / "carriers.csv", "gas,0.2", "gas,0.2,extra")
    _raises(case, "carriers.csv", "line 3", "column 3", "3 fields for 2 columns")
    _edit(case / "carriers.csv", "gas,0.2,extra", "gas,0.2")
    monkeypatch.setattr(C, "MAX_FILE_BYTES", 200)
    _raises(case, "bytes, over the 200-byte limit")


def test_unsupported_inputs_refused(case: Path) -> None:
    # links are read since issue 19.2; stores are still refused
    (case / "stores.csv").write_text("name,bus,e_nom\nh2,north,100\n", encoding="utf-8")
    _raises(case, "stores.csv", "line 2", "not modelled")
    (case / "stores.csv").unlink()
    (case / "lines-s_max_pu.csv").write_text("snapshot,north-west\n", encoding="utf-8")
    _raises(case, "lines-s_max_pu.csv", "line 1", "column 'north-west'", "not supported")


def test_symlinked_csv_outside_folder_refused(case: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    shutil.move(case / "carriers.csv", outside)
    (case / "carriers.csv").symlink_to(outside)
    with pytest.raises(InputError, match="outside the case folder"):
        read_csv_folder(case)


# ------------------------------------------------------ (c) example + round trip
def test_example_solves_and_round_trips(tmp_path: Path) -> None:
    ds = solve_csv_folder(EXAMPLE)
    assert ds.attrs["status"] == "optimal"
    assert ds.sizes == {**ds.sizes, "time": 24, "bus": 7, "gen": 5, "branch": 9, "storage": 1}
    lmp = ds.lmp.values
    assert np.ptp(lmp, axis=1).max() > 50.0  # congestion separates the prices
    assert ds.attrs["binding_branches"]
    files = write_csv_results(ds, tmp_path / "out")
    names = {p.name for p in files}
    assert {"buses-marginal_price.csv", "generators-p.csv", "lines-p0.csv", "transformers-p0.csv",
            "storage_units-p.csv", "storage_units-state_of_charge.csv", "result_info.csv"} <= names
    back = pd.read_csv(tmp_path / "out" / "buses-marginal_price.csv", index_col="snapshot",
                       float_precision="round_trip")
    assert list(back.columns) == ["north", "west", "centre", "east", "south", "port", "city"]
    assert back.index[0] == "2030-07-01 00:00:00"
    np.testing.assert_array_equal(back.to_numpy(), lmp)
    gp = pd.read_csv(tmp_path / "out" / "generators-p.csv", index_col="snapshot", float_precision="round_trip")
    np.testing.assert_array_equal(gp.to_numpy(), ds.p_gen.values)
    tr = pd.read_csv(tmp_path / "out" / "transformers-p0.csv", index_col="snapshot", float_precision="round_trip")
    assert list(tr.columns) == ["south-city"]
    info = pd.read_csv(tmp_path / "out" / "result_info.csv", index_col="key")["value"]
    assert float(info["objective"]) == pytest.approx(ds.attrs["objective"])
    # netCDF round trip keeps the CSV names
    import xarray as xr

    from nodalopt import to_netcdf

    to_netcdf(ds, str(tmp_path / "ex.nc"))
    nc = xr.load_dataset(tmp_path / "ex.nc")
    assert list(nc.bus_name.values) == list(back.columns)
    # first hours only
    ds6 = solve_csv_folder(EXAMPLE, hours=6)
    assert ds6.sizes["time"] == 6


@pytest.mark.peers
def test_example_matches_pypsa(tmp_path: Path) -> None:
    pypsa = _pypsa()
    n = pypsa.Network(str(EXAMPLE))
    n.optimize(solver_name="highs", include_objective_constant=False)
    ref = n.buses_t.marginal_price
    ours = _lmp_frame(solve_csv_folder(EXAMPLE))[list(ref.columns)]
    assert np.abs(ours.to_numpy() - ref.to_numpy()).max() < 1e-3


def test_inactive_elements_dropped_with_their_time_series(case: Path) -> None:
    p = case / "generators.csv"
    lines = p.read_text(encoding="utf-8").splitlines()
    lines[0] += ",active"
    lines[1:] = [ln + (",False" if ln.startswith("wind_east") else ",True") for ln in lines[1:]]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = read_csv_folder(case)
    assert "gen:wind_east" not in set(map(str, c.arrays.gen_names))
    assert list(c.profiles[("gen", "max_p_mw")].columns) == ["solar_port"]
