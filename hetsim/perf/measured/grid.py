"""Interpolation of a measured latency table in log space, inside its grid only.

A table measures a kernel's latency on a grid of shapes (GEMM ``m × n × k``, attention
``batch × length``, all-reduce ``message``). Latency follows power laws in those axes over wide
ranges (linear in ``m`` once compute-bound, flat while launch-bound), so :class:`LogGrid`
interpolates ``log latency`` multilinearly over ``log`` axes: exact at every measured point,
monotone between points wherever the table is monotone, and never extrapolating — a point outside
the grid, or in a cell with an unmeasured corner, answers ``None`` and the caller falls back to
another source.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

__all__ = ["LogGrid"]


@dataclass(frozen=True, eq=False)
class LogGrid:
    """``log_values[i, j, ...]``: log latency (s) at ``axes[0][i], axes[1][j], ...``; NaN where
    the table has no measurement."""

    axes: tuple[tuple[float, ...], ...]  # each axis' measured points, ascending (not logged)
    log_axes: tuple[tuple[float, ...], ...]
    log_values: np.ndarray

    @classmethod
    def from_points(cls, coords: list[np.ndarray], latency: np.ndarray) -> LogGrid:
        """The grid spanned by measured points (``coords[d][r]``: row ``r``'s value on axis
        ``d``); a shape measured twice keeps its fastest latency (the kernel a runtime picks)."""
        axes = tuple(tuple(float(v) for v in np.unique(c)) for c in coords)
        index = tuple(np.searchsorted(np.asarray(a), c) for a, c in zip(axes, coords, strict=True))
        values = np.full(tuple(len(a) for a in axes), np.inf)
        np.minimum.at(values, index, np.asarray(latency, dtype=np.float64))
        values[np.isinf(values)] = np.nan
        log_axes = tuple(tuple(math.log(v) for v in a) for a in axes)
        return cls(axes, log_axes, np.log(values))

    @property
    def measured(self) -> int:
        """How many grid points carry a measurement."""
        return int(np.isfinite(self.log_values).sum())

    def __call__(self, *point: float) -> float | None:
        """Latency (s) at ``point``, or None outside the measured grid."""
        corners: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
        for x, axis, log_axis in zip(point, self.axes, self.log_axes, strict=True):
            if not axis[0] <= x <= axis[-1]:
                return None
            i = bisect_right(axis, x) - 1
            if axis[i] == x:  # on a measured plane: one corner, exact
                corners = [(c + (i,), w) for c, w in corners]
                continue
            t = (math.log(x) - log_axis[i]) / (log_axis[i + 1] - log_axis[i])
            corners = [(c + (i,), w * (1 - t)) for c, w in corners] + [
                (c + (i + 1,), w * t) for c, w in corners
            ]
        total = 0.0
        values = self.log_values
        for index, weight in corners:
            v = values[index]
            if v != v:  # NaN: a corner of this cell was not measured
                return None
            total += weight * v
        return math.exp(total)
