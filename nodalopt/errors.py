"""Domain exceptions.

Every message says what went wrong *and* what to do next.  ``InputError`` is a
``ValueError`` so generic callers can catch it as such.
"""

from __future__ import annotations


class NodalOptError(Exception):
    """Base class of every error nodalopt raises on purpose."""


class InputError(NodalOptError, ValueError):
    """The network, profiles or options are malformed.

    The message names the element (table and index), the column, and where the
    data came from (file and line) when that is known.
    """


class InfeasibleError(NodalOptError):
    """The dispatch problem has no solution.

    Attributes
    ----------
    shortfall : list of (bus, time, MW)
        Where and when an elastic re-solve had to shed load (positive MW) or
        spill generation (negative MW) to become feasible.
    """

    def __init__(self, message: str, shortfall: list[tuple[object, object, float]] | None = None):
        super().__init__(message)
        self.shortfall = shortfall or []


class UnboundedError(NodalOptError):
    """The objective can decrease without limit (a generator without a bound)."""


class SolverError(NodalOptError):
    """The solver did not return an optimal solution; no prices are published.

    Attributes
    ----------
    status : str
        The solver's own status string (e.g. ``"optimal_inaccurate"``).
    """

    def __init__(self, message: str, status: str = ""):
        super().__init__(message)
        self.status = status


class ConvergenceError(NodalOptError):
    """An iterative method stopped at its iteration limit before converging."""
