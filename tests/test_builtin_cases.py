"""Built-in cases that solve as named (issue 12, point 4).

* The PEGASE fixes live in the package (``case1354pegase_fixed`` ...), checked against
  pandapower's own nets; the plain names fail with a message naming the fixed variant.
* Every case name the README mentions solves as written (parsed from README.md).
* The README's carbon example runs as written; an infeasible CO2 cap says so and gives the
  lowest reachable emissions (checked by hand on a 2-bus net and against a very high carbon
  price on case118).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import nodalopt
from nodalopt.cli import EXIT_INFEASIBLE, EXIT_OK, main
from nodalopt.network import pglib_dir
from nodalopt.network.examples import EXAMPLES, FIXED_VARIANTS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NAME = re.compile(r"(?<![\w./-])(pglib_opf_\w+|case\d+\w*)")


def readme_case_names() -> list[str]:
    return sorted(set(NAME.findall(README)))


def feeder_names() -> set[str]:
    from nodalopt.distribution.examples import FEEDERS

    return set(FEEDERS)


# ------------------------------------------------------------------ PEGASE fixed
def test_pegase_fixed_is_pandapowers_case_with_the_documented_fixups():
    raw, fixed = pn.case1354pegase(), nodalopt.load_case("case1354pegase_fixed")
    assert fixed.name == "case1354pegase_fixed"
    unlimited_t = np.isclose(raw.trafo.sn_mva.to_numpy(float), 99.999)
    assert unlimited_t.sum() > 0
    np.testing.assert_array_equal(fixed.trafo.max_loading_percent.isna().to_numpy(), unlimited_t)
    np.testing.assert_array_equal(fixed.trafo.max_loading_percent[~unlimited_t],
                                  raw.trafo.max_loading_percent[~unlimited_t])
    big = raw.line.max_i_ka.to_numpy(float) >= 99999.0
    np.testing.assert_array_equal(fixed.line.max_loading_percent.isna().to_numpy(), big)
    rng = np.random.default_rng(20240601)
    n = len(raw.poly_cost)
    np.testing.assert_array_equal(fixed.poly_cost.cp1_eur_per_mw.to_numpy(), rng.uniform(20.0, 60.0, n))
    np.testing.assert_array_equal(fixed.poly_cost.cp2_eur_per_mw2.to_numpy(), rng.uniform(0.002, 0.02, n))
    assert (raw.poly_cost.cp1_eur_per_mw == 1.0).all()  # the source: 1 $/MWh everywhere
    for col in ("bus", "p_mw"):
        np.testing.assert_array_equal(fixed.load[col].to_numpy(), raw.load[col].to_numpy())


def test_benchmark_registry_uses_the_package_cases():
    from benchmarks.registry import CARBON_CASE, CASES, fixup_docs

    for name in ("case1354pegase_fixed", "case2869pegase_fixed", "case9241pegase_fixed"):
        assert CASES[name].source == name and CASES[name].source in EXAMPLES
        docs = dict(fixup_docs(CASES[name]))
        assert {"pegase_unlimited_trafos", "pegase_unlimited_lines", "pegase_costs"} <= set(docs)
    assert CASES["case1354pegase_fixed+ramps+storage"].source == "case1354pegase_fixed"
    assert CARBON_CASE in EXAMPLES
    # no benchmark script builds a pandapower case of its own any more
    for script in (ROOT / "benchmarks").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        assert not re.search(r"\bpn\.case\w*\(", text), script.name
        if script.name != "registry.py":
            assert "load_case(" not in text, script.name
            assert "spread_feeders(td" not in text, script.name


def test_plain_pegase_fails_naming_the_fixed_variant(capsys):
    assert FIXED_VARIANTS["case1354pegase"] == "case1354pegase_fixed"
    assert main(["solve", "case1354pegase"]) == EXIT_INFEASIBLE
    err = capsys.readouterr().err
    assert "infeasible" in err and "'case1354pegase_fixed'" in err
    with pytest.raises(nodalopt.InfeasibleError, match="case1354pegase_fixed") as exc:
        nodalopt.solve("case1354pegase")
    assert exc.value.shortfall  # the elastic report is kept
    assert main(["solve", "case1354pegase_fixed"]) == EXIT_OK


# ------------------------------------------------------------ README case names
def _params() -> list[object]:
    out = []
    for name in readme_case_names():
        marks = [pytest.mark.slow] if name.startswith("case9241") or "4917" in name else []
        if name == "case2869pegase":  # documented as infeasible; case1354pegase checks the same path
            marks = [pytest.mark.slow]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def test_readme_names_are_found():
    names = readme_case_names()
    assert {"case9", "case118", "case118_200mva", "case1354pegase_fixed", "case9241pegase_fixed",
            "pglib_opf_case5_pjm", "case33bw_der"} <= set(names)
    # plain PEGASE names appear only where the README says they are infeasible as shipped
    for plain in {"case1354pegase", "case2869pegase", "case9241pegase"} & set(names):
        assert len(re.findall(rf"(?<![\w./-]){plain}(?!\w)", README)) == 1, plain


@pytest.mark.parametrize("name", _params())
def test_every_case_named_in_the_readme_solves(name, capsys):
    if name.startswith("pglib_opf_") and pglib_dir() is None:
        pytest.skip("../shared/pglib is absent")
    if name in feeder_names() and name not in EXAMPLES and not hasattr(pn, name):
        # a feeder (``--feeders NAME:COUNT``): solved as the README's command does, under case118_200mva
        assert main(["solve", "case118_200mva", "--hours", "24", "--feeders", f"{name}:1"]) == EXIT_OK
        return
    if name in FIXED_VARIANTS:  # the README says: infeasible as shipped, the error names the fix
        with pytest.raises(nodalopt.InfeasibleError, match=f"'{FIXED_VARIANTS[name]}'"):
            nodalopt.solve(name)
        return
    # PGLib cases with PowerModels' branch model, as the README's PGLib results use
    ds = nodalopt.solve(name, dc_model="pglib" if name.startswith("pglib_opf_") else "pandapower")
    assert ds.attrs["status"] == "optimal"
    assert np.isfinite(ds.lmp.values).all()


# ------------------------------------------------------------ carbon example, CO2 cap
def test_readme_carbon_example_runs_as_written():
    section = README.split("## Carbon-aware prices", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    ns: dict[str, object] = {"nodalopt": nodalopt}
    exec(code.group(1), ns)  # noqa: S102 - our own README
    ds = ns["ds"]
    assert ds.attrs["co2_cap_price"] == pytest.approx(51.6, abs=0.05)  # as the README says
    assert ds.attrs["total_emissions_t"] == pytest.approx(60_000.0, rel=1e-6)


def two_bus_dirty_clean() -> object:
    """Load 100 MW at bus 1; a cheap emitting unit (1 t/MWh) and a dear clean one limited to 60 MW."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110) for _ in range(2)]
    pp.create_line_from_parameters(net, b[0], b[1], 10, r_ohm_per_km=0.01, x_ohm_per_km=0.4, c_nf_per_km=0,
                                   max_i_ka=2.0)
    pp.create_gen(net, b[0], p_mw=0, min_p_mw=0, max_p_mw=200, controllable=True, slack=True)
    pp.create_gen(net, b[1], p_mw=0, min_p_mw=0, max_p_mw=60, controllable=True)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20.0)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=80.0)
    pp.create_load(net, b[1], p_mw=100.0)
    return net


def test_infeasible_co2_cap_gives_the_lowest_reachable_emissions_by_hand():
    net = two_bus_dirty_clean()
    # lowest: the clean unit at 60 MW, the dirty one at 40 MW -> 40 t/h, 80 t over two 1-hour periods
    prof = {("load", "p_mw"): np.array([1.0, 1.0])}
    with pytest.raises(nodalopt.InfeasibleError, match=r"CO2 cap of 50 tCO2 is infeasible.* 80 tCO2") as exc:
        nodalopt.solve(net, hours=2, profiles=prof, co2_cap=50.0, emission_factors=[1.0, 0.0])
    assert "no shedding/spilling pattern" not in str(exc.value)  # it used to blame storage and ramps
    ds = nodalopt.solve(net, hours=2, profiles=prof, co2_cap=80.0 + 1e-3, emission_factors=[1.0, 0.0])
    assert ds.attrs["total_emissions_t"] == pytest.approx(80.0, abs=1e-2)


def test_infeasible_co2_cap_on_case118_matches_a_very_high_carbon_price():
    net = nodalopt.load_case("case118")
    with pytest.raises(nodalopt.InfeasibleError, match="CO2 cap of 12000 tCO2 is infeasible") as exc:
        nodalopt.solve(net, hours=24, co2_cap=12_000.0, emission_factors="synthetic")
    m = re.search(r"lowest emissions any feasible dispatch reaches are ([0-9.e+]+) tCO2", str(exc.value))
    assert m is not None
    lowest = float(m.group(1))
    # reference: at 1e5 $/tCO2 the dispatch minimizes emissions (cost is a 1e-3 tie-breaker)
    ref = nodalopt.solve(net, hours=24, carbon_price=1e5, emission_factors="synthetic")
    assert lowest == pytest.approx(ref.attrs["total_emissions_t"], rel=1e-5)
    assert lowest == pytest.approx(51_854.3, rel=1e-5)  # the README's number
    uncapped = nodalopt.solve(net, hours=24, emission_factors="synthetic")
    assert uncapped.attrs["total_emissions_t"] == pytest.approx(73_605, rel=1e-4)
