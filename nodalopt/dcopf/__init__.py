"""Multi-period DC optimal power flow."""

from .model import DCOPF, solve

__all__ = ["DCOPF", "solve"]
