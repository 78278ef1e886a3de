"""The Pareto front of a plan: the most goodput any budget buys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["pareto_front"]


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats with None/missing as NaN (summaries use None for 'no value')."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` no other row dominates in (lower ``cost_per_hour``, higher
    ``goodput``), cheapest first, with their original index.

    A row with NaN or zero goodput (not simulated, or serving nothing within the SLA) is never on
    the front. Rows equal in both cost and goodput are all kept: neither dominates the other.
    """
    cost = _floats(frame, "cost_per_hour")
    good = _floats(frame, "goodput")
    usable = frame[np.isfinite(cost) & np.isfinite(good) & (good > 0)]
    if usable.empty:
        return usable
    usable = usable.sort_values(
        ["cost_per_hour", "goodput"], ascending=[True, False], kind="stable"
    )
    keep = []
    best = -math.inf  # highest goodput of any strictly cheaper row
    for _, same_cost in usable.groupby("cost_per_hour", sort=True):
        top = float(same_cost["goodput"].max())
        if top > best:
            keep.extend(same_cost.index[same_cost["goodput"] == top])
            best = top
    return usable.loc[keep]
