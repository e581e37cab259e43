"""Cross-tool check: nodalopt (cvxpy + Clarabel) against PyPSA (linopy + HiGHS).

Both solve the *same* 24-hour DC-OPF, PyPSA's network being rebuilt from
nodalopt's compiled arrays (``benchmarks.peers.pypsa_from_arrays``), on a case
designed so that the answer is non-trivial and the prices are unique:

* pandapower ``case30`` with all lines derated to 75 % of their rating: lines
  9 (bus 5-7) and 34 (bus 24-26) bind;
* strictly convex quadratic costs on every unit (12 to 40 $/MWh plus 0.03 to
  0.12 $/MW^2h), so dispatch is unique and prices move with load;
* ramp limits of 8 MW/h on every unit (they bind on the morning ramp);
* a 10 MW / 40 MWh battery (95 % / 95 %) at the congested bus 7 that must end
  the day at its initial 50 % state of charge;
* the shipped 24-hour demo load shape.

An interior-point solver (Clarabel) and an active-set QP solver (HiGHS) landing
on the same prices is itself evidence that the prices are unique here (on a
degenerate case the two differ by dollars, see PEER-NOTES).  Clarabel is run
with tolerances tighter than nodalopt's defaults (1e-10): with the defaults its
duals are within about 8e-4 $/MWh of HiGHS', with 1e-10 within 2e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pypsa")
pytest.importorskip("highspy")
pytest.importorskip("linopy")

import pandapower as pp  # noqa: E402
import pandapower.networks as pn  # noqa: E402

import nodalopt  # noqa: E402
from benchmarks.peers import pypsa_from_arrays, pypsa_solve  # noqa: E402
from nodalopt.profiles import demo_profiles  # noqa: E402

T = 24
RAMP = 8.0
TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8)


def congested_case30() -> pp.pandapowerNet:
    net = pn.case30()
    net.line["max_loading_percent"] = 75.0
    # poly_cost rows: ext_grid 0, gen 0..4
    net.poly_cost["cp1_eur_per_mw"] = [12.0, 18.0, 26.0, 30.0, 34.0, 40.0]
    net.poly_cost["cp2_eur_per_mw2"] = [0.06, 0.05, 0.12, 0.03, 0.08, 0.10]
    for table in ("gen", "ext_grid"):
        net[table]["ramp_up_mw_per_h"] = RAMP
        net[table]["ramp_down_mw_per_h"] = RAMP
    pp.create_storage(net, bus=7, p_mw=0.0, max_e_mwh=40.0, min_e_mwh=0.0, soc_percent=50.0,
                      max_p_mw=10.0, min_p_mw=-10.0, controllable=True)
    net.storage["charge_efficiency"] = 0.95
    net.storage["discharge_efficiency"] = 0.95
    return net


@pytest.fixture(scope="module")
def solved():
    shape = demo_profiles()["load"].to_numpy(float)
    assert shape.size == T
    model = nodalopt.DCOPF(congested_case30(), hours=T, solver_options=TIGHT)
    ds = model.solve({("load", "p_mw"): shape})
    arr = model.net
    load = arr.load_p[:, None] * shape[None, :]
    pmin = np.repeat(arr.gen_pmin[:, None], T, axis=1)
    pmax = np.repeat(arr.gen_pmax[:, None], T, axis=1)
    n = pypsa_from_arrays(arr, load, pmin, pmax, dt_hours=1.0, snapshots=ds.time.values)
    res = pypsa_solve(n, post_processing=False)
    return arr, ds, n, res


def test_case_is_not_trivial(solved):
    arr, ds, _, _ = solved
    assert ds.attrs["status"] == "optimal"
    mu = np.abs(ds.branch_mu.values)
    assert mu.max() > 1.0, "no thermal limit binds"
    assert (mu > 1e-4).any(axis=0).sum() >= 2, "fewer than two branches bind"
    soc = ds.soc_mwh.values[:, 0]
    assert soc.max() - soc.min() > 15.0, "the battery does not cycle"
    assert soc.max() == pytest.approx(40.0, abs=1e-4), "the battery never fills"
    assert soc[-1] == pytest.approx(20.0, abs=1e-6)
    steps = np.abs(np.diff(ds.p_gen.values, axis=0))
    assert (np.abs(steps - RAMP) < 1e-4).any(), "no ramp limit binds"
    lmp = ds.lmp.values
    assert np.ptp(lmp, axis=1).max() > 10.0, "congestion does not separate prices"


def test_objective_matches_pypsa(solved):
    _, ds, _, res = solved
    assert res.status == "ok" and res.condition == "optimal"
    assert res.objective == pytest.approx(ds.attrs["objective"], rel=1e-6)


def test_lmps_match_pypsa(solved):
    arr, ds, _, res = solved
    theirs = res.lmp[:, arr.bus_node]  # PyPSA bus n{i} is model node i
    ours = ds.lmp.values
    assert theirs.shape == ours.shape == (T, arr.bus_ids.size)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)


def test_dispatch_matches_pypsa(solved):
    arr, ds, n, _ = solved
    p = n.generators_t.p[[f"g{i}" for i in range(arr.n_gen)]].to_numpy()
    np.testing.assert_allclose(ds.p_gen.values, p, rtol=0, atol=1e-2)
    soc = n.storage_units_t.state_of_charge["s0"].to_numpy()
    np.testing.assert_allclose(ds.soc_mwh.values[:, 0], soc, rtol=0, atol=1e-2)
