"""Issue 13.2/13.3: batch never loses or hides a result (nested cases, summary per case, --resume, stale
outputs, per-case time and memory limits, spreadsheet formulas)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_batch import CASE5

import nodalopt.batch as B
from nodalopt.batch import discover_cases, run_batch
from nodalopt.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "csv_example"


def _m(path: Path, pd2: float = 300) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CASE5.format(pd2=pd2))
    return path


def _csv(path: Path) -> Path:
    shutil.copytree(EXAMPLE, path)
    (path / "README.md").unlink(missing_ok=True)
    return path


def _summary(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv", keep_default_na=False)


# ------------------------------------------------------------------ nested case folders are reported
def test_case_folders_nested_in_a_case_folder_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = tmp_path / "root"
    outer = _csv(r / "outer")
    _csv(outer / "inner")
    _m(outer / "more" / "x.m")
    cases, skipped = discover_cases(r)
    assert [c["name"] for c in cases] == ["outer"]
    why = {s["case"]: s for s in skipped}
    assert set(why) == {"outer/inner", "outer/more/x.m"}
    assert all(s["status"] == "refused" and "inside the case folder outer" in s["error"] for s in why.values())
    # before issue 13: "1 of 1 case(s) solved", exit 0, the inner cases nowhere
    assert main(["batch", str(r), "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "outer/inner" in err and "outer/more/x.m" in err
    assert set(_summary(tmp_path / "out").case) == {"outer", "outer/inner", "outer/more/x.m"}


def test_root_that_is_a_case_folder_reports_nested_cases(tmp_path: Path) -> None:
    r = _csv(tmp_path / "case")
    _csv(r / "sub" / "inner")
    cases, skipped = discover_cases(r)
    assert len(cases) == 1 and [s["case"] for s in skipped] == ["sub/inner"]


# ------------------------------------------------------------------ summary per case, --resume
_REAL_TASK = B.solve_case_task


class _Killed(BaseException):
    """Stands for a SIGKILL of the batch process."""


def _counting(monkeypatch: pytest.MonkeyPatch, kill_after: int | None = None) -> list[str]:
    solved: list[str] = []
    real = _REAL_TASK

    def task(case: dict[str, Any], output: str, kw: dict[str, Any], limits: dict[str, Any] | None = None) -> Any:
        if kill_after is not None and len(solved) == kill_after:
            raise _Killed
        solved.append(case["name"])
        return real(case, output, kw, limits)

    monkeypatch.setattr(B, "solve_case_task", task)
    return solved


@pytest.fixture
def three(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for i in range(3):
        _m(r / f"c{i}.m", 250 + 10 * i)
    return r


def test_summary_has_every_finished_case_after_a_kill_and_resume_skips_them(
        three: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    _counting(monkeypatch, kill_after=2)
    with pytest.raises(_Killed):
        run_batch(three, out, progress=False)
    s = _summary(out)  # before issue 13: no summary.csv at all
    assert sorted(s.case) == ["c0.m", "c1.m"] and set(s.status) == {"optimal"}
    solved = _counting(monkeypatch)
    df = run_batch(three, out, progress=False, resume=True)
    assert solved == ["c2.m"]  # before: every case again
    assert df.status.tolist() == ["optimal"] * 3 and df.resumed.tolist() == [True, True, False]
    full = run_batch(three, tmp_path / "fresh", progress=False)
    pd.testing.assert_series_equal(df.objective, full.objective)


def test_resume_solves_a_changed_input_or_changed_options_again(
        three: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    run_batch(three, out, progress=False)
    _m(three / "c1.m", 400)  # edited input, same name
    solved = _counting(monkeypatch)
    df = run_batch(three, out, progress=False, resume=True)
    assert solved == ["c1.m"]
    assert df.resumed.tolist() == [True, False, True]
    solved.clear()
    run_batch(three, out, progress=False, resume=True, voll=5000.0)  # other options: all again
    assert solved == ["c0.m", "c1.m", "c2.m"]


def test_resume_does_not_trust_a_damaged_output(three: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    run_batch(three, out, progress=False)
    (out / "c0.m.nc").write_bytes((out / "c0.m.nc").read_bytes()[:100])  # truncated
    solved = _counting(monkeypatch)
    assert run_batch(three, out, progress=False, resume=True).status.tolist() == ["optimal"] * 3
    assert solved == ["c0.m"]


def test_a_case_that_now_fails_leaves_no_stale_result(three: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch(three, out, progress=False)
    assert (out / "c1.m.nc").exists()
    (three / "c1.m").write_text(CASE5.format(pd2=300).replace("mpc.gencost = [", "mpc.gencost = [\n\t2\t0;"))
    df = run_batch(three, out, progress=False)
    row = df[df.case == "c1.m"].iloc[0]
    assert row.status == "failed" and "line" in row.error
    assert not (out / "c1.m.nc").exists()  # before: the old result stayed beside a failed row
    assert (out / "c0.m.nc").exists()


def test_output_folder_that_is_a_file_is_refused_before_solving(three: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["batch", str(three), "-o", str(f / "out"), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------ per-case time and memory limits
@pytest.fixture
def slow_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MATPOWER cases hang (their parser module sleeps, then eats memory), CSV folders do not: only in children."""
    shadow = tmp_path / "shadow" / "matpowercaseframes"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "import os, time\n"
        "if os.environ.get('I13_MODE') == 'memory':\n"
        "    hog = []\n"
        "    for _ in range(80):\n"
        "        hog.append(bytearray(50 * 2**20))\n"
        "        time.sleep(0.02)\n"
        "time.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    r = tmp_path / "root"
    _csv(r / "fast")
    _m(r / "slow.m")
    return r


def test_case_timeout_fails_the_slow_case_and_goes_on(slow_m: Path, tmp_path: Path) -> None:
    df = run_batch(slow_m, tmp_path / "out", progress=False, case_timeout=15)
    st = dict(zip(df.case, df.status, strict=True))
    assert st == {"fast": "optimal", "slow.m": "failed"}
    slow = df[df.case == "slow.m"].iloc[0]
    assert slow.error.startswith("timeout: killed after") and 15 <= slow.seconds < 35
    ref = run_batch(slow_m / "fast", tmp_path / "ref", progress=False)  # in-process reference
    assert df[df.case == "fast"].objective.iloc[0] == pytest.approx(ref.objective.iloc[0], rel=1e-9)


def test_case_memory_fails_the_hungry_case_and_goes_on(slow_m: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("I13_MODE", "memory")
    df = run_batch(slow_m, tmp_path / "out", progress=False, case_memory=1500, case_timeout=120)
    st = dict(zip(df.case, df.status, strict=True))
    assert st == {"fast": "optimal", "slow.m": "failed"}
    err = df[df.case == "slow.m"].error.iloc[0]
    assert err.startswith("memory: killed at") and "1500 MB" in err


def test_limits_are_validated(three: Path, tmp_path: Path) -> None:
    from nodalopt.errors import InputError

    with pytest.raises(InputError, match="case_timeout"):
        run_batch(three, tmp_path / "o", progress=False, case_timeout=0)
    with pytest.raises(InputError, match="case_memory"):
        run_batch(three, tmp_path / "o", progress=False, case_memory=float("nan"))


# ------------------------------------------------------------------ spreadsheet formulas
def test_formula_like_names_are_neutralised_in_summary(tmp_path: Path) -> None:
    r = tmp_path / "root"
    _m(r / "=HYPERLINK(1).m")
    _m(r / "@SUM(A1).m")
    _m(r / "-2+3.m")
    run_batch(r, tmp_path / "out", progress=False)
    with (tmp_path / "out" / "summary.csv").open() as fh:
        names = [row[0] for row in csv.reader(fh)][1:]
    assert sorted(names) == ["'-2+3.m", "'=HYPERLINK(1).m", "'@SUM(A1).m"]
    s = _summary(tmp_path / "out")
    assert (s.objective.astype(float) > 0).all()  # numbers untouched


def test_formula_like_element_names_are_neutralised_in_csv_results(tmp_path: Path) -> None:
    from nodalopt.io import write_csv_results
    from nodalopt.io.csv_folder import neutralise_cell, solve_csv_folder

    ds = solve_csv_folder(_csv(tmp_path / "ex"))
    names = list(ds.bus_name.values)
    names[:3] = ["=cmd|' /C calc'!A0", "+1+2", "-5"]
    ds = ds.assign_coords(bus_name=("bus", names))
    write_csv_results(ds, tmp_path / "res")
    with (tmp_path / "res" / "buses-marginal_price.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header[1:4] == ["'=cmd|' /C calc'!A0", "'+1+2", "-5"]  # a plain number stays a number
    assert neutralise_cell(-3.5) == -3.5 and neutralise_cell("@x") == "'@x" and neutralise_cell("a=b") == "a=b"
