"""Issue 12, point 5: MatpowerCase.to_pandapower, costs spanning many decades, Dask from a script
without ``if __name__ == "__main__":``."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import nodalopt
from nodalopt.errors import SolverError, UnboundedError
from nodalopt.network import pglib_dir

REPO = Path(__file__).resolve().parents[1]
_pglib = pglib_dir()


# ------------------------------------------------------------ MatpowerCase.to_pandapower
@pytest.mark.skipif(_pglib is None, reason="../shared/pglib is absent")
@pytest.mark.parametrize("name", ["pglib_opf_case14_ieee", "pglib_opf_case30_ieee", "pglib_opf_case118_ieee"])
def test_to_pandapower_same_prices_as_the_matpower_case(name: str) -> None:
    """Cases whose slack limits do not bind, where the two DC models agree: the converted net gives
    the prices and objective of the MatpowerCase, and rundcopp on it agrees with both."""
    case = nodalopt.load_case(name)
    net = case.to_pandapower()
    assert isinstance(net, pp.pandapowerNet) and net.name == name
    assert len(net.bus) == case.bus.shape[0]
    direct, converted = nodalopt.solve(case), nodalopt.solve(net)
    assert converted.attrs["objective"] == pytest.approx(direct.attrs["objective"], rel=1e-6)
    assert np.abs(converted.lmp.values - direct.lmp.values).max() < 1e-4
    ref = copy.deepcopy(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcopp(ref)
    assert float(ref.res_cost) == pytest.approx(direct.attrs["objective"], rel=1e-6)
    assert np.abs(ref.res_bus.lam_p.to_numpy() - direct.lmp.values[0]).max() < 1e-4


@pytest.mark.skipif(_pglib is None, reason="../shared/pglib is absent")
def test_to_pandapower_pjm_matches_published_rundcopp() -> None:
    """case5_pjm: rundcopp on the converted net gives the published PJM objective (17,479.90 $/h), as
    does the MatpowerCase itself."""
    case = nodalopt.load_case("pglib_opf_case5_pjm")
    ref = case.to_pandapower(f_hz=60.0)
    assert float(ref.f_hz) == 60.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.rundcopp(ref)
    assert float(ref.res_cost) == pytest.approx(17479.90, abs=0.01)
    assert nodalopt.solve(case).attrs["objective"] == pytest.approx(float(ref.res_cost), rel=1e-6)


# ------------------------------------------------------------ costs spanning 24 decades
def _extreme_costs() -> pp.pandapowerNet:
    """case9 with every unit bounded (ext_grid controllable: 10..250 MW) and costs of 1e12, 1e-12 and
    5 $/MWh: bounded, and HiGHS solves it (objective 1e13 + 1,360 $)."""
    net = pn.case9()
    net.ext_grid["controllable"] = True
    net.poly_cost["cp1_eur_per_mw"] = [1e12, 1e-12, 5.0]
    net.poly_cost["cp2_eur_per_mw2"] = 0.0
    return net


def test_extreme_cost_range_is_a_solver_error_naming_the_range() -> None:
    with pytest.raises(SolverError) as ei:
        nodalopt.solve(_extreme_costs())
    assert not isinstance(ei.value, UnboundedError)
    msg = str(ei.value)
    assert ei.value.status == "unbounded_numerical"
    for part in ("bounded", "1e-12 $/MWh (gen:0)", "1e+12 $/MWh (ext_grid:0)", "24 orders of magnitude",
                 "Set costs below"):
        assert part in msg, msg
    # the problem is bounded: another solver (HiGHS, simplex) finds its optimum
    ds = nodalopt.solve(_extreme_costs(), solver="HIGHS")
    assert ds.attrs["status"] == "optimal"
    np.testing.assert_allclose(ds.p_gen.values[0], [10.0, 250.0, 55.0], atol=1e-6)


# ------------------------------------------------------------ Dask from a script without the guard
def _run_script(path: Path, body: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(path.parent))


def test_dask_from_unguarded_script_refuses_before_any_worker_starts(tmp_path: Path) -> None:
    """Before: every spawned worker re-ran the script ("Nanny failed to start", the body printed once per
    worker).  Now the script's own process raises, naming the line, and the body runs once."""
    pytest.importorskip("dask.distributed")
    res = _run_script(tmp_path / "no_guard.py", """
        import nodalopt, pandapower.networks as pn
        print("BODY", flush=True)
        td = nodalopt.TDNetwork(nodalopt.load_case("case9"))
        td.add_feeder("f", pn.case33bw(), at_bus=4, replace=False)
        st = nodalopt.ADMMSettings(max_iter=2)
        nodalopt.ADMM(td, st, executor="dask", workers=1, hours=1).solve()
        """)
    assert res.returncode != 0
    assert res.stdout.count("BODY") == 1
    assert "NodalOptError" in res.stderr and "line 7 of" in res.stderr and "no_guard.py" in res.stderr
    assert 'if __name__ == "__main__":' in res.stderr
    assert "Nanny failed" not in res.stderr


def test_main_guard_check_passes_under_the_guard_and_stops_a_spawned_import(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    ok = _run_script(tmp_path / "guarded.py", """
        from nodalopt.admm.dask_exec import check_main_guard

        def main():
            check_main_guard()
            print("OK")

        if __name__ == "__main__":
            main()
        """)
    assert ok.returncode == 0 and ok.stdout.strip() == "OK", ok.stderr
    # what a spawned worker does with the script that started it: import it as __mp_main__
    script = tmp_path / "worker_view.py"
    script.write_text("from nodalopt.admm.dask_exec import check_main_guard\ncheck_main_guard()\n", encoding="utf-8")
    res = _run_script(tmp_path / "spawn.py", f"""
        import multiprocessing.spawn as s
        s._fixup_main_from_path({str(script)!r})
        """)
    assert res.returncode != 0
    assert "re-run by a Dask worker process" in res.stderr and "worker_view.py" in res.stderr
