"""Carbon in the dispatch: carbon price, CO2 cap, price components and emission tensors."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest

import nodalopt
from nodalopt.cli import main


def coal_and_gas(c2: float = 0.0, load: float = 100.0):
    """One bus: coal 20 $/MWh 1.0 tCO2/MWh, gas 40 $/MWh 0.4 tCO2/MWh (break-even at 33.3 $/t)."""
    net = pp.create_empty_network(name="coal_gas")
    b = pp.create_bus(net, 110)
    b2 = pp.create_bus(net, 110)
    pp.create_line_from_parameters(net, b, b2, 1, 0.01, 0.3, 0, 5.0)
    pp.create_gen(net, b, p_mw=0, min_p_mw=0, max_p_mw=150, slack=True, co2_t_per_mwh=1.0)
    pp.create_gen(net, b, p_mw=0, min_p_mw=0, max_p_mw=150, co2_t_per_mwh=0.4)
    pp.create_load(net, b2, p_mw=load)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20, cp2_eur_per_mw2=c2)
    pp.create_poly_cost(net, 1, "gen", cp1_eur_per_mw=40, cp2_eur_per_mw2=c2)
    return net


def test_carbon_price_switches_merit_order():
    net = coal_and_gas()
    low = nodalopt.solve(net, carbon_price=10.0)
    assert low.p_gen.values[0].tolist() == pytest.approx([100, 0], abs=1e-4)
    high = nodalopt.solve(net, carbon_price=50.0)
    assert high.p_gen.values[0].tolist() == pytest.approx([0, 100], abs=1e-4)
    base = nodalopt.solve(net, carbon_price=0.0)
    # while coal stays marginal: lmp(pi) - lmp(0) = pi * lme, lme = 1.0
    np.testing.assert_allclose(low.lme.values, 1.0, atol=1e-6)
    np.testing.assert_allclose(low.lmp.values - base.lmp.values, 10.0 * low.lme.values, atol=1e-5)
    np.testing.assert_allclose(high.lme.values, 0.4, atol=1e-6)
    np.testing.assert_allclose(high.lmp.values, 40 + 0.4 * 50, atol=1e-5)
    np.testing.assert_allclose(high.lmp_carbon.values, 50 * 0.4, atol=1e-5)
    assert high.attrs["total_emissions_t"] == pytest.approx(40.0, abs=1e-3)


def test_components_add_up_with_carbon_on_congested_case118():
    net = nodalopt.load_case("case118_200mva")
    ds = nodalopt.solve(net, carbon_price=40.0, emission_factors="synthetic")
    total = ds.lmp_energy + ds.lmp_congestion + ds.lmp_carbon
    np.testing.assert_allclose(ds.lmp.values, total.values, atol=1e-6)
    u = ds.lme_unique.values
    np.testing.assert_allclose(ds.lmp_carbon.values[u], 40.0 * ds.lme.values[u], atol=1e-9)
    assert np.ptp(ds.lmp_carbon.values[u]) > 0  # carbon component differs across the network
    # carbon emission flow conserves emissions
    consumed = float((ds.demand * ds.carbon_intensity).sum())
    assert consumed == pytest.approx(float(ds.emissions.sum()), rel=1e-6)


def test_co2_cap_dual_is_the_carbon_price_that_gives_the_same_dispatch():
    net = coal_and_gas(c2=0.05)
    free = nodalopt.solve(net)
    cap = 0.8 * free.attrs["total_emissions_t"]
    capped = nodalopt.solve(net, co2_cap=cap)
    kappa = capped.attrs["co2_cap_price"]
    assert kappa > 1.0
    assert capped.attrs["total_emissions_t"] == pytest.approx(cap, rel=1e-6)
    priced = nodalopt.solve(net, carbon_price=kappa)
    np.testing.assert_allclose(priced.p_gen.values, capped.p_gen.values, atol=1e-3)
    np.testing.assert_allclose(priced.lmp.values, capped.lmp.values, atol=1e-3)


def test_missing_factors_are_an_error_when_carbon_is_asked_for():
    net = nodalopt.load_case("case9")
    with pytest.raises(nodalopt.InputError, match=r"no emission factor for .*gen:0"):
        nodalopt.solve(net, carbon_price=30.0)


def test_fuel_column_maps_through_the_factor_table():
    net = coal_and_gas()
    net.gen = net.gen.drop(columns="co2_t_per_mwh")
    net.gen["fuel"] = ["lignite", "gas_ccgt"]
    ds = nodalopt.solve(net, carbon_price=5.0)
    from nodalopt.carbon import factor_table

    tab = factor_table()
    np.testing.assert_allclose(ds.emissions.values[0], [100 * tab["lignite"], 0.0], atol=1e-4)


def test_cli_carbon_summary(capsys):
    assert main(["solve", "case118_200mva", "--carbon-price", "30", "--emission-factors", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "emissions" in out and "LME" in out and "carbon intensity" in out
