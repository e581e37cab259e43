"""Batch solves: 20 cases, one broken, serial (CLI) and on a real local Dask cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nodalopt.batch import SUMMARY_COLUMNS, discover_cases, run_batch
from nodalopt.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "csv_example"

CASE5 = """function mpc = case5
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t230\t1\t1.1\t0.9;
\t2\t1\t{pd2}\t98.61\t0\t0\t1\t1\t0\t230\t1\t1.1\t0.9;
\t3\t2\t300\t98.61\t0\t0\t1\t1\t0\t230\t1\t1.1\t0.9;
\t4\t2\t400\t131.47\t0\t0\t1\t1\t0\t230\t1\t1.1\t0.9;
\t5\t2\t0\t0\t0\t0\t1\t1\t0\t230\t1\t1.1\t0.9;
];
mpc.gen = [
\t1\t40\t0\t30\t-30\t1\t100\t1\t40\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
\t1\t170\t0\t127.5\t-127.5\t1\t100\t1\t170\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
\t3\t323.49\t0\t390\t-390\t1\t100\t1\t520\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
\t4\t0\t0\t150\t-150\t1\t100\t1\t200\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
\t5\t466.51\t0\t450\t-450\t1\t100\t1\t600\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
];
mpc.branch = [
\t1\t2\t0.00281\t0.0281\t0.00712\t400\t400\t400\t0\t0\t1\t-360\t360;
\t1\t4\t0.00304\t0.0304\t0.00658\t426\t426\t426\t0\t0\t1\t-360\t360;
\t1\t5\t0.00064\t0.0064\t0.03126\t426\t426\t426\t0\t0\t1\t-360\t360;
\t2\t3\t0.00108\t0.0108\t0.01852\t426\t426\t426\t0\t0\t1\t-360\t360;
\t3\t4\t0.00297\t0.0297\t0.00674\t426\t426\t426\t0\t0\t1\t-360\t360;
\t4\t5\t0.00297\t0.0297\t0.00674\t240\t240\t240\t0\t0\t1\t-360\t360;
];
mpc.gencost = [
\t2\t0\t0\t3\t0\t14\t0;
\t2\t0\t0\t3\t0\t15\t0;
\t2\t0\t0\t3\t0\t30\t0;
\t2\t0\t0\t3\t0\t40\t0;
\t2\t0\t0\t3\t0\t10\t0;
];
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 CSV folders (one with an unknown bus) and 10 MATPOWER files, two levels deep."""
    r = tmp_path_factory.mktemp("batch") / "cases"
    for i in range(10):
        d = r / ("csv" if i % 2 else "more/csv") / f"example_{i:02d}"
        shutil.copytree(EXAMPLE, d)
        (d / "README.md").unlink(missing_ok=True)
    broken = r / "csv" / "example_03" / "lines.csv"
    broken.write_text(broken.read_text().replace("east-south,east,south", "east-south,east,nowhere"))
    (r / "m").mkdir()
    for i in range(10):
        (r / "m" / f"case5_{i:02d}.m").write_text(CASE5.format(pd2=250 + 10 * i))
    return r


@pytest.fixture(scope="module")
def serial(root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("serial")
    rc = main(["batch", str(root), "-o", str(out), "--no-progress"])
    return rc, out


def test_batch_serial_cli_reports_the_broken_case(serial: tuple[int, Path]) -> None:
    rc, out = serial
    assert rc == 1  # one case failed
    s = pd.read_csv(out / "summary.csv")
    assert list(s.columns) == SUMMARY_COLUMNS
    assert len(s) == 20
    ok = s[s.status == "optimal"]
    assert len(ok) == 19
    assert len(list(out.glob("*.nc"))) == 19
    bad = s[s.status != "optimal"]
    assert bad.case.tolist() == ["csv/example_03"]
    err = bad.error.iloc[0]
    assert "InputError" in err and "lines.csv" in err and "line 7" in err and "'bus1'" in err
    assert "nowhere" in err
    assert ok.objective.notna().all() and (ok.lmp_min <= ok.lmp_mean).all()
    assert (ok.lmp_mean <= ok.lmp_max).all()
    # CSV folders carry carrier co2_emissions; the MATPOWER copies have no emission factors
    csv_ok = ok[ok.kind == "csv_folder"]
    assert (csv_ok.total_emissions > 0).all() and len(csv_ok) == 9
    assert ok[ok.kind == "matpower"].total_emissions.isna().all()
    ds = xr.load_dataset(out / "csv__example_01.nc")
    assert ds.sizes["time"] == 24 and "bus_name" in ds.coords


def test_batch_on_local_dask_cluster_is_identical(root: Path, serial: tuple[int, Path],
                                                  tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    _, ref_out = serial
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert addr.startswith("tcp://127.0.0.1:")
        df = run_batch(root, tmp_path, scheduler=addr, progress=False)
    ref = pd.read_csv(ref_out / "summary.csv", float_precision="round_trip")
    assert df.case.tolist() == ref.case.tolist()
    assert df.status.tolist() == ref.status.tolist()
    np.testing.assert_array_equal(df.objective.to_numpy(), ref.objective.to_numpy())
    for nc in sorted(ref_out.glob("*.nc")):
        a, b = xr.load_dataset(nc), xr.load_dataset(tmp_path / nc.name)
        for v in ("lmp", "p_gen", "flow"):
            np.testing.assert_array_equal(a[v].values, b[v].values)


def test_unsafe_paths_skipped(tmp_path: Path) -> None:
    r = tmp_path / "root"
    (r / "ok").mkdir(parents=True)
    (r / "ok" / "a.m").write_text(CASE5.format(pd2=300))
    outside = tmp_path / "outside"
    shutil.copytree(EXAMPLE, outside / "ex")
    (r / "linked").symlink_to(outside / "ex", target_is_directory=True)
    (r / "b.m").symlink_to(r / "ok" / "a.m")
    (r / "big.m").write_text("x" * 2000)
    cases, skipped = discover_cases(r, max_bytes=1500)
    assert [c["name"] for c in cases] == ["ok/a.m"]
    why = {s["case"]: (s["status"], s["error"]) for s in skipped}
    assert why["linked"][0] == "skipped" and "symbolic link" in why["linked"][1]
    assert why["b.m"][0] == "skipped"
    assert why["big.m"][0] == "refused" and "1500-byte limit" in why["big.m"][1]
    # skipped links do not fail the batch, a refused (oversized) case does
    assert main(["batch", str(r), "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    (r / "big.m").unlink()
    assert main(["batch", str(r), "-o", str(tmp_path / "out2"), "--no-progress"]) == 0
    s = pd.read_csv(tmp_path / "out2" / "summary.csv")
    assert set(s.status) == {"optimal", "skipped"}
