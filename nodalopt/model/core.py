"""Model parts: a model is stated once, as a labeled sparse QP, and handed to every consumer.

An element family (branches, generators, storage, feeders, EVs, ...) states its variables and
constraints *once* in a :class:`Statement`:

* **columns** are named blocks of ``count x T`` variables (element-major: column ``e * T + t``);
* **rows** are named blocks of ``count x T`` constraints (or ``count`` rows for per-element rows,
  such as an energy target over the horizon), ``lo <= A x <= hi`` (``lo == hi``: an equality);
* entries of ``A`` and of the (upper-triangular) quadratic cost ``P`` are added family by family,
  vectorized, with values for ``K`` copies at once (copies of one template share the
  pattern, e.g. the feeder copies of an ADMM group; ``K = 1`` for a single network);
* ``q`` is the linear cost.

From one statement come

* the **batched QP** of the ADMM feeder kernel (:meth:`Statement.qp_batch`, one pattern, ``K``
  value sets; :mod:`nodalopt.admm.qp`);
* the **stacked sparse QP** of all copies (:meth:`Statement.stacked`), which the centralized
  cvxpy model uses (:meth:`Statement.cvxpy_constraints`: one equality and one inequality
  family per row block, with the right-hand sides as DPP parameters so that a re-solve with
  new profiles does not recompile);
* the **active rows and KKT data** at a solution (:meth:`Statement.active_rows`,
  :meth:`Statement.row_values`) that marginal emissions and price explanations use;
* labeled read-back of solutions and duals by block name (:meth:`Statement.col_values`,
  :meth:`Statement.row_duals`).

No function here loops over elements or copies.  Units are the caller's (MW, $/h, pu).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # pragma: no cover
    import cvxpy as cp

    from ..admm.qp import QPBatch

INF = np.inf


@dataclass
class Layout:
    """Offsets of named column (variable) and row blocks within one copy.

    A block of ``count`` elements over ``T`` periods occupies ``count * T`` consecutive
    positions, element-major (``offset + e * T + t``); a block added with ``per_period=False``
    holds one position per element (``offset + e``).
    """

    T: int
    cols: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, count)
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    col_span: dict[str, int] = field(default_factory=dict)  # name -> periods per element (T or 1)
    row_span: dict[str, int] = field(default_factory=dict)
    n: int = 0
    m: int = 0

    def add_col(self, name: str, count: int, per_period: bool = True) -> None:
        span = self.T if per_period else 1
        self.cols[name] = (self.n, count)
        self.col_span[name] = span
        self.n += count * span

    def add_row(self, name: str, count: int, per_period: bool = True) -> None:
        span = self.T if per_period else 1
        self.rows[name] = (self.m, count)
        self.row_span[name] = span
        self.m += count * span

    def col(self, name: str, e: np.ndarray | int, t: np.ndarray | int = 0) -> np.ndarray:
        off, _ = self.cols[name]
        return np.asarray(off + np.asarray(e) * self.col_span.get(name, self.T) + np.asarray(t), dtype=np.int64)

    def row(self, name: str, e: np.ndarray | int, t: np.ndarray | int = 0) -> np.ndarray:
        off, _ = self.rows[name]
        return np.asarray(off + np.asarray(e) * self.row_span.get(name, self.T) + np.asarray(t), dtype=np.int64)

    def cslice(self, name: str) -> slice:
        off, c = self.cols[name]
        return slice(off, off + c * self.col_span.get(name, self.T))

    def rslice(self, name: str) -> slice:
        off, c = self.rows[name]
        return slice(off, off + c * self.row_span.get(name, self.T))

    def col_shape(self, name: str) -> tuple[int, int]:
        return self.cols[name][1], self.col_span.get(name, self.T)

    def row_shape(self, name: str) -> tuple[int, int]:
        return self.rows[name][1], self.row_span.get(name, self.T)


@dataclass
class Entries:
    """Sparse entries (row, column, values for ``K`` copies) added family by family."""

    K: int = 1
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)  # each (K, e)

    def add(self, r: np.ndarray, c: np.ndarray, v: np.ndarray | float) -> None:
        """Add entries; ``v`` is a scalar, ``(e,)`` (all copies) or ``(K, e)``."""
        r = np.asarray(r, np.int64).ravel()
        c = np.asarray(c, np.int64).ravel()
        vv = np.asarray(v, dtype=float)
        vv = np.broadcast_to(vv.reshape(vv.shape[0], -1) if vv.ndim >= 2 else vv.reshape(1, -1) if vv.ndim == 1
                             else vv.reshape(1, 1), (self.K, r.size))
        self.rows.append(r)
        self.cols.append(c)
        self.vals.append(np.ascontiguousarray(vv))

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        c = np.concatenate(self.cols) if self.cols else np.zeros(0, np.int64)
        v = np.concatenate(self.vals, axis=1) if self.vals else np.zeros((self.K, 0))
        return r, c, v

    def csc(self, shape: tuple[int, int], upper: bool = False
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, data (K, nnz)) with duplicates summed; pattern independent of the values."""
        r, c, v = self.coo()
        if upper:
            r, c = np.minimum(r, c), np.maximum(r, c)
        keyv = c * shape[0] + r
        order = np.argsort(keyv, kind="stable")
        ks = keyv[order]
        start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        data = np.add.reduceat(v[:, order], start, axis=1) if order.size else np.zeros((self.K, 0))
        uk = ks[start]
        rows_u, cols_u = uk % shape[0], uk // shape[0]
        indptr = np.zeros(shape[1] + 1, np.int64)
        np.add.at(indptr, cols_u + 1, 1)
        return np.cumsum(indptr), rows_u.astype(np.int64), np.ascontiguousarray(data)


@dataclass
class Statement:
    """One labeled sparse QP, ``K`` copies sharing its pattern:

        minimize  sum_k 1/2 x_k' P_k x_k + q_k' x_k   subject to  lo_k <= A_k x_k <= hi_k.

    Build it with :meth:`add_col` / :meth:`add_row` (the layout), then :attr:`A` / :attr:`P`
    entries (``P`` as entries of its upper triangle, duplicates summed) and the arrays
    :attr:`q`, :attr:`lo`, :attr:`hi` (allocated by :meth:`freeze`).
    """

    T: int
    K: int = 1
    layout: Layout = field(init=False)
    A: Entries = field(init=False)
    P: Entries = field(init=False)
    q: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)
    frozen: bool = False
    _cvx_rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, init=False)
    _cvx_scale: float = field(default=1.0, init=False)

    def __post_init__(self) -> None:
        self.layout = Layout(T=self.T)
        self.A = Entries(K=self.K)
        self.P = Entries(K=self.K)
        self.q = np.zeros((self.K, 0))
        self.lo = np.zeros((self.K, 0))
        self.hi = np.zeros((self.K, 0))

    # ----------------------------------------------------------------- layout
    def add_col(self, name: str, count: int, per_period: bool = True) -> None:
        self._unfrozen()
        self.layout.add_col(name, count, per_period)

    def add_row(self, name: str, count: int, per_period: bool = True) -> None:
        self._unfrozen()
        self.layout.add_row(name, count, per_period)

    def freeze(self) -> None:
        """Fix the layout and allocate ``q`` (zeros), ``lo`` (-inf) and ``hi`` (+inf)."""
        if self.frozen:
            return
        lay = self.layout
        self.q = np.zeros((self.K, lay.n))
        self.lo = np.full((self.K, lay.m), -INF)
        self.hi = np.full((self.K, lay.m), INF)
        self.frozen = True

    def _unfrozen(self) -> None:
        if self.frozen:
            raise RuntimeError("internal: the layout of a Statement is fixed once freeze() was called")

    # ----------------------------------------------------------------- statement helpers
    def set_rows(self, name: str, lo: np.ndarray | float, hi: np.ndarray | float) -> None:
        """Bounds of row block ``name``; arrays broadcast to ``(K, count * span)``."""
        self.freeze()
        s = self.layout.rslice(name)
        width = s.stop - s.start
        self.lo[:, s] = np.broadcast_to(np.asarray(lo, float).reshape(-1, width) if np.ndim(lo) else lo,
                                        (self.K, width))
        self.hi[:, s] = np.broadcast_to(np.asarray(hi, float).reshape(-1, width) if np.ndim(hi) else hi,
                                        (self.K, width))

    def set_equal(self, name: str, rhs: np.ndarray | float) -> None:
        self.set_rows(name, rhs, rhs)

    # ----------------------------------------------------------------- consumers
    def qp_batch(self) -> QPBatch:
        """The ``K`` copies as one batch of the batched QP solver (upper-triangular ``P``)."""
        from ..admm.qp import QPBatch, QPPattern

        self.freeze()
        lay = self.layout
        P = Entries(K=self.K, rows=list(self.P.rows), cols=list(self.P.cols), vals=list(self.P.vals))
        diag = np.arange(lay.n)  # every diagonal entry present: the pattern never depends on values
        P.add(diag, diag, 0.0)
        A_indptr, A_indices, A_data = self.A.csc((lay.m, lay.n))
        P_indptr, P_indices, P_data = P.csc((lay.n, lay.n), upper=True)
        pattern = QPPattern(n=lay.n, m=lay.m, P_indptr=P_indptr, P_indices=P_indices, A_indptr=A_indptr,
                            A_indices=A_indices)
        return QPBatch(pattern=pattern, P_data=P_data, A_data=A_data, q=np.ascontiguousarray(self.q),
                       l=np.ascontiguousarray(self.lo), u=np.ascontiguousarray(self.hi))

    def stacked(self) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
        """All copies as one QP (``P`` symmetric, ``A``, ``q``, ``lo``, ``hi``): copy ``k``'s
        column ``j`` is ``k * n + j`` and its row ``i`` is ``k * m + i`` (copy-major)."""
        self.freeze()
        lay, K = self.layout, self.K
        return (_block_diag(self.P, K, lay.n, lay.n, symmetric=True), _block_diag(self.A, K, lay.m, lay.n),
                self.q.ravel(), self.lo.ravel(), self.hi.ravel())

    def global_cols(self, name: str) -> np.ndarray:
        """(K, count * span) stacked column indices of block ``name``."""
        lay = self.layout
        s = lay.cslice(name)
        return np.arange(self.K)[:, None] * lay.n + np.arange(s.start, s.stop)[None, :]

    def global_rows(self, name: str) -> np.ndarray:
        """(K, count * span) stacked row indices of block ``name``."""
        lay = self.layout
        s = lay.rslice(name)
        return np.arange(self.K)[:, None] * lay.m + np.arange(s.start, s.stop)[None, :]

    def col_values(self, x: np.ndarray, name: str) -> np.ndarray:
        """(K, count, span) values of block ``name`` from a stacked (K*n,) or batched (K, n) solution."""
        lay = self.layout
        xs = np.asarray(x, float).reshape(self.K, lay.n)[:, lay.cslice(name)]
        return xs.reshape(self.K, *lay.col_shape(name))

    def row_duals(self, y: np.ndarray, name: str) -> np.ndarray:
        """(K, count, span) multipliers of row block ``name`` from stacked (K*m,) or (K, m) duals."""
        lay = self.layout
        ys = np.asarray(y, float).reshape(self.K, lay.m)[:, lay.rslice(name)]
        return ys.reshape(self.K, *lay.row_shape(name))

    def row_values(self, x: np.ndarray) -> np.ndarray:
        """``A x`` per copy, (K, m), from a stacked (K*n,) or batched (K, n) solution."""
        lay = self.layout
        xs = np.asarray(x, float).reshape(self.K, lay.n)
        r, c, v = self.A.coo()
        out = np.zeros((self.K, lay.m))
        if r.size:
            np.add.at(out.T, r, (v * xs[:, c]).T)
        return out

    def active_rows(self, x: np.ndarray, atol: float = 1e-6, rtol: float = 1e-6
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows at a bound at ``x``: ``(K, m)`` masks ``at_lo``, ``at_hi`` (both for equalities).

        A row is at a bound within ``atol + rtol * |bound|``.  Together with the free columns this
        is the active set whose equality-constrained QP the KKT consumers (LME, explanations) use.
        """
        ax = self.row_values(x)
        with np.errstate(invalid="ignore"):
            at_lo = np.isfinite(self.lo) & (ax - self.lo <= atol + rtol * np.abs(self.lo))
            at_hi = np.isfinite(self.hi) & (self.hi - ax <= atol + rtol * np.abs(self.hi))
        return at_lo, at_hi

    def cvxpy_constraints(self, x: cp.Expression, scale: float = 1.0, name: str = ""
                          ) -> tuple[dict[str, tuple[cp.Constraint | None, cp.Constraint | None,
                                                     cp.Constraint | None]], dict[str, cp.Parameter]]:
        """Constraints over the stacked variable ``x`` (length ``K * n``), one triple per row block.

        Each row block ``b`` gives ``(eq, upper, lower)``: ``A_eq x == p_eq`` for its rows with
        ``lo == hi``, ``A_u x <= p_u`` for finite ``hi`` (else), ``A_l x >= p_l`` for finite
        ``lo``; any may be ``None``.  The right-hand sides are cvxpy Parameters (returned by
        name ``"{b}:eq"``, ``"{b}:hi"``, ``"{b}:lo"``) holding the current ``lo``/``hi``; update
        them with :meth:`update_parameters` after changing the bounds (same finiteness pattern).
        Every row is multiplied by ``scale`` (see ``formulation.ScaledProblem``): duals are then
        those of the unscaled rows when the objective is scaled by the same factor.  Dual values
        of ``(eq, upper, lower)`` map back with :meth:`split_duals`.
        """
        import cvxpy as cp

        _, A, _, lo, hi = self.stacked()
        out: dict[str, tuple[cp.Constraint | None, cp.Constraint | None, cp.Constraint | None]] = {}
        params: dict[str, cp.Parameter] = {}
        self._cvx_rows = {b: self._row_split(b) for b in self.layout.rows}
        self._cvx_scale = scale
        for b, (eq, up, dn) in self._cvx_rows.items():
            cons: list[cp.Constraint | None] = []
            for tag, rows, val, sense in (("eq", eq, lo, "=="), ("hi", up, hi, "<="), ("lo", dn, lo, ">=")):
                if not rows.size:
                    cons.append(None)
                    continue
                par = cp.Parameter(rows.size, name=f"{name}{b}:{tag}")
                par.value = scale * val[rows]
                params[f"{b}:{tag}"] = par
                expr = (scale * A[rows]) @ x
                cons.append(expr == par if sense == "==" else expr <= par if sense == "<=" else expr >= par)
            out[b] = (cons[0], cons[1], cons[2])
        return out, params

    def _row_split(self, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stacked rows of block ``b`` that are equalities, have a finite upper, a finite lower bound."""
        self.freeze()
        lo, hi = self.lo.ravel(), self.hi.ravel()
        gr = self.global_rows(b).ravel()
        eq = lo[gr] == hi[gr]
        return gr[eq], gr[np.isfinite(hi[gr]) & ~eq], gr[np.isfinite(lo[gr]) & ~eq]

    def update_parameters(self, params: dict[str, cp.Parameter]) -> None:
        """Write the current ``lo``/``hi`` into the Parameters of :meth:`cvxpy_constraints`.

        Raises ValueError when a row changed between equality, one-sided and free (the
        constraint structure would have to change: build the constraints again).
        """
        for b, (eq, up, dn) in self._cvx_rows.items():
            new = self._row_split(b)
            if any(a.size != c.size or (a != c).any() for a, c in zip((eq, up, dn), new, strict=True)):
                raise ValueError(f"row block {b!r} changed which rows are equalities or bounded: rebuild")
            lo, hi = self.lo.ravel(), self.hi.ravel()
            for tag, rows, val in (("eq", eq, lo), ("hi", up, hi), ("lo", dn, lo)):
                if rows.size:
                    params[f"{b}:{tag}"].value = self._cvx_scale * val[rows]

    def split_duals(self, b: str, cons: tuple[cp.Constraint | None, cp.Constraint | None,
                                              cp.Constraint | None]) -> np.ndarray:
        """(K, count, span) multipliers ``y`` of row block ``b`` in the convention of the QP
        form (stationarity ``P x + q + A' y = 0``: ``y > 0`` at an upper bound, ``y < 0`` at a
        lower bound), from the cvxpy duals of :meth:`cvxpy_constraints` (cvxpy reports
        non-negative duals for both ``<=`` and ``>=``, and ``y`` itself for ``==`` rows)."""
        eq, up, dn = self._cvx_rows[b]
        y = np.zeros(self.K * self.layout.m)
        ceq, cup, cdn = cons
        if eq.size and ceq is not None:
            y[eq] = np.asarray(ceq.dual_value, float)
        if up.size and cup is not None:
            y[up] += np.asarray(cup.dual_value, float)
        if dn.size and cdn is not None:
            y[dn] -= np.asarray(cdn.dual_value, float)
        return self.row_duals(y, b)


def _block_diag(e: Entries, K: int, m: int, n: int, symmetric: bool = False) -> sp.csr_matrix:
    """The ``K`` copies of ``e`` on the diagonal of a (K*m, K*n) sparse matrix."""
    r, c, v = e.coo()
    if symmetric:  # entries of the upper triangle: mirror the off-diagonal ones
        off = r != c
        r, c, v = np.r_[r, c[off]], np.r_[c, r[off]], np.c_[v, v[:, off]]
    k = np.repeat(np.arange(K), r.size)
    rr = (k * m + np.tile(r, K))
    cc = (k * n + np.tile(c, K))
    return sp.csr_matrix((v.ravel(), (rr, cc)), shape=(K * m, K * n))
