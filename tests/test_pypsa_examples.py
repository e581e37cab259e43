"""Issue 19: element names as the index (point 3) and PyPSA's own networks as written (point 2).

The PyPSA example networks themselves (``examples/networks/...`` of PyPSA's repository) cannot be
fetched from a test; small networks built here in code carry the same features, checked against
PyPSA's own ``optimize()`` (HiGHS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import pypsa_or_skip as _pypsa

import nodalopt
from nodalopt.errors import InputError
from nodalopt.io import solve_csv_folder, write_csv_results


def _small(pypsa, T: int = 3):
    """Three buses named by text, a line and a transformer, two generators, a storage unit."""
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2030-01-01", periods=T, freq="h"))
    for b, v in (("Berlin", 380), ("Munich", 380), ("Hamburg", 110)):
        n.add("Bus", b, v_nom=v)
    n.add("Line", "B-M", bus0="Berlin", bus1="Munich", x=10.0, s_nom=60.0)
    n.add("Transformer", "M-H", bus0="Munich", bus1="Hamburg", x=0.1, s_nom=500.0)
    n.add("Transformer", "B-H", bus0="Berlin", bus1="Hamburg", x=0.1, s_nom=500.0)
    n.add("Generator", "cheap", bus="Berlin", p_nom=300, marginal_cost=10, marginal_cost_quadratic=0.01)
    n.add("Generator", "dear", bus="Munich", p_nom=300, marginal_cost=50, marginal_cost_quadratic=0.02)
    n.add("Load", "demand", bus="Munich", p_set=[150.0, 200.0, 120.0][:T])
    n.add("StorageUnit", "bat", bus="Hamburg", p_nom=10, max_hours=2)
    return n


# ============================================================ point 3: element names as the index
@pytest.mark.peers
def test_pypsa_names_are_the_index_with_positions_aside():
    pypsa = _pypsa()
    n = _small(pypsa)
    ds = nodalopt.solve(n)
    ref = _small(pypsa)
    ref.optimize(solver_name="highs", include_objective_constant=False)
    # what a PyPSA user writes: select by the network's own names
    ours = ds.lmp.to_pandas()[ref.buses_t.marginal_price.columns]
    np.testing.assert_allclose(ours.to_numpy(), ref.buses_t.marginal_price.to_numpy(), atol=1e-3)
    assert list(ds.bus.values) == ["Berlin", "Munich", "Hamburg"]
    assert list(ds.bus_pos.values) == [0, 1, 2]
    assert float(ds.lmp.sel(bus="Munich")[0]) == pytest.approx(float(ref.buses_t.marginal_price["Munich"].iloc[0]),
                                                             abs=1e-3)
    assert list(ds.gen.values) == ["cheap", "dear"] and list(ds.gen_pos.values) == [0, 1]
    gp = ds.p_gen.to_pandas()[ref.generators_t.p.columns]
    np.testing.assert_allclose(gp.to_numpy(), ref.generators_t.p.to_numpy(), atol=1e-2)
    assert list(ds.branch.values) == ["B-M", "M-H", "B-H"]
    assert list(ds.branch_component.values) == ["lines", "transformers", "transformers"]
    assert list(ds.branch_pos.values) == [0, 0, 1]
    flow = ds.flow.to_pandas()
    np.testing.assert_allclose(flow[ref.lines.index].to_numpy(), ref.lines_t.p0.to_numpy(), atol=1e-2)
    assert list(ds.storage.values) == ["bat"] and list(ds.storage_pos.values) == [0]


@pytest.mark.peers
def test_branch_names_shared_by_a_line_and_a_transformer_keep_their_component_prefix(tmp_path: Path):
    pypsa = _pypsa()
    n = _small(pypsa)
    n.add("Line", "M-H", bus0="Munich", bus1="Hamburg", x=5.0, s_nom=100.0, v_nom=110)
    n.lines.loc["M-H", "bus0"] = "Berlin"  # a line named like a transformer
    n.lines.loc["M-H", "bus1"] = "Munich"
    ds = nodalopt.solve(n)
    assert list(ds.branch.values) == ["line:B-M", "line:M-H", "transformer:M-H", "transformer:B-H"]
    assert list(ds.branch_name.values) == ["B-M", "M-H", "M-H", "B-H"]
    nodalopt.to_pypsa(ds, n)  # written back by component and name
    assert list(n.lines_t.p0.columns) == ["B-M", "M-H"]
    np.testing.assert_allclose(n.transformers_t.p0["M-H"].to_numpy(),
                               ds.flow.sel(branch="transformer:M-H").values)
    files = {p.name for p in write_csv_results(ds, tmp_path / "out")}
    assert {"lines-p0.csv", "transformers-p0.csv", "generators-p.csv"} <= files
    assert list(pd.read_csv(tmp_path / "out" / "transformers-p0.csv", index_col=0).columns) == ["M-H", "B-H"]


@pytest.mark.peers
def test_csv_folder_names_are_the_index(tmp_path: Path):
    pypsa = _pypsa()
    n = _small(pypsa)
    n.export_to_csv_folder(str(tmp_path / "net"))
    ds = solve_csv_folder(tmp_path / "net")
    direct = nodalopt.solve(n)
    for dim in ("bus", "gen", "branch", "storage"):
        assert list(ds[dim].values) == list(direct[dim].values)
        assert list(ds[f"{dim}_pos"].values) == list(direct[f"{dim}_pos"].values)
    np.testing.assert_array_equal(ds.lmp.values, direct.lmp.values)
    # numeric bus names stay names (strings), the position is aside
    m = pypsa.Network()
    for b in ("10", "20"):
        m.add("Bus", b, v_nom=110)
    m.add("Line", "l", bus0="10", bus1="20", x=1.0, s_nom=100)
    m.add("Generator", "g", bus="10", p_nom=100, marginal_cost=5)
    m.add("Load", "d", bus="20", p_set=50)
    ds = nodalopt.solve(m)
    assert list(ds.bus.values) == ["10", "20"] and list(ds.bus_pos.values) == [0, 1]
    assert float(ds.lmp.sel(bus="20")[0]) == pytest.approx(5.0, abs=1e-4)


def test_pandapower_bus_index_stays_with_names_aside():
    """Built-in cases name buses by MATPOWER number (1..n) while the index is 0..n-1: the index stays
    the ``bus`` coordinate (``ds.lmp.sel(bus=...)`` keeps its meaning), the names are ``bus_name``."""
    import pandapower.networks as pn

    net = pn.case9()
    ds = nodalopt.solve(net)
    assert list(ds.bus.values) == list(net.bus.index)
    assert list(ds.bus_name.values) == [str(x) for x in net.bus.name]
    assert ds.lmp.sel(bus=4).item() == ds.lmp.where(ds.bus_name == "5", drop=True).item()
    net.bus.loc[3, "name"] = net.bus.name.iloc[0]  # duplicate names: no bus_name coordinate
    assert "bus_name" not in nodalopt.solve(net).coords
    nodalopt.write_back(ds, pn.case9())  # the pandapower write-back still takes the result


def test_to_pypsa_refuses_a_pandapower_result_with_bus_names():
    pypsa = _pypsa()
    import pandapower.networks as pn

    with pytest.raises(InputError, match="not one of a pypsa.Network"):
        nodalopt.to_pypsa(nodalopt.solve(pn.case9()), _small(pypsa))


# ============================================================ point 2: PyPSA's networks as written
def _compare(n, ref, *, obj_rel: float = 1e-6, lmp_abs: float = 1e-3) -> object:
    """Solve ``n`` with nodalopt and ``ref`` (the same network) with PyPSA + HiGHS; compare."""
    ds = nodalopt.solve(n)
    ref.optimize(solver_name="highs", include_objective_constant=False)
    assert ds.attrs["objective"] == pytest.approx(ref.objective, rel=obj_rel)
    theirs = ref.buses_t.marginal_price
    ours = ds.lmp.to_pandas()[theirs.columns]
    unique = ds.lmp_unique.to_pandas()[theirs.columns].to_numpy()
    assert unique.any()
    err = np.abs(ours.to_numpy() - theirs.to_numpy())[unique]
    assert err.max() < lmp_abs, err.max()
    return ds


def _meshed_ac_dc(pypsa):
    """ac-dc-meshed in small: two AC areas joined by converters and a three-bus DC grid (DC lines with
    r only, as PyPSA models them) and a direct lossy link with a marginal cost."""
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2030-01-01", periods=3, freq="h"))
    for b in ("A1", "A2", "B1", "B2"):
        n.add("Bus", b, v_nom=380)
    for b in ("DC-A", "DC-B", "DC-C"):
        n.add("Bus", b, v_nom=200, carrier="DC")
    n.add("Line", "a", bus0="A1", bus1="A2", x=10.0, s_nom=500)
    n.add("Line", "b", bus0="B1", bus1="B2", x=12.0, s_nom=500)
    n.add("Line", "dc-ab", bus0="DC-A", bus1="DC-B", r=2.0, s_nom=80)
    n.add("Line", "dc-bc", bus0="DC-B", bus1="DC-C", r=3.0, s_nom=500)
    n.add("Line", "dc-ca", bus0="DC-C", bus1="DC-A", r=4.0, s_nom=500)
    for name, ac, dc in (("conv-A", "A2", "DC-A"), ("conv-B", "B1", "DC-B"), ("conv-C", "B2", "DC-C")):
        n.add("Link", name, bus0=ac, bus1=dc, p_nom=400, p_min_pu=-1.0, efficiency=1.0)
    n.add("Link", "direct", bus0="A1", bus1="B2", p_nom=60, p_min_pu=-1.0, efficiency=0.95, marginal_cost=0.5)
    n.add("Generator", "cheap", bus="A1", p_nom=600, marginal_cost=10, marginal_cost_quadratic=0.01)
    n.add("Generator", "dear", bus="B1", p_nom=600, marginal_cost=40, marginal_cost_quadratic=0.03)
    n.add("Load", "la", bus="A2", p_set=[100.0, 150.0, 80.0])
    n.add("Load", "lb", bus="B2", p_set=[300.0, 350.0, 250.0])
    return n


@pytest.mark.peers
def test_links_and_dc_lines_match_pypsa():
    pypsa = _pypsa()
    ds = _compare(_meshed_ac_dc(pypsa), ref := _meshed_ac_dc(pypsa))
    assert list(ds.dcline.values) == ["conv-A", "conv-B", "conv-C", "direct"]
    assert list(ds.dcline_component.values) == ["links"] * 4
    np.testing.assert_allclose(ds.p_dcline.to_pandas()[ref.links.index].to_numpy(), ref.links_t.p0.to_numpy(),
                               atol=1e-2)
    assert float(np.abs(ds.flow.sel(branch="dc-ab")).max()) == pytest.approx(80.0, abs=1e-3)  # DC line binds
    n = _meshed_ac_dc(pypsa)
    nodalopt.to_pypsa(ds, n)
    np.testing.assert_allclose(n.links_t.p1["direct"].to_numpy(), -0.95 * n.links_t.p0["direct"].to_numpy())


def _typed_line_network(pypsa):
    """Lines given by PyPSA standard type, length and num_parallel (no x column at all), transformers
    and generators without the columns PyPSA leaves at their defaults."""
    n = pypsa.Network()
    n.set_snapshots(pd.date_range("2030-01-01", periods=2, freq="h"))
    for b, v in (("a", 220), ("b", 220), ("c", 220), ("d", 380)):
        n.add("Bus", b, v_nom=v)
    n.add("Line", "ab", bus0="a", bus1="b", type="Al/St 240/40 2-bundle 220.0", length=40, num_parallel=2,
          s_nom=300)
    n.add("Line", "bc", bus0="b", bus1="c", type="Al/St 240/40 2-bundle 220.0", length=80, s_nom=300)
    n.add("Line", "ca", bus0="c", bus1="a", type="Al/St 240/40 2-bundle 220.0", length=60, s_nom=90)
    n.add("Transformer", "t", bus0="c", bus1="d", x=0.1, s_nom=600)
    n.add("Generator", "g1", bus="a", p_nom=500, marginal_cost=20, marginal_cost_quadratic=0.02)
    n.add("Generator", "g2", bus="d", p_nom=500, marginal_cost=50, marginal_cost_quadratic=0.04)
    n.add("Load", "l", bus="c", p_set=[250.0, 320.0])
    return n


@pytest.mark.peers
def test_standard_line_types_and_omitted_default_columns_match_pypsa(tmp_path: Path):
    pypsa = _pypsa()
    n = _typed_line_network(pypsa)
    n.export_to_csv_folder(str(tmp_path / "net"))
    header = (tmp_path / "net" / "lines.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "type" in header and "x" not in header  # PyPSA left x out: all its values are the default 0
    ds = _compare(n, _typed_line_network(pypsa))
    assert float(np.abs(ds.branch_mu.sel(branch="ca")).max()) > 1.0  # the typed line's limit binds
    # the folder PyPSA wrote gives the same prices
    np.testing.assert_allclose(solve_csv_folder(tmp_path / "net").lmp.values, ds.lmp.values, atol=1e-9)


@pytest.mark.peers
def test_omitted_columns_name_the_real_cause():
    pypsa = _pypsa()
    n = _typed_line_network(pypsa)
    n.lines["type"] = ""  # no type and no x: PyPSA's default x = 0
    with pytest.raises(InputError, match=r"lines.csv, line 1, column 'x': required column is missing: "
                                         r"PyPSA's default x = 0 .* or a standard line type"):
        nodalopt.solve(n)
    n = _typed_line_network(pypsa)
    n.lines.loc["bc", "type"] = "no such type"
    with pytest.raises(InputError, match=r"lines.csv, line 3, column 'type': not one of PyPSA's standard line"):
        nodalopt.solve(n)
    # benchmark-sp: extendable generators with p_nom left out -> the extendability is named, with the fix
    n = _typed_line_network(pypsa)
    n.generators["p_nom_extendable"] = True
    n.generators["p_nom"] = 0.0
    with pytest.raises(InputError, match=r"generators.csv, line 2, column 'p_nom_extendable'.*set p_nom .*"
                                         r"p_nom_extendable=False"):
        nodalopt.solve(n)
    n = _typed_line_network(pypsa)
    n.lines["s_nom_extendable"] = True
    with pytest.raises(InputError, match=r"column 's_nom_extendable'.*s_nom_opt"):
        nodalopt.solve(n)


@pytest.mark.peers
def test_carrier_missing_from_carriers_only_matters_for_carbon():
    pypsa = _pypsa()
    n = _typed_line_network(pypsa)
    n.add("Carrier", "gas", co2_emissions=0.2)
    n.generators["carrier"] = ["gas", "load shedding"]  # 'load shedding' is not in n.carriers
    ds = nodalopt.solve(n)  # no carbon asked for: solves
    assert ds.attrs["status"] == "optimal"
    with pytest.raises(InputError, match="load shedding"):
        nodalopt.solve(n, carbon_price=50.0)


@pytest.mark.peers
def test_no_marginal_emission_computation_when_no_unit_emits(monkeypatch):
    """scigrid-de's carriers have no co2_emissions (PyPSA's default 0): the LME is exactly 0 and is not
    computed (it took most of the time outside the solver: 417 dense eigh/svd calls on 585 buses)."""
    from nodalopt import carbon

    pypsa = _pypsa()
    n = _typed_line_network(pypsa)
    n.add("Carrier", "gas")  # co2_emissions left at PyPSA's default 0
    n.generators["carrier"] = "gas"

    def boom(*args, **kwargs):
        raise AssertionError("LME computed although no unit emits")

    monkeypatch.setattr(carbon, "locational_marginal_emissions", boom)
    ds = nodalopt.solve(n)
    assert float(np.abs(ds.lme).max()) == 0.0 and bool(ds.lme_unique.all())
    assert float(ds.attrs["total_emissions_t"]) == 0.0
