"""nodalopt.plots: the drawn values, positions and branches are the dataset's."""

from __future__ import annotations

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import nodalopt  # noqa: E402
from nodalopt import plots  # noqa: E402
from nodalopt.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    import pandapower.networks as pn

    from nodalopt.distribution.examples import case33bw_der

    td = nodalopt.TDNetwork(nodalopt.load_case("case9"))
    td.add_feeder("f1", case33bw_der(), at_bus=4)
    td.add_feeder("f2", pn.case33bw(), at_bus=6, scale=0.5, replace=False)
    return nodalopt.solve(td, hours=2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _feeder(ds, name):
    return ds.dnode.values[ds.feeder.values == name]


def test_feeder_node_colours_are_the_dlmps(ds):
    ax = plots.plot_feeder(ds, "f1", time=1)
    nodes = plots.find_artist(ax, plots.NODES_GID)
    want = ds.dlmp.isel(time=1).sel(dnode=_feeder(ds, "f1")).values
    np.testing.assert_array_equal(nodes.get_array(), want)
    # colour of each node is the colour map at its own value
    ax.figure.canvas.draw()  # face colours are mapped at draw time
    rgba = nodes.get_facecolors()
    np.testing.assert_allclose(rgba, nodes.cmap(nodes.norm(want)), atol=1e-12)
    assert nodes.norm.vmin == want.min() and nodes.norm.vmax == want.max()
    # positions are the published layout, in the same order
    lay = plots.feeder_layout(ds, "f1")
    np.testing.assert_array_equal(nodes.get_offsets(), np.array([lay[d] for d in _feeder(ds, "f1")]))
    # a timestamp selects the same period; titles and colour bar carry feeder, time, variable and units
    ax2 = plots.plot_feeder(ds, "f1", time=ds.time.values[1])
    np.testing.assert_array_equal(plots.find_artist(ax2, plots.NODES_GID).get_array(), want)
    title = ax.get_title()
    assert "f1" in title and "01:00" in title and "dlmp" in title
    cbar_ax = ax.figure.axes[-1]
    assert "$/MWh" in cbar_ax.get_ylabel()


def test_feeder_edges_are_the_branches(ds):
    ax = plots.plot_feeder(ds, "f1", time=0)
    idx = np.flatnonzero(ds.feeder.values == "f1")
    n_branch = int((ds.dnode_branch.values[idx] != "").sum())
    segs = plots.find_artist(ax, plots.EDGES_GID).get_segments()
    assert len(segs) == n_branch == idx.size - 1 == 32
    lay = plots.feeder_layout(ds, "f1")
    labels = ds.dnode.values
    starts = {tuple(s[0]) for s in segs}
    ends = {tuple(s[-1]) for s in segs}
    for i in idx:
        p = ds.dnode_parent.values[i]
        if p >= 0:
            assert lay[labels[i]] in ends and lay[labels[p]] in starts
    # every segment ends at a distinct child
    assert len(ends) == n_branch
    sub = plots.find_artist(ax, plots.SUBSTATION_GID)
    root = labels[idx][ds.dnode_parent.values[idx] < 0]
    np.testing.assert_array_equal(sub.get_offsets(), [lay[root[0]]])


def test_tree_layout_is_tidy():
    # 0 -> 1 -> 2 -> 3 (trunk), 1 -> 4 (lateral), second root 5 -> 6
    x, y = plots.tree_layout([-1, 0, 1, 2, 1, -1, 5])
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 2, 0, 1])
    np.testing.assert_array_equal(y, [0, 0, 0, 0, -1, -2, -2])  # longest path stays on the top row
    # random forest: distinct positions, children one column right of their parent, never above it
    rng = np.random.default_rng(0)
    par = np.r_[-1, [rng.integers(0, k) for k in range(1, 400)], -1, 400 + rng.integers(0, 1, 50)]
    x, y = plots.tree_layout(par)
    assert len(set(zip(x, y, strict=True))) == par.size
    c = par >= 0
    np.testing.assert_array_equal(x[c], x[par[c]] + 1)
    assert (y[c] <= y[par[c]]).all()
    with pytest.raises(InputError, match="cycle"):
        plots.tree_layout([1, 2, 0])
    with pytest.raises(InputError, match="parent"):
        plots.tree_layout([-1, 5])


def test_explicit_layout(ds):
    lay = {int(d.split(":")[1]): (float(k), 2.0 * k) for k, d in enumerate(_feeder(ds, "f1"))}
    ax = plots.plot_feeder(ds, "f1", layout=lay, var="vm_pu", labels=False)
    off = plots.find_artist(ax, plots.NODES_GID).get_offsets()
    np.testing.assert_array_equal(off, np.array(list(lay.values())))
    assert "pu" in ax.figure.axes[-1].get_ylabel()
    lay.pop(5)
    with pytest.raises(InputError, match="f1:5"):
        plots.plot_feeder(ds, "f1", layout=lay)


def test_heatmap_is_the_dlmp_table(ds):
    ax = plots.plot_price_heatmap(ds, feeder="f1")
    img = plots.find_artist(ax, plots.HEATMAP_GID).get_array()
    order = plots.node_order(ds, feeder="f1")
    assert sorted(order) == sorted(_feeder(ds, "f1"))
    np.testing.assert_array_equal(img, ds.dlmp.sel(dnode=order).values.T)
    assert img.shape == (33, ds.sizes["time"])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(order)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["00:00", "01:00"]
    assert "$/MWh" in ax.figure.axes[-1].get_ylabel()
    # depth-first order: root first, every node after its parent, each lateral one block
    pos = {d: k for k, d in enumerate(order)}
    par = ds.dnode_parent.values
    names = ds.dnode.values
    assert par[list(names).index(order[0])] == -1
    for d in order[1:]:
        assert pos[names[par[list(names).index(d)]]] < pos[d]
    # all feeders: each feeder a contiguous block
    ax = plots.plot_price_heatmap(ds)
    img = plots.find_artist(ax, plots.HEATMAP_GID).get_array()
    order = plots.node_order(ds)
    np.testing.assert_array_equal(img, ds.dlmp.sel(dnode=order).values.T)
    f = ds.feeder.sel(dnode=order).values
    assert (f[:-1] != f[1:]).sum() == 1


def test_heatmap_of_transmission_lmp(ds):
    ax = plots.plot_price_heatmap(ds, var="lmp")
    np.testing.assert_array_equal(plots.find_artist(ax, plots.HEATMAP_GID).get_array(), ds.lmp.values.T)
    assert ax.get_ylabel() == "bus"
    with pytest.raises(InputError, match="feeder"):
        plots.plot_price_heatmap(ds, var="lmp", feeder="f1")


def test_bad_inputs_name_the_valid_choices(ds):
    for call in (lambda: plots.plot_feeder(ds, "nope"), lambda: plots.plot_price_heatmap(ds, feeder="nope")):
        with pytest.raises(ValueError, match=r"'nope'.*\['f1', 'f2'\]"):
            call()
    with pytest.raises(InputError, match="out of range"):
        plots.plot_feeder(ds, "f1", time=5)
    with pytest.raises(InputError, match="not a period"):
        plots.plot_feeder(ds, "f1", time="2031-01-01")
    with pytest.raises(InputError, match="dlmp"):
        plots.plot_feeder(ds, "f1", var="no_such_var")
    with pytest.raises(InputError, match="dnode"):
        plots.plot_feeder(ds, "f1", var="lmp")


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install nodalopt\[plots\]"):
        plots._pyplot()
