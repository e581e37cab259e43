"""Issue 13: hostile and faulty files (CSV folder entries, MATPOWER rows, ADMM checkpoints, the CLI contract)."""

from __future__ import annotations

import os
import shutil
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nodalopt.errors import InputError
from nodalopt.io.csv_folder import read_csv_folder, solve_csv_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "csv_example"
SERIES = "generators-p_max_pu.csv"


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block blocks, e.g. on opening a FIFO."""
    def boom(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    shutil.copytree(EXAMPLE, d)
    (d / "README.md").unlink(missing_ok=True)
    return d


# ------------------------------------------------------------------ CSV folders: nothing silently ignored
@pytest.mark.parametrize("wrong", ["Generators-p_max_pu.csv", "generators-p_max_pu.csv ", "generators-pmax_pu.csv",
                                   "generators-p_max_pu.CSV"])
def test_near_miss_series_name_is_an_error_naming_the_file_and_the_known_name(folder: Path, wrong: str) -> None:
    # before issue 13 the file was skipped: objective 138,159 $ (static p_max_pu) instead of 297,157 $
    (folder / SERIES).rename(folder / wrong)
    with pytest.raises(InputError) as ei:
        read_csv_folder(folder)
    msg = str(ei.value)
    assert repr(wrong) in msg and str(folder / wrong) in msg
    assert repr(SERIES) in msg  # the closest known name


def test_unknown_csv_file_is_an_error(folder: Path) -> None:
    (folder / "extra_generators.csv").write_text("name,bus\ng9,north\n")
    with pytest.raises(InputError, match="extra_generators.csv"):
        read_csv_folder(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_place_of_a_series_is_refused_without_blocking(folder: Path) -> None:
    (folder / SERIES).unlink()
    os.mkfifo(folder / SERIES)
    with deadline(20), pytest.raises(InputError, match=r"FIFO.*not a regular file") as ei:
        read_csv_folder(folder)
    assert SERIES in str(ei.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_with_any_name_is_refused(folder: Path) -> None:
    os.mkfifo(folder / "notes")
    with deadline(20), pytest.raises(InputError, match="FIFO"):
        read_csv_folder(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_reading_a_fifo_directly_does_not_block(tmp_path: Path) -> None:
    from nodalopt.io.csv_folder import read_table

    os.mkfifo(tmp_path / "buses.csv")
    with deadline(20), pytest.raises(InputError, match="FIFO"):
        read_table(tmp_path / "buses.csv")


def test_folder_in_place_of_a_series_is_refused(folder: Path) -> None:
    (folder / SERIES).unlink()
    (folder / SERIES).mkdir()
    with pytest.raises(InputError, match=r"folder, not a regular file|a folder") as ei:
        read_csv_folder(folder)
    assert SERIES in str(ei.value)


def test_near_miss_folder_is_refused(folder: Path) -> None:
    (folder / SERIES).unlink()
    (folder / "Generators-p_max_pu.csv").mkdir()
    with pytest.raises(InputError, match="did you mean 'generators-p_max_pu.csv'"):
        read_csv_folder(folder)


def test_files_that_are_not_network_data_are_listed_in_one_warning(folder: Path) -> None:
    (folder / "README.md").write_text("# notes\n")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "notes.txt").write_text("x")
    (folder / "old").mkdir()
    with pytest.warns(UserWarning, match="not read") as rec:
        c = read_csv_folder(folder)
    msg = " ".join(str(w.message) for w in rec if "not read" in str(w.message))
    for n in ("README.md", ".DS_Store", "notes.txt", "old/"):
        assert n in msg
    assert c.n_snapshots == 24


def test_the_full_folder_still_gives_the_published_objective(folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing to warn about
        ds = solve_csv_folder(folder)
    assert float(ds.attrs["objective"]) == pytest.approx(297156.87, rel=1e-6)


def test_a_pypsa_export_with_results_still_loads(tmp_path: Path) -> None:
    """PyPSA's own export (crs.json, meta.json, sub_networks.csv, result series) is accepted unread."""
    pypsa = pytest.importorskip("pypsa")
    import logging

    import pandas as pd

    logging.getLogger("pypsa").setLevel(logging.ERROR)
    logging.getLogger("linopy").setLevel(logging.ERROR)
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2020-01-01", periods=3, freq="h"))
    n.add("Bus", "a")
    n.add("Bus", "b")
    n.add("Line", "l", bus0="a", bus1="b", x=0.1, s_nom=100)
    n.add("Generator", "g", bus="a", p_nom=200, marginal_cost=10)
    n.add("Generator", "w", bus="b", p_nom=50, p_max_pu=[0.1, 0.5, 0.9], marginal_cost=1)
    n.add("Load", "d", bus="b", p_set=[50, 60, 70], q_set=[1, 2, 3])
    n.optimize(solver_name="highs")
    n.export_to_csv_folder(str(tmp_path / "out"))
    names = set(os.listdir(tmp_path / "out"))
    assert {"buses-marginal_price.csv", "sub_networks.csv", "loads-q_set.csv"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ds = solve_csv_folder(tmp_path / "out")
    assert float(ds.attrs["objective"]) == pytest.approx(float(n.objective), rel=1e-6)

