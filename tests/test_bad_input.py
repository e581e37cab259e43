"""Bad input gets a clear error naming the element and the column (one test per case)."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from helpers import three_bus

import nodalopt
from nodalopt.errors import InputError


def solve(net, **kw):
    return nodalopt.solve(net, **kw)


def test_islanded_load_without_generation():
    net = three_bus()
    b = pp.create_bus(net, 110)
    pp.create_load(net, b, p_mw=5)
    with pytest.raises(InputError, match=r"islanded load.*load:1"):
        solve(net)


def test_zero_reactance():
    net = three_bus()
    net.line.at[1, "x_ohm_per_km"] = 0.0
    with pytest.raises(InputError, match=r"x_ohm_per_km.*line:1"):
        solve(net)


def test_negative_reactance_is_a_warning():
    net = three_bus()
    net.line.at[0, "x_ohm_per_km"] = -0.1
    with pytest.warns(UserWarning, match=r"negative reactance.*line:0"):
        ds = solve(net)
    assert ds.attrs["status"] == "optimal"


def test_cancelling_negative_reactance_is_an_error():
    # bus 3 hangs on two parallel lines with x and -x: connected, but B fixes no angle there
    net = three_bus()
    b3 = pp.create_bus(net, 110)
    for x in (0.4, -0.4):
        pp.create_line_from_parameters(net, 0, b3, 10, r_ohm_per_km=0.01, x_ohm_per_km=x, c_nf_per_km=0,
                                       max_i_ka=1.0)
    pp.create_load(net, b3, p_mw=10)
    with pytest.warns(UserWarning, match="negative reactance"), \
            pytest.raises(InputError, match=r"susceptances cancel.*negative reactance on line:4"):
        solve(net)


def test_self_loop():
    net = three_bus()
    net.line.at[2, "to_bus"] = net.line.at[2, "from_bus"]
    with pytest.raises(InputError, match=r"line:2.*itself"):
        solve(net)


def test_missing_cost():
    net = three_bus()
    net.poly_cost = net.poly_cost[net.poly_cost.et != "gen"]
    # issue 12: pandapower's rule (cost 0) is the default; strict=True refuses it
    with pytest.raises(InputError, match=r"no cost row.*gen:0"):
        solve(net, strict=True)


def test_nan_in_limits():
    net = three_bus()
    net.gen.at[0, "max_p_mw"] = np.nan
    # issue 12: pandapower's rule (no limit) is the default; strict=True refuses it
    with pytest.raises(InputError, match=r"net.gen: 'max_p_mw' missing or NaN.*gen:0"):
        solve(net, strict=True)


def test_inf_in_limits():
    net = three_bus()
    net.gen.at[0, "min_p_mw"] = -np.inf
    with pytest.raises(InputError, match=r"'min_p_mw'.*gen:0"):
        solve(net)


def test_nan_in_profile():
    net = three_bus()
    prof = pd.DataFrame({0: [300.0, np.nan, 280.0]})
    with pytest.raises(InputError, match=r"profile \('load', 'p_mw'\).*load:0 at row 1"):
        solve(net, profiles={("load", "p_mw"): prof})


def test_pmin_above_pmax():
    net = three_bus()
    net.gen.at[0, "min_p_mw"] = 600.0
    with pytest.raises(InputError, match=r"'min_p_mw' > 'max_p_mw' for gen:0"):
        solve(net)


def test_pmin_above_pmax_in_profile():
    net = three_bus()
    with pytest.raises(InputError, match=r"min_p_mw > max_p_mw for gen:0 at period 1"):
        solve(net, profiles={("gen", "max_p_mw"): pd.DataFrame({0: [500.0, -1.0]})})


@pytest.mark.parametrize(("column", "value"), [("max_i_ka", 0.0), ("max_i_ka", -1.0),
                                               ("max_loading_percent", 0.0)])
def test_zero_or_negative_rating(column, value):
    net = three_bus()
    net.line.at[2, column] = value
    with pytest.raises(InputError, match=rf"'{column}' is zero or negative for line:2"):
        solve(net)


def test_zero_transformer_rating():
    net = three_bus()
    lv = pp.create_bus(net, 20)
    pp.create_transformer(net, 2, lv, "25 MVA 110/20 kV")
    net.trafo.at[0, "sn_mva"] = 0.0
    with pytest.raises(InputError, match=r"'sn_mva' is zero or negative for trafo:0"):
        solve(net)


def test_unknown_bus_reference():
    net = three_bus()
    net.load.at[0, "bus"] = 999
    with pytest.raises(InputError, match=r"net.load: column 'bus' refers to unknown bus id\(s\) \[999\] for load:0"):
        solve(net)


def test_no_reference_bus():
    net = three_bus()
    net.ext_grid.at[0, "in_service"] = False
    with pytest.raises(InputError, match=r"no reference bus.*ext_grid"):
        solve(net)


def test_duplicate_bus_ids_matpower(tmp_path, pglib):
    text = (pglib / "pglib_opf_case5_pjm.m").read_text()
    # make bus 2 claim id 1
    text = text.replace("\t2\t 1\t 300.0", "\t1\t 1\t 300.0", 1)
    p = tmp_path / "dup.m"
    p.write_text(text)
    with pytest.raises(InputError, match=r"duplicate id\(s\) in 'BUS_I': \[1\]"):
        nodalopt.solve(p)


def test_matpower_missing_gencost(tmp_path, pglib):
    text = (pglib / "pglib_opf_case5_pjm.m").read_text()
    start = text.index("mpc.gencost")
    end = text.index("];", start) + 2
    p = tmp_path / "nocost.m"
    p.write_text(text[:start] + text[end:])
    with pytest.raises(InputError, match=r"missing cost data.*gencost"):
        nodalopt.solve(p)


def test_unknown_profile_key_lists_valid_ones():
    with pytest.raises(InputError, match=r"valid keys"):
        solve(three_bus(), profiles={("line", "max_i_ka"): [1.0]})


def test_profile_names_unknown_element():
    with pytest.raises(InputError, match=r"load:7"):
        solve(three_bus(), profiles={("load", "p_mw"): pd.DataFrame({7: [1.0]})})


@pytest.mark.parametrize("kw", [{"period_hours": 0}, {"hours": 0}, {"solver": "NOPE"},
                                {"dc_model": "ac"}, {"voll": -1}])
def test_bad_options(kw):
    with pytest.raises(InputError):
        solve(three_bus(), **kw)


def test_unsupported_element_table():
    net = three_bus()
    # issue 12 made dcline supported; a motor is still not modelled
    pp.create_motor(net, 2, pn_mech_mw=1.0, cos_phi=0.9)
    with pytest.raises(InputError, match=r"'motor'.*motor:0"):
        solve(net)


def test_hostile_json_is_refused(tmp_path):
    p = tmp_path / "evil.json"
    p.write_text('{"_module": "os", "_class": "system", "_object": "echo hi"}')
    with pytest.raises(InputError, match=r"refuses to load object of module 'os'"):
        nodalopt.load_case(p)


def test_unknown_case_name():
    with pytest.raises(InputError, match=r"unknown case 'case_nope'"):
        nodalopt.load_case("case_nope")
