"""Signals derived from a solved model: price explanations (intervals, valid ranges, price setters)."""

from .explain import Explanation, attach_state, explain, explain_state, price_curve, with_explanation

__all__ = ["Explanation", "attach_state", "explain", "explain_state", "price_curve", "with_explanation"]
