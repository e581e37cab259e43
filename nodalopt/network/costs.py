"""Cost-curve helpers shared by the front-ends."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def pwl_segments(points: list[list[float]], name: str, where: str,
                 sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Convert pandapower pwl ``[[p0, p1, slope], ...]`` to (slopes, intercepts).

    The cost at ``p0`` is ``p0 * slope0`` (pandapower's convention), and each
    segment continues the previous one.  ``sign = -1`` negates the curve, as
    pandapower does for loads and storage (their cost is written on the
    injection ``-p``).  The (signed) curve must be convex (slopes
    non-decreasing) so it can be written as an epigraph.
    """
    try:
        arr = np.asarray(points, dtype=float).reshape(-1, 3)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: 'points' of {name} is not a list of [p_from, p_to, "
                         f"$/MWh] triples: {points!r}") from exc
    if arr.size == 0 or not np.isfinite(arr).all():
        raise InputError(f"{where}: 'points' of {name} is empty or has NaN/inf: {points!r}")
    lo, hi, slope = arr[:, 0], arr[:, 1], arr[:, 2]
    if np.any(lo[1:] != hi[:-1]) or np.any(hi < lo):
        raise InputError(f"{where}: 'points' of {name} are not consecutive ranges: {points!r}")
    if np.any(np.diff(sign * slope) < 0):
        rule = "must not decrease" if sign > 0 else ("must not increase: pandapower negates the cost of a "
                                                     "load or storage unit on its injection")
        raise InputError(f"{where}: piecewise-linear cost of {name} is not convex (slopes "
                         f"{slope.tolist()} {rule}); a DC-OPF needs convex costs.")
    c_at_lo = lo[0] * slope[0] + np.r_[0.0, np.cumsum((hi - lo) * slope)[:-1]]
    return sign * slope, sign * (c_at_lo - slope * lo)


def expand_pwl(gen_pos: np.ndarray, segments: list[tuple[np.ndarray, np.ndarray]]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-generator segments into flat (gen, slope, intercept) arrays."""
    if not segments:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    gens = np.concatenate([np.full(s.size, g) for g, (s, _) in zip(gen_pos, segments, strict=True)])
    return (gens.astype(np.int64), np.concatenate([s for s, _ in segments]),
            np.concatenate([b for _, b in segments]))
