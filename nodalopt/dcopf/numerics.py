"""Numerical range of a model's cost data, for the messages of failed solves.

An interior-point solver resolves the objective to about 1e-8 of its size.  Marginal
costs that span many orders of magnitude (1e12 and 1e-12 $/MWh in one case, typically a
unit typo or a "never use this unit" placeholder) leave the small ones below that
resolution: the solve stalls or ends with a false certificate of unboundedness.  No
scaling of the whole objective can fix a range; the data has to change.  These helpers
say which costs span the range, so the error can name them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..network.arrays import NetworkArrays

#: decades between the smallest and largest nonzero marginal cost beyond which a failed solve
#: is blamed on the cost range (Clarabel's default tolerances are ~1e-8 relative)
COST_DECADES = 8.0


@dataclass(frozen=True)
class CostSpread:
    """Smallest and largest nonzero marginal cost ($/MWh) and the elements that carry them."""

    lo: float
    lo_name: str
    hi: float
    hi_name: str

    @property
    def decades(self) -> float:
        return float(np.log10(self.hi / self.lo)) if self.lo > 0 else 0.0

    def describe(self) -> str:
        return (f"marginal costs range from {self.lo:.3g} $/MWh ({self.lo_name}) to {self.hi:.3g} $/MWh "
                f"({self.hi_name}), {self.decades:.0f} orders of magnitude")


def cost_spread(net: NetworkArrays, c1: np.ndarray | None = None, voll: float | None = None) -> CostSpread | None:
    """Range of the nonzero marginal cost coefficients of ``net``; None when there are fewer than two.

    Parameters
    ----------
    net : NetworkArrays
        The compiled network (linear costs ``gen_c1``, piecewise slopes ``pwl_slope``).
    c1 : array (gen, T), optional
        Linear costs per period as the model uses them (carbon adders included); default ``gen_c1``.
    voll : float, optional
        Value of lost load, when load shedding is allowed.
    """
    lin = np.abs(np.asarray(net.gen_c1 if c1 is None else c1, dtype=float).reshape(net.n_gen, -1)).max(
        axis=1, initial=0.0) if net.n_gen else np.zeros(0)
    vals = [lin, np.abs(net.pwl_slope)]
    names = [np.asarray(net.gen_names, dtype=str), np.asarray(net.gen_names, dtype=str)[net.pwl_gen]]
    if voll is not None:
        vals.append(np.array([float(voll)]))
        names.append(np.array(["voll"]))
    v, n = np.concatenate(vals), np.concatenate(names)
    keep = np.isfinite(v) & (v > 0)
    if keep.sum() < 2:
        return None
    v, n = v[keep], n[keep]
    i, j = int(np.argmin(v)), int(np.argmax(v))
    return CostSpread(lo=float(v[i]), lo_name=str(n[i]), hi=float(v[j]), hi_name=str(n[j]))


def cost_range_advice(spread: CostSpread | None, always: bool = False) -> str:
    """A sentence for an error message when the cost range may explain a failed solve ('' otherwise)."""
    if spread is None or (not always and spread.decades < COST_DECADES):
        return ""
    return (f" The {spread.describe()}; the solver resolves about 8 of them. Set costs below about "
            f"1e-8 of the largest to 0, replace placeholder costs (e.g. {spread.hi_name}) by a limit "
            "(max_p_mw = 0 or out of service), or check the units.")
