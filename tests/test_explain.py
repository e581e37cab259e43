"""Price explanations (issue 16): intervals against one-sided finite differences of the optimal cost,
vertex (HiGHS) and interior (Clarabel) duals inside them, valid MW ranges against bisection by
re-solving, price setters against finite differences of unit outputs."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
import xarray as xr

import nodalopt
from nodalopt.cli import main
from tests.helpers import two_bus

#: Clarabel tolerances for the bisection references: at default tolerances an interior-point solve
#: rounds a kink of the price curve over ~0.5 MW (the barrier keeps a nearly binding limit slack)
TIGHT = {"tol_gap_abs": 1e-13, "tol_gap_rel": 1e-13, "tol_feas": 1e-12, "tol_ktratio": 1e-12, "max_iter": 1000}


def solve_extra(net: Any, bus: int, mw: float, *, hours: int | None = None, prof: pd.DataFrame | None = None,
                t: int = 0, **kw: Any) -> xr.Dataset:
    """Re-solve with ``mw`` extra demand at ``bus`` in period ``t`` (a new load; ``prof`` the load profile)."""
    n2 = copy.deepcopy(net)
    li = pp.create_load(n2, bus, p_mw=mw if prof is None else 0.0)
    profiles = None
    if prof is not None:
        p = prof.copy()
        p[li] = 0.0
        p.iloc[t, p.columns.get_loc(li)] = mw
        profiles = {("load", "p_mw"): p}
    return nodalopt.solve(n2, hours=hours, profiles=profiles, **kw)


def one_sided(net: Any, bus: int, t: int = 0, h: float = 0.5, **kw: Any) -> tuple[float, float]:
    """Left and right derivatives of the optimal cost by one-sided finite differences.

    The optimal cost is piecewise quadratic in demand, so the Richardson combination
    ``2 D(h) - D(2h)`` of the one-sided quotients is exact inside a piece."""
    o0 = solve_extra(net, bus, 0.0, t=t, **kw).attrs["objective"]

    def quot(step: float) -> float:
        return (solve_extra(net, bus, step, t=t, **kw).attrs["objective"] - o0) / step

    right = 2 * quot(h) - quot(2 * h)
    left = 2 * quot(-h) - quot(-2 * h)
    return left, right


def storage_case() -> tuple[Any, pd.DataFrame]:
    """case118_200mva with two batteries and a 24 h load profile (0.75..1.05 of the base loads)."""
    net = nodalopt.load_case("case118_200mva")
    for bus in (59, 80):
        pp.create_storage(net, bus, p_mw=0.0, max_e_mwh=120.0, min_e_mwh=0.0, soc_percent=50.0,
                          max_p_mw=40.0, min_p_mw=-40.0, controllable=True)
    net.storage["charge_efficiency"] = 0.95
    net.storage["discharge_efficiency"] = 0.95
    shape = 0.9 + 0.15 * np.sin(np.arange(24) / 24 * 2 * np.pi - 1.5)
    prof = pd.DataFrame(np.outer(shape, net.load.p_mw.to_numpy()), columns=net.load.index)
    return net, prof


# ------------------------------------------------------------------ intervals
def test_two_bus_degenerate_interval_is_analytic_and_holds_both_solvers() -> None:
    """Cheap unit at its 100 MW limit and the line at its 100 MW limit: one more MW at bus 0 comes
    from the 30 $/MWh unit, one less backs the 10 $/MWh unit off, so any price in [10, 30] is optimal."""
    net = two_bus(limit_mw=100.0)
    b0 = int(net.bus.index[0])
    for solver in ("CLARABEL", "HIGHS"):
        ds = nodalopt.solve(net, solver=solver, explain=True)
        lo, hi = float(ds.lmp_min.sel(bus=b0)[0]), float(ds.lmp_max.sel(bus=b0)[0])
        assert lo == pytest.approx(10.0, abs=1e-6) and hi == pytest.approx(30.0, abs=1e-6)
        assert lo - 1e-6 <= float(ds.lmp.sel(bus=b0)[0]) <= hi + 1e-6, solver
        b1 = int(net.bus.index[1])
        assert float(ds.lmp_min.sel(bus=b1)[0]) == float(ds.lmp_max.sel(bus=b1)[0]) == pytest.approx(30.0)
    left, right = one_sided(net, b0)
    assert (left, right) == (pytest.approx(10.0, abs=1e-3), pytest.approx(30.0, abs=1e-3))


def test_case118_degenerate_bus_interval_matches_one_sided_differences() -> None:
    net = nodalopt.load_case("case118_200mva")
    ds = nodalopt.solve(net, explain=True)
    width = (ds.lmp_max - ds.lmp_min).values[0]
    degenerate = ds.bus.values[width > 1e-6]
    assert list(degenerate) == [8]  # the bus between two binding branches in series
    assert not bool(ds.lmp_unique.sel(bus=8)[0])
    np.testing.assert_allclose(ds.lmp_min.values[0, width <= 1e-6], ds.lmp.values[0, width <= 1e-6], atol=0)
    left, right = one_sided(net, 8)
    assert abs(float(ds.lmp_min.sel(bus=8)[0]) - left) <= 1e-3
    assert abs(float(ds.lmp_max.sel(bus=8)[0]) - right) <= 1e-3
    assert float(ds.lmp_min.sel(bus=8)[0]) < float(ds.lmp.sel(bus=8)[0]) < float(ds.lmp_max.sel(bus=8)[0])
    # a unique price: both one-sided differences equal it
    left, right = one_sided(net, 60)
    assert abs(left - float(ds.lmp.sel(bus=60)[0])) <= 1e-3 and abs(right - float(ds.lmp.sel(bus=60)[0])) <= 1e-3


def test_pjm5_prices_are_one_sided_derivatives(pglib: Path) -> None:
    case = pglib / "pglib_opf_case5_pjm.m"
    if not case.exists():
        pytest.skip("pglib_opf_case5_pjm.m absent")
    net = nodalopt.load_case(case)
    ds = nodalopt.solve(net, explain=True)
    dh = nodalopt.solve(net, solver="HIGHS")
    assert ((dh.lmp >= ds.lmp_min - 1e-6) & (dh.lmp <= ds.lmp_max + 1e-6)).all()
    for bus in ds.bus.values:
        left, right = _one_sided_matpower(net, int(bus))
        assert abs(float(ds.lmp_min.sel(bus=bus)[0]) - left) <= 1e-3, bus
        assert abs(float(ds.lmp_max.sel(bus=bus)[0]) - right) <= 1e-3, bus


def _one_sided_matpower(case: Any, bus: int, h: float = 0.5) -> tuple[float, float]:
    """One-sided differences on a MATPOWER case: demand added to the bus's Pd column."""
    row = np.flatnonzero(case.bus[:, 0].astype(int) == bus)[0]

    def obj(extra: float) -> float:
        b = case.bus.copy()
        b[row, 2] += extra
        return float(nodalopt.solve(dataclasses.replace(case, bus=b)).attrs["objective"])

    o0 = obj(0.0)
    q = {s: (obj(s) - o0) / s for s in (h, 2 * h, -h, -2 * h)}
    return 2 * q[-h] - q[-2 * h], 2 * q[h] - q[2 * h]


def test_storage_24h_prices_match_one_sided_differences() -> None:
    net, prof = storage_case()
    ds = nodalopt.solve(net, hours=24, profiles={("load", "p_mw"): prof}, explain=True)
    kkt = ~ds.explain_lp.values
    assert kkt.mean() > 0.7  # the rest: tangent-cone LP sides, many left NaN (see the xfail below)
    unresolved = np.isnan(ds.lmp_min.values)
    assert unresolved.sum() == ds.attrs["explain_unresolved"] and not unresolved[kkt].any()
    rng = np.random.default_rng(3)
    picks = np.argwhere(kkt)[rng.choice(int(kkt.sum()), 3, replace=False)]
    for t, b in picks:
        bus = int(ds.bus.values[b])
        left, right = one_sided(net, bus, t=int(t), hours=24, prof=prof)
        assert abs(float(ds.lmp_min.values[t, b]) - left) <= 1e-3, (t, bus)
        assert abs(float(ds.lmp_max.values[t, b]) - right) <= 1e-3, (t, bus)


@pytest.mark.xfail(strict=True, reason="issue 16, not done: with storage, the tangent-cone LP of a degenerate "
                   "bus-hour uses the active set classified from minimum-norm multipliers, which split the "
                   "degenerate duals of state-of-charge plateaus; bus 8 hour 0: 33.319 vs 33.333 $/MWh")
def test_storage_24h_degenerate_interval_matches_one_sided_differences() -> None:
    net, prof = storage_case()
    ds = nodalopt.solve(net, hours=24, profiles={("load", "p_mw"): prof}, explain=True)
    b = list(ds.bus.values).index(8)
    left, right = one_sided(net, 8, t=0, hours=24, prof=prof)
    assert abs(float(ds.lmp_min.values[0, b]) - left) <= 1e-3
    assert abs(float(ds.lmp_max.values[0, b]) - right) <= 1e-3


# ------------------------------------------------------------------ valid ranges
def _price(net: Any, bus: int, mw: float, **kw: Any) -> float:
    return float(solve_extra(net, bus, mw, solver_options=TIGHT, **kw).lmp.sel(bus=bus)[kw.get("t", 0)])


def _breakpoint(net: Any, bus: int, sign: float, lmp: float, slope: float, hi: float, **kw: Any) -> float:
    """Where the re-solved price curve leaves ``lmp + slope * dMW`` (MW, in the direction ``sign``).

    A bisection (to 0.05 MW) on "the price deviates by more than 1e-6" finds the kink roughly; an
    interior-point solve rounds the kink over a few 0.01 MW, so the breakpoint is then the
    intersection of the straight pieces fitted 0.25 and 0.5 MW either side of it."""
    lo = 0.0
    while hi - lo > 0.05:
        mid = 0.5 * (lo + hi)
        if abs(_price(net, bus, sign * mid, **kw) - (lmp + slope * sign * mid)) > 1e-6:
            hi = mid
        else:
            lo = mid
    b0 = 0.5 * (lo + hi)
    xl, xr = np.array([b0 - 0.5, b0 - 0.25]), np.array([b0 + 0.25, b0 + 0.5])
    pl = np.array([_price(net, bus, sign * v, **kw) for v in xl])
    pr = np.array([_price(net, bus, sign * v, **kw) for v in xr])
    kl, kr = np.diff(pl)[0] / 0.25, np.diff(pr)[0] / 0.25
    return float((pr[0] - pl[0] + kl * xl[0] - kr * xr[0]) / (kl - kr))


@pytest.mark.parametrize("bus", [60, 23])
def test_case118_valid_range_matches_bisection(bus: int) -> None:
    net = nodalopt.load_case("case118_200mva")
    ds = nodalopt.solve(net, explain=True)
    x = ds.sel(bus=bus).isel(time=0)
    lmp, slope = float(x.lmp), float(x.lmp_slope)
    up, down = float(x.valid_up_mw), float(x.valid_down_mw)
    # inside the range the price is exactly linear
    for d in (0.5 * up, -0.5 * down):
        got = float(solve_extra(net, bus, d).lmp.sel(bus=bus)[0])
        assert abs(got - (lmp + slope * d)) <= 1e-6
    assert abs(_breakpoint(net, bus, 1.0, lmp, slope, up + 2.0) - up) <= 1e-3
    assert abs(_breakpoint(net, bus, -1.0, lmp, slope, down + 2.0) - down) <= 1e-3
    if bus == 60:  # the example: line:90 starts to bind
        assert "line:90" in x.next_event.item()
        after = solve_extra(net, bus, up + 1.0)
        i = list(ds.branch.values).index("line:90")
        assert abs(float(after.flow[0, i])) == pytest.approx(float(ds.rating[i]), abs=1e-3)
        assert x.next_event_down.item() == "gen:gen:18 reaches its min (hour 0)"
        g = list(ds.gen.values).index("gen:18")
        p18 = float(solve_extra(net, bus, -down - 1.0, solver_options=TIGHT).p_gen[0, g])
        assert p18 == pytest.approx(0.0, abs=1e-3)


# ------------------------------------------------------------------ price setters
def test_price_setters_sum_to_lmp_and_match_output_differences() -> None:
    net = nodalopt.load_case("case118_200mva")
    ds = nodalopt.solve(net, explain=True)
    uniq = ds.lmp_unique.values & ((ds.lmp_max - ds.lmp_min).values <= 1e-9)
    total = ((ds.price_setters * ds.marginal_cost).sum("gen") + ds.lmp_coupling).values
    assert np.abs(total - ds.lmp.values)[uniq].max() <= 1e-6
    for bus in (60, 23, 100):
        d = solve_extra(net, bus, 1.0)
        fd = (d.p_gen - ds.p_gen).values[0]
        np.testing.assert_allclose(ds.price_setters.sel(bus=bus).values[0], fd, atol=1e-4)
        setters = ds.gen.values[np.abs(ds.price_setters.sel(bus=bus).values[0]) > 1e-6]
        assert setters.size >= 1


def test_storage_price_setters_include_coupling() -> None:
    net, prof = storage_case()
    ds = nodalopt.solve(net, hours=24, profiles={("load", "p_mw"): prof}, explain=True)
    kkt = ~ds.explain_lp.values
    total = ((ds.price_setters * ds.marginal_cost).sum("gen") + ds.lmp_coupling).values
    # the KKT price is accepted within 1e-6 of max|lmp| (40 $/MWh here) of the interior-point dual
    assert np.abs(total - ds.lmp.values)[kkt].max() <= 5e-5
    assert np.abs(ds.lmp_coupling.values[kkt]).max() > 1.0  # storage moves other periods' units


# ------------------------------------------------------------------ API
def test_explain_needs_the_solved_dataset() -> None:
    ds = nodalopt.solve(two_bus())
    ex = nodalopt.explain(ds)
    assert set(ex.data_vars) >= {"lmp_min", "lmp_max", "valid_up_mw", "valid_down_mw", "lmp_slope", "next_event",
                                 "price_setters"}
    assert ex.price_setters.dims == ("time", "bus", "gen")
    with pytest.raises(nodalopt.InputError, match="explain"):
        nodalopt.explain(ds.copy())


def test_cli_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", "case118_200mva", "--explain"]) == 0
    assert "1 bus-hour(s) with a price interval" in capsys.readouterr().out


# ------------------------------------------------------------------ step curve
def test_price_curve_piece_equals_resolved_prices_and_plot_renders() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from nodalopt import plots
    from nodalopt.signals import price_curve

    net = nodalopt.load_case("case118_200mva")
    curve = price_curve(net, 60, 25.0)  # inside the first piece (line:90 binds at 25.63 MW)
    assert len(curve) == 1 and curve.end_mw.iloc[0] == pytest.approx(25.0)
    for mw in (5.0, 20.0):
        got = float(solve_extra(net, 60, mw).lmp.sel(bus=60)[0])
        r = curve.iloc[0]
        assert abs(got - (r.price_start + r.slope * mw)) <= 1e-6
    ax = plots.plot_price_curve(curve)
    xy = plots.find_artist(ax, "nodalopt:price_curve").get_xydata()
    np.testing.assert_allclose(xy[:, 1], np.column_stack([curve.price_start, curve.price_end]).ravel())
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


@pytest.mark.xfail(strict=True, reason="issue 16, not done: just past a breakpoint the interior-point point is "
                   "not settled (limits with small multipliers sit up to ~0.5 MW off their bound); the pieces "
                   "after the first are off by up to 5e-5 $/MWh (bus 60 of case118_200mva, 26.1-29.3 MW)")
def test_price_curve_steps_past_breakpoints() -> None:
    from nodalopt.signals import price_curve

    net = nodalopt.load_case("case118_200mva")
    curve = price_curve(net, 60, 80.0)
    assert len(curve) >= 2 and curve.event.iloc[0].startswith("branch:line:90")
    for _, r in curve.iterrows():
        mid = 0.5 * (r.start_mw + r.end_mw)
        got = float(solve_extra(net, 60, mid).lmp.sel(bus=60)[0])
        assert abs(got - (r.price_start + r.slope * (mid - r.start_mw))) <= 1e-6
