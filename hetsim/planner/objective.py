"""What the planner maximises, and the unit it reports it in."""

from __future__ import annotations

import math
from enum import StrEnum

__all__ = ["Objective"]


class Objective(StrEnum):
    """The search objective: the value is the scenario's ``search.objective`` and the string
    plan.json writes. Higher scores are better for every objective."""

    GOODPUT = "goodput"
    GOODPUT_PER_DEVICE = "goodput_per_device"
    GOODPUT_PER_DOLLAR = "goodput_per_dollar"
    CHEAPEST_FOR_RATE = "cheapest_for_rate"

    @property
    def unit(self) -> str:
        """The score's unit in prose (plan.json's ``objective_unit``, verdict reasons)."""
        return _UNITS[self][0]

    @property
    def short_unit(self) -> str:
        """The score's unit as a table column heading."""
        return _UNITS[self][1]

    def score(self, rate: float, devices: int, cost_per_hour: float) -> float:
        """The objective of a deployment serving ``rate`` requests/s."""
        if self is Objective.GOODPUT:
            return rate
        if self is Objective.GOODPUT_PER_DEVICE:
            return rate / devices
        if self is Objective.GOODPUT_PER_DOLLAR:
            return rate * 3600 / cost_per_hour if cost_per_hour else math.inf
        return -cost_per_hour  # the rate is a constraint (min_rate); the cheapest wins

    def rate_for(self, score: float, devices: int, cost_per_hour: float) -> float:
        """The rate at which a deployment's score would equal ``score`` (not defined for
        cheapest_for_rate, whose score does not depend on the rate)."""
        if self is Objective.GOODPUT:
            return score
        if self is Objective.GOODPUT_PER_DEVICE:
            return score * devices
        if self is Objective.GOODPUT_PER_DOLLAR:
            return score * cost_per_hour / 3600
        raise ValueError("cheapest_for_rate scores do not depend on the rate")


_UNITS = {
    Objective.GOODPUT: ("req/s", "req/s"),
    Objective.GOODPUT_PER_DEVICE: ("req/s per device", "req/s/dev"),
    Objective.GOODPUT_PER_DOLLAR: ("requests per $", "req/$"),
    Objective.CHEAPEST_FOR_RATE: ("$/h", "-$/h"),
}
