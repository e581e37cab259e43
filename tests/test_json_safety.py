"""Issue 13.1: a pandapower JSON case file never imports, instantiates or runs anything it names.

Each hostile file must give an InputError naming the file and the JSON key path, leave
nothing on disk and import nothing new; every file pandapower's own ``to_json`` writes
for the cases used in the tests and README must load to the same tables as pandapower's
reader and give the same prices.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd
import pytest
from helpers import three_bus, two_bus
from test_elements import multivoltage

import nodalopt
from nodalopt.cli import EXIT_INPUT, main
from nodalopt.errors import InputError
from nodalopt.network.pp_json import MAX_DEPTH

# -- helpers ---------------------------------------------------------------------------------------


@functools.cache
def _three_bus_json() -> str:
    return pp.to_json(three_bus())


def _doc() -> dict[str, Any]:
    """A fresh parsed copy of three_bus as pandapower.to_json writes it."""
    return json.loads(_three_bus_json())


def _split(doc: dict[str, Any], table: str) -> dict[str, Any]:
    return json.loads(doc["_object"][table]["_object"])


def _set_split(doc: dict[str, Any], table: str, split: dict[str, Any]) -> None:
    doc["_object"][table]["_object"] = json.dumps(split)


class _OpenOnUnpickle:
    """Unpickling this creates the file at ``path`` (builtins.open(path, "w"))."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def _warm(tmp_path_factory):
    """Everything a valid load imports is imported once, so a later new module is the file's doing."""
    good = tmp_path_factory.mktemp("warm") / "good.json"
    good.write_text(_three_bus_json())
    nodalopt.load_case(good)


@pytest.fixture
def trap(tmp_path, monkeypatch, _warm):
    """A marker path no payload may create, a pickle whose loading creates it, and an importable
    throwaway module (on sys.path) whose import creates it; plus the sys.modules and disk state."""
    marker = tmp_path / "PWNED"
    pkl = tmp_path / "payload.pkl"
    pkl.write_bytes(pickle.dumps(_OpenOnUnpickle(str(marker))))
    modname = f"nodalopt_evil_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{modname}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return {"marker": marker, "pkl": pkl, "modname": modname, "dir": tmp_path}


def _assert_refused(trap: dict[str, Any], doc_or_bytes: Any, *match: str, name: str = "evil.json") -> str:
    """Write the file, load it, require an InputError, and that nothing was created or imported."""
    path = trap["dir"] / name
    if isinstance(doc_or_bytes, bytes):
        path.write_bytes(doc_or_bytes)
    else:
        path.write_text(doc_or_bytes if isinstance(doc_or_bytes, str) else json.dumps(doc_or_bytes))
    files = set(os.listdir(trap["dir"]))
    modules = set(sys.modules)
    with pytest.raises(InputError) as err:
        nodalopt.load_case(path)
    msg = str(err.value)
    assert str(path) in msg
    for m in match:
        assert m in msg, msg
    assert set(sys.modules) == modules, set(sys.modules) ^ modules
    assert trap["modname"] not in sys.modules
    assert not trap["marker"].exists()
    assert set(os.listdir(trap["dir"])) == files
    return msg


def _payloads(trap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    m, pkl, mod = str(trap["marker"]), str(trap["pkl"]), trap["modname"]
    return {
        "builtins.eval": {"_module": "builtins", "_class": "eval", "_object": f"open({m!r}, 'w')"},
        "builtins.exec": {"_module": "builtins", "_class": "exec", "_object": f"open({m!r}, 'w')"},
        "os.system": {"_module": "os", "_class": "system", "_object": f"touch {m}"},
        "subprocess.Popen": {"_module": "subprocess", "_class": "Popen", "_object": ["touch", m]},
        "pickle.loads": {"_module": "pickle", "_class": "loads",
                         "_object": trap["pkl"].read_bytes().decode("latin-1")},
        "pandas.read_pickle": {"_module": "pandas", "_class": "read_pickle", "_object": pkl},
        "pandas.io.pickle.read_pickle": {"_module": "pandas.io.pickle", "_class": "read_pickle", "_object": pkl},
        "nested import": {"_module": mod, "_class": "Thing", "_object": "{}"},
        "function object": {"_module": "builtins", "_class": "function", "_object": "exec"},
        "pandapower function": {"_module": "pandapower.toolbox", "_class": "function", "_object": "drop_buses"},
        "pandapower controller": {"_module": "pandapower.control.controller.const_control",
                                  "_class": "ConstControl", "_object": "{}"},
        "numpy.load": {"_module": "numpy", "_class": "load", "_object": pkl},
    }


PAYLOADS = ["builtins.eval", "builtins.exec", "os.system", "subprocess.Popen", "pickle.loads", "pandas.read_pickle",
            "pandas.io.pickle.read_pickle", "nested import", "function object", "pandapower function",
            "pandapower controller", "numpy.load"]


# -- hostile files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_as_net_entry_is_refused(trap, payload):
    doc = _doc()
    doc["_object"]["evil"] = _payloads(trap)[payload]
    mod = _payloads(trap)[payload]["_module"]
    _assert_refused(trap, doc, "key path 'evil'", f"refuses to load object of module {mod!r}")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_inside_the_string_encoded_bus_table_is_refused(trap, payload):
    doc = _doc()
    split = _split(doc, "bus")
    split["data"][1][split["columns"].index("name")] = _payloads(trap)[payload]
    _set_split(doc, "bus", split)
    _assert_refused(trap, doc, "key path 'bus._object.data[1][0]'", "inside a table cell")


@pytest.mark.parametrize("payload", ["builtins.eval", "subprocess.Popen", "nested import", "function object"])
def test_payload_nested_in_plain_values_is_refused(trap, payload):
    doc = _doc()
    doc["_object"]["std_types"]["line"]["x"] = {"deep": [1, {"k": _payloads(trap)[payload]}]}
    _assert_refused(trap, doc, "key path 'std_types.line.x.deep[1].k'")


@pytest.mark.parametrize("payload", ["builtins.eval", "subprocess.Popen", "nested import", "pandas.read_pickle"])
def test_payload_in_place_of_the_net_or_a_table_is_refused(trap, payload):
    p = _payloads(trap)[payload]
    _assert_refused(trap, p, "(top level)", f"refuses to load object of module {p['_module']!r}")
    doc = _doc()
    doc["_object"]["bus"] = p
    _assert_refused(trap, doc, "key path 'bus'")
    if p["_module"] != "pandas":  # "pandas.DataFrame" is a header pandapower reads
        doc = _doc()
        doc["_object"]["bus"]["_module"] = p["_module"]  # a DataFrame header from another module
        _assert_refused(trap, doc, "key path 'bus'")


def test_table_object_must_be_the_json_pandas_writes(trap):
    """pandapower passes a table's extra keys to pandas.read_json and reads an absolute
    '*.json' _object as a path; here both are refused."""
    other = trap["dir"] / "other.json"
    other.write_text(json.dumps({"columns": ["a"], "index": [0], "data": [[1]]}))
    doc = _doc()
    doc["_object"]["bus"]["_object"] = str(other)
    _assert_refused(trap, doc, "key path 'bus._object'", "not valid JSON")
    doc = _doc()
    doc["_object"]["bus"]["storage_options"] = {"client_kwargs": {}}
    _assert_refused(trap, doc, "key path 'bus'", "storage_options")
    doc = _doc()
    doc["_object"]["bus"]["_object"] = [1, 2]
    _assert_refused(trap, doc, "key path 'bus._object'")
    doc = _doc()
    doc["_object"]["bus"]["orient"] = "records"
    _assert_refused(trap, doc, "key path 'bus'", "orient 'split'")
    doc = _doc()
    doc["_object"]["_ppc"] = {}
    _assert_refused(trap, doc, "key path '_ppc'", "internals")
    doc = _doc()
    doc["_object"]["bus"] = [[0, 110.0]]
    _assert_refused(trap, doc, "key path 'bus'", "pandapower keeps the table 'bus' here")


def test_deep_nesting_is_refused(trap):
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(_doc()).replace('"name": "three_bus"', f'"name": {deep}')
    assert deep in text
    _assert_refused(trap, text, f"nested deeper than {MAX_DEPTH} levels at line 1")
    # the same inside the JSON string of a table
    doc = _doc()
    split = _split(doc, "bus")
    split["data"][0][0] = "DEEP"
    doc["_object"]["bus"]["_object"] = json.dumps(split).replace('"DEEP"', deep)
    _assert_refused(trap, doc, f"nested deeper than {MAX_DEPTH} levels", "key path 'bus._object'")
    # a string full of brackets is not nesting
    doc = _doc()
    doc["_object"]["name"] = deep
    path = trap["dir"] / "brackets.json"
    path.write_text(json.dumps(doc))
    assert nodalopt.load_case(path).name == deep


def test_non_utf8_bytes_are_refused(trap):
    doc = _doc()
    doc["_object"]["name"] = "Zürich"
    raw = json.dumps(doc, ensure_ascii=False, indent=1).encode("latin-1")
    _assert_refused(trap, raw, "not UTF-8 (byte 0xfc at line ")


def test_bad_json_and_bad_values_are_input_errors(trap):
    _assert_refused(trap, json.dumps(_doc())[:-40], "not valid JSON")
    _assert_refused(trap, '{"_module": "pandapower.auxiliary", "_module": "os", "_class": "pandapowerNet", '
                    '"_object": {}}', "duplicate key '_module'")
    _assert_refused(trap, "[]", "top level is a JSON list")
    _assert_refused(trap, json.dumps(_doc()["_object"]), "pre-2.0 format")
    doc = _doc()  # a number where the file says float64: pandas would coerce the string silently
    split = _split(doc, "bus")
    split["data"][2][split["columns"].index("vn_kv")] = "110"
    _set_split(doc, "bus", split)
    _assert_refused(trap, doc, "key path 'bus._object.data[2][1]'", "column 'vn_kv' has dtype float64")
    doc = _doc()
    split = _split(doc, "line")
    split["data"][0][split["columns"].index("from_bus")] = -1
    _set_split(doc, "line", split)
    _assert_refused(trap, doc, "column 'from_bus' is not uint32")
    doc = _doc()
    doc["_object"]["bus"]["dtype"]["vn_kv"] = "datetime64[ns]"
    _assert_refused(trap, doc, "key path 'bus.dtype.vn_kv'", "dtype 'datetime64[ns]' is not read")
    doc = _doc()
    split = _split(doc, "load")
    split["data"][0] = split["data"][0][:-1]
    _set_split(doc, "load", split)
    _assert_refused(trap, doc, "key path 'load._object.data[0]'")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(trap):
    fifo = trap["dir"] / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"not a regular file"):
        nodalopt.load_case(fifo)


def test_cli_reports_a_hostile_json_as_bad_input(trap, capsys):
    doc = _doc()
    doc["_object"]["evil"] = _payloads(trap)["builtins.eval"]
    path = trap["dir"] / "evil_cli.json"
    path.write_text(json.dumps(doc))
    assert main(["solve", str(path), "-o", str(trap["dir"] / "out.nc")]) == EXIT_INPUT
    assert "refuses to load object of module 'builtins'" in capsys.readouterr().err
    assert not trap["marker"].exists()
    assert not (trap["dir"] / "out.nc").exists()


# -- files pandapower writes -----------------------------------------------------------------------


def _storage_ramps() -> Any:
    net = three_bus(limit_13=1e4)
    pp.create_storage(net, 2, p_mw=0, max_e_mwh=100, min_e_mwh=0, soc_percent=50, max_p_mw=40,
                      min_p_mw=-40, controllable=True)
    net.storage["charge_efficiency"] = 0.95
    net.gen["ramp_up_mw_per_h"] = [np.nan]
    net.ext_grid["ramp_up_mw_per_h"] = 30.0
    return net


def _pwl() -> Any:
    net = three_bus()
    net.poly_cost = net.poly_cost[net.poly_cost.et != "gen"]
    pp.create_pwl_cost(net, 0, "gen", [[0, 100, 15], [100, 500, 25]])
    net.ext_grid.at[0, "max_p_mw"] = 250.0
    return net


def _sgen_flexible_load() -> Any:
    net = three_bus(limit_13=1e4)
    pp.create_sgen(net, 2, p_mw=80.0, name="pv")
    li = pp.create_load(net, 1, p_mw=0.0, controllable=True, min_p_mw=0.0, max_p_mw=40.0, name="=flex")
    pp.create_poly_cost(net, li, "load", cp1_eur_per_mw=-45.0)
    net.poly_cost["cp2_eur_per_mw2"] = 0.01
    # pandapower negates a load's cost on the injection: a convex utility has a negative cp2
    net.poly_cost.loc[net.poly_cost.et == "load", "cp2_eur_per_mw2"] = -0.01
    return net


def _pegase1354() -> Any:
    net = nodalopt.load_case("case1354pegase")  # as in benchmarks/registry.py: unrated branches unlimited
    net.trafo["max_loading_percent"] = np.where(np.isclose(net.trafo.sn_mva, 99.999), np.nan, 100.0)
    net.line["max_loading_percent"] = np.where(net.line.max_i_ka >= 99999.0, np.nan, 100.0)
    return net


NETS = {
    "case9": lambda: nodalopt.load_case("case9"),
    "case30": lambda: nodalopt.load_case("case30"),
    "case118": lambda: nodalopt.load_case("case118"),
    "case300": lambda: nodalopt.load_case("case300"),
    "case1354pegase": _pegase1354,
    "case118_200mva": lambda: nodalopt.load_case("case118_200mva"),
    "two_bus": two_bus,
    "three_bus": three_bus,
    "multivoltage": multivoltage,  # trafo3w, impedance, xward, shunt, switches, sgens
    "storage_ramps": _storage_ramps,
    "pwl_cost": _pwl,
    "sgen_flexible_load": _sgen_flexible_load,
}


def _same(a: Any, b: Any, where: str) -> None:
    """Equal values of the same types; tables exactly (values, dtypes, index, Python types in object columns)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
        for c in a.columns[(a.dtypes == "object").to_numpy()]:
            assert list(map(type, a[c])) == list(map(type, b[c])), (where, c)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, float | np.floating) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def _assert_same_as_pandapower(ref: Any, mine: Any) -> None:
    assert set(ref.keys()) == set(mine.keys())
    for k in ref.keys():
        _same(ref[k], mine[k], k)


@pytest.mark.parametrize("name", list(NETS))
def test_pandapower_json_round_trip_same_tables_and_prices(tmp_path, name):
    net = NETS[name]()
    path = tmp_path / f"{name}.json"
    pp.to_json(net, str(path))
    loaded = nodalopt.load_case(path)
    # table for table what pandapower's own reader gives (so the same prices too), and the net written
    _assert_same_as_pandapower(pp.from_json(str(path), convert=False), loaded)
    assert pp.toolbox.nets_equal(net, loaded, check_only_results=False)
    ds, ds0 = nodalopt.solve(loaded), nodalopt.solve(copy.deepcopy(net))
    assert ds.attrs["status"] == ds0.attrs["status"] == "optimal"
    np.testing.assert_array_equal(ds.bus.values, ds0.bus.values)
    # against the net before writing: to_json keeps 15 significant digits, so unique prices agree
    # to 1e-9 and a degenerate one (case118_200mva bus 8, anywhere in its interval) to 1e-6
    u = ds0.lmp_unique.values
    np.testing.assert_array_equal(ds.lmp_unique.values, u)
    np.testing.assert_allclose(ds.lmp.values[u], ds0.lmp.values[u], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ds.lmp.values, ds0.lmp.values, rtol=0, atol=1e-6)
    assert ds.attrs["objective"] == pytest.approx(ds0.attrs["objective"], rel=1e-12)


def test_round_trip_of_the_other_structures_pandapower_writes(tmp_path):
    """numpy scalars and arrays, tuples, sets, frozensets, list cells (net.group), a dcline table,
    tables nested in a dict, an index name; and a numpy False stays False (pandapower's reader
    returns bool("false") == True)."""
    net = three_bus()
    pp.create_dcline(net, 0, 2, p_mw=10, loss_percent=0, loss_mw=0, vm_from_pu=1, vm_to_pu=1)
    net.sn_mva = np.float64(100.0)
    net.f_hz = np.int64(50)
    net["tags"] = {"a": (1, 2), "b": {1, 2}, "fs": frozenset({3}), "arr": np.arange(3.0),
                   "nan32": np.float32(np.nan), "u": np.uint8(7), "yes": np.bool_(True)}
    pp.create_group_from_dict(net, {"bus": [0, 1]}, name="g")
    prof = pd.DataFrame({"p": [1.0, 2.0]}, index=pd.Index([0, 1], name="time"))
    net["profiles"] = {"load.p_mw": prof}
    s = pp.to_json(net)
    path = tmp_path / "structures.json"
    path.write_text(s)
    loaded = nodalopt.load_case(path)
    _assert_same_as_pandapower(pp.from_json_string(s), loaded)
    assert loaded.group.element_index.iat[0] == [0, 1]
    assert isinstance(loaded.tags["arr"], np.ndarray) and loaded.tags["b"] == {1, 2}
    pd.testing.assert_frame_equal(loaded.profiles["load.p_mw"], prof)
    net["no"] = np.bool_(False)
    path.write_text(pp.to_json(net))
    assert nodalopt.load_case(path)["no"] is False
    assert pp.from_json(str(path))["no"] is True  # pandapower's own reader flips it


def test_loader_never_calls_pandapowers_json_reader(tmp_path, monkeypatch):
    """The net is built from plain values: pandapower's object hook is never used."""
    import pandapower.io_utils as iou

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("pandapower's JSON object hook was called")

    monkeypatch.setattr(iou, "pp_hook", boom)
    monkeypatch.setattr(pp, "from_json_string", boom)
    monkeypatch.setattr(pp, "from_json", boom)
    path = tmp_path / "n.json"
    path.write_text(pp.to_json(three_bus()))
    assert len(nodalopt.load_case(path).bus) == 3


def test_sys_path_module_is_importable_so_the_trap_is_real(trap):
    """Guards the trap itself: the throwaway module does create the marker when imported."""
    import importlib

    try:
        importlib.import_module(trap["modname"])
        assert trap["marker"].read_text() == "imported"
    finally:
        sys.modules.pop(trap["modname"], None)
        Path(trap["marker"]).unlink(missing_ok=True)
