"""The default solver: cvxpy's Clarabel interface plus the cost-singleton presolve (dcopf.solver).

The reduction must be an equivalence: the same primal point, the same duals (including the
dual of the row it removes) and the same objective as plain CLARABEL, and it must survive
cvxpy's warm re-solve (``update()`` of the cached solver) with new parameter values.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import nodalopt
from nodalopt.dcopf.model import CLARABEL_DEFAULTS
from nodalopt.dcopf.solver import PresolvedClarabel, find_singletons

TIGHT = {**CLARABEL_DEFAULTS, "tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11}


def _qp():
    """A small QP with the model's shape: a parameterised linear cost through free variables."""
    x = cp.Variable(4)
    cost = cp.Variable(2)  # two cost singletons, as lin_cost over two periods
    c1 = cp.Parameter(4)
    c1.value = np.array([10.0, 20.0, 30.0, 5.0])
    rhs = cp.Parameter(nonneg=True)
    rhs.value = 7.0
    cons = [cost[0] == c1[:2] @ x[:2], cost[1] == c1[2:] @ x[2:], cp.sum(x) == rhs,
            x >= 0, x <= 3, x[0] - x[3] <= 1]
    obj = cp.sum(cost) + cp.quad_form(x, sp.diags([1.0, 0.0, 2.0, 0.5]), assume_PSD=True)
    return cp.Problem(cp.Minimize(obj), cons), x, cost, c1, rhs


def _solve(solver):
    prob, x, cost, c1, rhs = _qp()
    prob.solve(solver=solver, **TIGHT)
    return prob, x, cost


def test_singletons_are_found_from_structure():
    # column 0: one entry in equality row 1 with a cost -> eliminated; column 1: in P; column 2:
    # no cost; column 3: one entry, but in an inequality row; column 4 shares row 1 with column 0
    A = sp.csc_matrix(np.array([[0, 1, 1, 0, 0], [2, 1, 0, 0, 1], [0, 0, 1, 1, 0]], float))
    P = sp.csc_matrix(([1.0], ([1], [1])), shape=(5, 5))
    c = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    red = find_singletons(A, P, c, n_zero=2)
    assert red.cols.tolist() == [0] and red.rows.tolist() == [1]
    assert red.keep_cols.tolist() == [1, 2, 3, 4] and red.keep_rows.tolist() == [0, 2]


def test_presolved_equals_plain_clarabel():
    ref, xr, cr = _solve("CLARABEL")
    pre, xp, cpv = _solve(PresolvedClarabel())
    assert ref.status == pre.status == cp.OPTIMAL
    assert pre.value == pytest.approx(ref.value, rel=1e-9)
    np.testing.assert_allclose(xp.value, xr.value, atol=1e-7)
    np.testing.assert_allclose(cpv.value, cr.value, atol=1e-6)  # the substituted variables
    for a, b in zip(pre.constraints, ref.constraints, strict=True):
        np.testing.assert_allclose(a.dual_value, b.dual_value, atol=1e-6)  # the removed rows too


def test_warm_resolve_with_new_parameters():
    prob, x, cost, c1, rhs = _qp()
    solver = PresolvedClarabel()
    prob.solve(solver=solver, **TIGHT)
    c1.value = np.array([1.0, 40.0, 3.0, 50.0])
    rhs.value = 5.0
    prob.solve(solver=solver, warm_start=True, **TIGHT)  # cvxpy update()s the cached Clarabel
    fresh, xf, cf, c1f, rhsf = _qp()
    c1f.value, rhsf.value = c1.value, rhs.value
    fresh.solve(solver="CLARABEL", **TIGHT)
    assert prob.value == pytest.approx(fresh.value, rel=1e-9)
    np.testing.assert_allclose(x.value, xf.value, atol=1e-7)
    np.testing.assert_allclose(prob.constraints[2].dual_value, fresh.constraints[2].dual_value, atol=1e-6)


def test_infeasible_problem_is_reported_as_infeasible():
    prob, x, cost, c1, rhs = _qp()
    rhs.value = 20.0  # four units of at most 3
    prob.solve(solver=PresolvedClarabel(), **CLARABEL_DEFAULTS)
    assert prob.status == cp.INFEASIBLE


def test_model_prices_match_plain_clarabel():
    """The whole DC-OPF: default solver vs plain CLARABEL (no presolve) on a congested case."""
    from test_rundcopp import congest

    net = nodalopt.load_case("case118")
    congest(net, 4, 0.8)
    model = nodalopt.DCOPF(net)
    a = model.solve()  # default: PresolvedClarabel
    assert a.attrs["solver"] == "CLARABEL"
    b = model._built  # the same compiled problem, parameters as set by the solve above
    b.problem.solve(solver="CLARABEL", **model.solver_options)
    assert b.problem.status == cp.OPTIMAL
    lam = np.asarray(b.balance.dual_value, float).ravel() / model.dt
    unique = a.lmp_unique.values[0]  # case118's bus 8 sits between two binding lines: any price
    assert unique.sum() >= unique.size - 2  # in an interval is optimal (PEER-NOTES pitfall 3)
    np.testing.assert_allclose(a.lmp.values[0][unique], lam[model.net.bus_node][unique], atol=1e-4)
    assert a.attrs["objective"] == pytest.approx(b.problem.value, rel=1e-8)
    assert np.ptp(a.lmp.values) > 1.0  # congested: the comparison covers differing prices


def _congested_118():
    from test_rundcopp import congest

    net = nodalopt.load_case("case118")
    congest(net, 4, 0.8)
    return net


def test_inaccurate_solve_is_retried_with_plain_clarabel(monkeypatch):
    """A presolved solve that is not optimal gets one more try through cvxpy's plain interface."""
    net = _congested_118()
    ref = nodalopt.solve(net, hours=3)
    assert ref.attrs["solver_retries"] == 0
    spoiled = {**PresolvedClarabel.STATUS_MAP, "Solved": cp.OPTIMAL_INACCURATE}
    monkeypatch.setattr(PresolvedClarabel, "STATUS_MAP", spoiled)  # the presolved interface only
    ds = nodalopt.solve(net, hours=3)  # uncoupled: one compiled period, solved 3 times
    assert ds.attrs["status"] == "optimal" and ds.attrs["solver_retries"] == 3
    unique = ref.lmp_unique.values
    np.testing.assert_allclose(ds.lmp.values[unique], ref.lmp.values[unique], atol=1e-4)


def test_no_prices_when_the_retry_fails_too(monkeypatch):
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

    from nodalopt.errors import SolverError

    net = _congested_118()
    monkeypatch.setitem(CLARABEL.STATUS_MAP, "Solved", cp.OPTIMAL_INACCURATE)  # both interfaces
    with pytest.raises(SolverError, match="optimal_inaccurate.*no prices"):
        nodalopt.solve(net)


def test_joint_fallback_that_does_not_fit_is_a_clear_error(monkeypatch):
    """A failing period falls back to the joint horizon; if that cannot be built, the error says so."""
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

    from nodalopt.errors import SolverError

    model = nodalopt.DCOPF(_congested_118(), hours=3)
    monkeypatch.setitem(CLARABEL.STATUS_MAP, "Solved", cp.OPTIMAL_INACCURATE)
    assert model._built.T == 1  # uncoupled periods: one compiled period
    build = model._build

    def joint_too_big(shed: bool, elastic: bool, T: int):
        if T == 3:
            raise MemoryError("Unable to allocate 15.2 GiB")
        return build(shed=shed, elastic=elastic, T=T)

    monkeypatch.setattr(model, "_build", joint_too_big)
    with pytest.raises(SolverError, match=r"period 0 of 3 .*'optimal_inaccurate'.*joint 3-period problem, does "
                                          r"not fit in memory") as err:
        model.solve()
    assert err.value.status == cp.OPTIMAL_INACCURATE
