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



# ------------------------------------------------------------------ MATPOWER: errors name the file and line
@pytest.fixture
def case5(tmp_path: Path) -> Path:
    from test_batch import CASE5

    p = tmp_path / "case5.m"
    p.write_text(CASE5.format(pd2=300))
    return p


def _edit(p: Path, old: str, new: str, count: int = 1) -> Path:
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, count))
    return p


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    # NCOST = 3 announces 3 coefficients; the rows hold 2 (before: IndexError traceback, exit 1)
    ("\t0\t0\t3\t0\t", "\t0\t0\t3\t", 27, "NCOST = 3 announces 3 coefficients"),
    ("\t2\t0\t0\t3\t0\t14\t0;", "\t2\t0\t0\t4\t0\t14\t0;", 27, "NCOST = 4"),
    ("\t2\t0\t0\t3\t0\t14\t0;", "\t1\t0\t0\t3\t0\t14\t0;", 27, "3 (x, y) points"),
    ("\t2\t1\t300\t98.61", "\t2\t1\t300", 6, "12 values where the first row (line 5) has 13"),  # wrong width
    ("0.0281", "0.0x281", 19, "'0.0x281' is not a number"),
])
def test_matpower_errors_name_file_and_line(case5: Path, old: str, new: str, line: int, words: str) -> None:
    from nodalopt.network.matpower import read_matpower

    _edit(case5, old, new, count=5)
    with pytest.raises(InputError) as ei:
        read_matpower(case5)
    assert f"{case5}, line {line}:" in str(ei.value) and words in str(ei.value)


def test_truncated_matpower_file_names_the_open_matrix(case5: Path) -> None:
    from nodalopt.network.matpower import read_matpower

    text = case5.read_text()
    case5.write_text(text[: text.index("mpc.branch") + 120])
    with pytest.raises(InputError, match=r"line 18: mpc.branch = \[ is never closed.*truncated"):
        read_matpower(case5)


def test_matpower_line_map_agrees_with_the_parser_on_pglib_cases() -> None:
    """The line of every row (used in the messages) is found for each row matpowercaseframes reads."""
    from nodalopt.network import pglib_dir
    from nodalopt.network.matpower import read_matpower

    d = pglib_dir()
    if d is None:
        pytest.skip("no PGLib folder")
    files = sorted(d.glob("pglib_opf_case*_ieee.m")) + sorted(d.glob("pglib_opf_case*_pjm.m"))
    assert files
    for f in files:
        c = read_matpower(f)
        lines = c.extra["row_lines"]
        for k in ("bus", "gen", "branch", "gencost"):
            assert len(lines[k]) == getattr(c, k).shape[0], (f, k)
        first = f.read_text().splitlines()[lines["bus"][0] - 1].split()
        assert float(first[0]) == c.bus[0, 0] and float(first[2]) == c.bus[0, 2], f


# ------------------------------------------------------------------ the CLI: one line, documented exit code
def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from nodalopt.cli import main

    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_ncost_mismatch_is_exit_2_with_file_and_line(case5: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(case5, "\t0\t0\t3\t0\t", "\t0\t0\t3\t", count=5)
    rc, err = _cli(["solve", str(case5)], capsys)
    assert rc == 2 and f"{case5}, line 27" in _one_error_line(err)


@pytest.mark.parametrize("kind", ["deep", "latin1"])
def test_cli_hostile_json_is_exit_2_naming_the_file(tmp_path: Path, kind: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / f"{kind}.json"
    if kind == "deep":
        p.write_text("[" * 200_000 + "]" * 200_000)
    else:
        p.write_bytes('{"_module": "pandapower.auxiliary", "name": "caf\u00e9"}'.encode("latin-1"))
    rc, err = _cli(["solve", str(p)], capsys)
    assert rc == 2 and str(p) in _one_error_line(err)


def test_cli_refuses_huge_hours_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(["solve", "case9", "--hours", "100000000"], capsys)
    assert rc == 2 and "87840" in _one_error_line(err)


def test_cli_output_equal_to_input_is_refused_and_input_kept(case5: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = case5.read_bytes()
    rc, err = _cli(["solve", str(case5), "-o", str(case5)], capsys)
    assert rc == 2 and "is the input" in _one_error_line(err)
    assert case5.read_bytes() == before  # before issue 13: overwritten with netCDF, exit 0


def test_cli_output_inside_an_input_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "case"
    shutil.copytree(EXAMPLE, d)
    rc, err = _cli(["solve", str(d), "-o", str(d / "out.nc")], capsys)
    assert rc == 2 and "inside the input folder" in _one_error_line(err)


@pytest.mark.parametrize("where", ["missing", "file", "folder", "unwritable"])
def test_cli_bad_output_path_fails_before_the_solve(case5: Path, tmp_path: Path, where: str,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import nodalopt.dcopf

    def no_solve(*a: object, **k: object) -> None:
        raise AssertionError("solved before checking the output path")

    monkeypatch.setattr(nodalopt.dcopf.DCOPF, "solve", no_solve)
    if where == "unwritable":
        if not Path("/sys").is_dir():
            pytest.skip("needs /sys")
        out = Path("/sys/nodalopt-out.nc")  # not writable, even by root
    else:
        out = {"missing": tmp_path / "nowhere" / "x.nc", "file": case5 / "x.nc", "folder": tmp_path}[where]
    rc, err = _cli(["solve", str(case5), "-o", str(out)], capsys)
    line = _one_error_line(err)
    assert rc == 2 and str(out) in line
    assert {"missing": "does not exist", "file": "is a file, not a folder", "folder": "is a folder",
            "unwritable": "cannot write"}[where] in line


def test_cli_unreachable_scheduler_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = _cli(["solve", "case9", "--feeders", "case33bw:1", "--method", "admm",
                    "--scheduler", f"tcp://127.0.0.1:{port}"], capsys)
    assert rc == 2 and f"tcp://127.0.0.1:{port}" in _one_error_line(err)
    rc, err = _cli(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{port}"],
                   capsys)
    assert rc == 2 and "cannot connect" in _one_error_line(err)


def test_cli_unexpected_error_is_one_line(case5: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import nodalopt.dcopf

    def boom(*a: object, **k: object) -> None:
        raise ZeroDivisionError("x")

    monkeypatch.setattr(nodalopt.dcopf.DCOPF, "solve", boom)
    rc, err = _cli(["solve", str(case5)], capsys)
    assert rc == 1 and "ZeroDivisionError" in _one_error_line(err)


# ------------------------------------------------------------------ ADMM checkpoints
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_admm import HOURS, _td

    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    ck = tmp_path_factory.mktemp("ck") / "admm.npz"
    st = ADMMSettings(max_iter=10, return_unconverged=True, checkpoint=str(ck), checkpoint_every=10)
    ADMM(_td(), st, hours=HOURS).solve()
    assert ck.is_file()
    return ck


def _resume(ck: Path, vm_min: float = 0.95, rho: float = 5.0) -> None:
    from test_admm import HOURS, _td

    from nodalopt.admm.coordinator import ADMM, ADMMSettings

    st = ADMMSettings(max_iter=12, return_unconverged=True, checkpoint=str(ck), rho=rho)
    ADMM(_td(vm_min=vm_min), st, hours=HOURS).solve(resume=True)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no_rho"])
def test_damaged_checkpoint_is_an_input_error_naming_the_file(checkpoint: Path, tmp_path: Path, damage: str) -> None:
    import numpy as np

    ck = tmp_path / "ck.npz"
    data = checkpoint.read_bytes()
    if damage == "truncated":
        ck.write_bytes(data[: len(data) // 2])  # before: BadZipFile
    elif damage == "garbage":
        ck.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    else:
        with np.load(checkpoint) as z:
            arrays = {k: z[k] for k in z.files if k != "rho"}
        np.savez(ck, **arrays)  # before: KeyError: 'rho'
    with pytest.raises(InputError, match=str(ck)):
        _resume(ck)


@pytest.mark.parametrize("change", ["network", "settings"])
def test_checkpoint_of_another_network_or_settings_is_refused(checkpoint: Path, tmp_path: Path, change: str) -> None:
    ck = tmp_path / "ck.npz"
    shutil.copy(checkpoint, ck)
    with pytest.raises(InputError, match="another network, horizon, load series or ADMM settings"):
        _resume(ck, vm_min=0.9) if change == "network" else _resume(ck, rho=3.0)  # before: accepted silently
    _resume(ck)  # the same network and settings resume
