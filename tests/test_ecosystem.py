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
