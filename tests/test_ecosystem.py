"""Meeting pandapower and PyPSA users where they are (issue 19): the typed front door,
logging and progress, CF-conformant netCDF, PyPSA networks in and results written back."""

from __future__ import annotations

import inspect

import pytest
from helpers import three_bus

import nodalopt
from nodalopt.errors import InputError


# ------------------------------------------------------------------ front door
def test_solve_signature_names_every_option():
    params = inspect.signature(nodalopt.solve).parameters
    for name in ("hours", "profiles", "period_hours", "voll", "solver", "solver_options", "dc_model", "start",
                 "demo_profiles", "carbon_price", "co2_cap", "emission_factors", "screening", "method",
                 "losses", "settings", "executor", "workers", "scheduler", "resume", "warm_start"):
        assert name in params, name
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].annotation is not inspect.Parameter.empty
        assert name in (nodalopt.solve.__doc__ or ""), f"{name} is not documented"


def test_misspelled_keyword_suggests_the_closest_name():
    with pytest.raises(InputError, match=r"'hour'.*did you mean 'hours'"):
        nodalopt.solve(three_bus(), hour=24)
    with pytest.raises(InputError, match=r"'carbon_prize'.*did you mean 'carbon_price'"):
        nodalopt.solve(three_bus(), carbon_prize=50.0)


def test_feeder_options_on_a_plain_network_are_refused():
    with pytest.raises(InputError, match=r"\['losses'\] apply to a TDNetwork"):
        nodalopt.solve(three_bus(), losses=False)
    with pytest.raises(InputError, match=r"method.*TDNetwork"):
        nodalopt.solve(three_bus(), method="admm")


def test_named_options_reach_the_model():
    ds = nodalopt.solve(three_bus(), hours=2, period_hours=0.5, voll=1000.0, start="2031-05-01")
    assert ds.sizes["time"] == 2 and ds.attrs["period_hours"] == 0.5
    assert str(ds.time.values[0])[:10] == "2031-05-01"


# ------------------------------------------------------------------ CF netCDF
def test_netcdf_follows_cf_conventions(tmp_path):
    """Every unit parses with udunits (cf_units) and cf_xarray's pint registry, money has a currency,
    every variable and coordinate has a long_name, and cf_xarray finds the time axis."""
    cf_units = pytest.importorskip("cf_units")
    cfx = pytest.importorskip("cf_xarray.units")
    import xarray as xr

    ds = nodalopt.solve("case9", hours=2, carbon_price=30.0, emission_factors="synthetic")
    path = tmp_path / "r.nc"
    nodalopt.to_netcdf(ds, str(path))
    with xr.open_dataset(path) as f:
        assert f.attrs["Conventions"].startswith("CF-1.")
        assert f.cf.axes["T"] == ["time"] and f.cf.standard_names["time"] == ["time"]
        seen = 0
        for name in f.variables:
            attrs = f[name].attrs
            assert attrs.get("long_name"), f"{name} has no long_name"
            unit = attrs.get("units")
            if unit is None:
                continue
            seen += 1
            cf_units.Unit(unit)  # raises on anything udunits cannot parse ('$/MWh', 'MWh', 'tCO2/MWh')
            cfx.units.parse_units(unit)
        assert seen >= 15
        assert f.lmp.attrs["currency"] == "USD" and f.lmp.attrs["units_text"] == "USD/MWh"
        # the physical part of a price is per energy: USD/MWh -> 1/(MW h) converts to 1/(kW h) by 1e-3
        assert cf_units.Unit(f.lmp.attrs["units"]).convert(1.0, cf_units.Unit("1/(kW h)")) == pytest.approx(1e-3)
        assert cf_units.Unit(f.lme.attrs["units"]) == cf_units.Unit("kg/(kW h)")
    assert ds.lmp.attrs["units"] == "$/MWh"  # the in-memory Dataset is not modified
