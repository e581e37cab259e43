"""Logging and progress bars.

The package logs to the ``nodalopt`` logger (a ``NullHandler`` is attached, so nothing is shown
unless the application configures logging; the command line does, see ``--verbose`` /
``--quiet``).  Progress bars (tqdm, on stderr) are shown for runs that can take more than a few
seconds -- periods of a centralized multi-period solve, batch cases, ADMM iterations -- when
stderr is a terminal and progress is not switched off (:func:`set_progress`, ``--quiet``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger("nodalopt")
logger.addHandler(logging.NullHandler())

#: seconds a run must last before its bar appears (tqdm's ``delay``): short runs stay silent
PROGRESS_DELAY_S = 2.0
_progress: bool | None = None  # None: automatic (stderr is a terminal)


def get_logger(name: str) -> logging.Logger:
    """The logger of a nodalopt module (a child of ``nodalopt``)."""
    return logging.getLogger(name if name.startswith("nodalopt") else f"nodalopt.{name}")


def set_progress(enabled: bool | None) -> None:
    """Progress bars on (True), off (False) or automatic (None: when stderr is a terminal)."""
    global _progress
    _progress = enabled


def progress_enabled() -> bool:
    """Whether progress bars are shown now."""
    if _progress is not None:
        return _progress
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _NoBar:
    """Stands in for a tqdm bar when progress is off."""

    total: float | None = None
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str) -> None:
        return None

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(total: int | None, desc: str, unit: str, *, initial: int = 0, enabled: bool | None = None,
                 delay: float | None = None, leave: bool = True) -> Any:
    """A tqdm bar on stderr (or a silent stand-in when progress is off or tqdm is missing).

    Parameters
    ----------
    total : int, optional
        Expected number of steps (None: unknown; the bar counts without an ETA).
    desc, unit : str
        Label and step unit.
    initial : int
        Steps already done (a resumed run).
    enabled : bool, optional
        Override :func:`progress_enabled`.
    delay : float, optional
        Show the bar only once the run has lasted this many seconds (default
        :data:`PROGRESS_DELAY_S`).
    leave : bool
        Keep the finished bar on screen.
    """
    if not (progress_enabled() if enabled is None else enabled):
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, leave=leave,
                delay=PROGRESS_DELAY_S if delay is None else delay)
