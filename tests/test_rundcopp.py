"""LMPs equal pandapower's rundcopp (PYPOWER DC-OPF, interior point) on congested built-in cases."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandapower as pp
import pytest

import nodalopt


def congest(net, n_lines: int, factor: float) -> None:
    """Rate the ``n_lines`` most loaded lines at ``factor`` x their unconstrained flow (MW)."""
    ds = nodalopt.solve(net)
    flow = np.abs(ds.flow.values[0])
    names = ds.branch.values
    is_line = np.char.startswith(names.astype(str), "line:")
    top = np.argsort(-np.where(is_line, flow, -1))[:n_lines]
    net.line["max_loading_percent"] = np.nan
    for k in top:
        i = int(str(names[k]).split(":")[1])
        ln = net.line.loc[i]
        vn = net.bus.vn_kv.at[ln.from_bus]
        full = ln.max_i_ka * math.sqrt(3) * vn * ln.df * ln.parallel
        net.line.at[i, "max_loading_percent"] = 100 * factor * flow[k] / full


@pytest.mark.parametrize(("case", "n_lines", "factor"), [("case9", 1, 0.8), ("case30", 6, 0.9),
                                                          ("case118", 4, 0.8)])
def test_lmp_equals_rundcopp(case, n_lines, factor):
    net = nodalopt.load_case(case)
    congest(net, n_lines, factor)
    ds = nodalopt.solve(net)
    assert ds.attrs["status"] == "optimal"
    binding = [b for b in ds.attrs["binding_branches"].split(",") if b]
    assert len(binding) >= min(n_lines, 2), "the test case must be congested"
    assert np.ptp(ds.lmp.values) > 0.1, "congestion must separate prices"
    ref = copy.deepcopy(net)
    pp.rundcopp(ref)
    assert ref.OPF_converged
    lam = ref.res_bus.lam_p.loc[ds.bus.values].to_numpy()
    unique = ds.lmp_unique.values[0]
    # case118: bus 8 sits between two binding lines in series -> its price is an interval
    assert unique.sum() >= unique.size - 1
    np.testing.assert_allclose(ds.lmp.values[0][unique], lam[unique], atol=1e-3)
    assert ds.attrs["objective"] == pytest.approx(ref.res_cost, rel=1e-6)
