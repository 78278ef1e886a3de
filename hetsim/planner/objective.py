"""What the planner maximises, and the unit it reports it in.

The per-dollar and per-energy scores use the metric definitions of :mod:`hetsim.metrics`, at the
goodput: a deployment is charged its full price per hour and its full board power (every
device at its tdp) whether or not the run kept it busy, so the score is what the deployment
delivers per dollar (per kWh) when it is provisioned for that rate.
"""

from __future__ import annotations

import math
from enum import StrEnum

from hetsim.metrics import requests_per_kwh, requests_per_usd
from hetsim.units import format_plain

__all__ = ["Objective"]


class Objective(StrEnum):
    """The search objective: the value is the scenario's ``search.objective`` and the string
    plan.json writes. Higher scores are better for every objective."""

    GOODPUT = "goodput"
    GOODPUT_PER_DEVICE = "goodput_per_device"
    GOODPUT_PER_DOLLAR = "goodput_per_dollar"
    CHEAPEST_FOR_RATE = "cheapest_for_rate"
    ENERGY = "energy"

    @property
    def unit(self) -> str:
        """The score's unit in prose (plan.json's ``objective_unit``, verdict reasons)."""
        return _UNITS[self][0]

    @property
    def short_unit(self) -> str:
        """The score's unit as a table column heading."""
        return _UNITS[self][1]

    def format(self, score: float, unit: bool = True) -> str:
        """A score as people read it: four significant figures in plain digits (never
        ``1.658e+04``), with its unit unless ``unit`` is false; under cheapest_for_rate the
        price itself, not its negative."""
        if self is Objective.CHEAPEST_FOR_RATE:
            return f"${-score:,.2f}/h" if unit else f"{-score:,.2f}"
        text = format_plain(score, 4) if math.isfinite(score) else str(score)
        return f"{text} {self.unit}" if unit else text

    def score(
        self, rate: float, devices: int, cost_per_hour: float, power_w: float = math.nan
    ) -> float:
        """The objective of a deployment serving ``rate`` requests/s; ``power_w`` (its devices'
        full board power) is needed by ``energy`` only."""
        if self is Objective.GOODPUT:
            return rate
        if self is Objective.GOODPUT_PER_DEVICE:
            return rate / devices
        if self is Objective.GOODPUT_PER_DOLLAR:
            return requests_per_usd(rate, cost_per_hour)
        if self is Objective.ENERGY:
            return requests_per_kwh(rate, _power(power_w))
        return -cost_per_hour  # the rate is a constraint (min_rate); the cheapest wins

    def rate_for(
        self, score: float, devices: int, cost_per_hour: float, power_w: float = math.nan
    ) -> float:
        """The rate at which a deployment's score would equal ``score`` (not defined for
        cheapest_for_rate, whose score does not depend on the rate)."""
        if self is Objective.GOODPUT:
            return score
        if self is Objective.GOODPUT_PER_DEVICE:
            return score * devices
        if self is Objective.GOODPUT_PER_DOLLAR:
            return score * cost_per_hour / 3600
        if self is Objective.ENERGY:
            return score * _power(power_w) / 3.6e6
        raise ValueError("cheapest_for_rate scores do not depend on the rate")


def _power(power_w: float) -> float:
    # a caller that forgot the power would rank every deployment as free to run
    if not power_w > 0:
        raise ValueError(f"the energy objective needs the deployment's power, got {power_w!r} W")
    return power_w


_UNITS = {
    Objective.GOODPUT: ("req/s", "req/s"),
    Objective.GOODPUT_PER_DEVICE: ("req/s per device", "req/s/dev"),
    Objective.GOODPUT_PER_DOLLAR: ("requests per $", "req/$"),
    Objective.CHEAPEST_FOR_RATE: ("$/h", "-$/h"),
    Objective.ENERGY: ("requests per kWh", "req/kWh"),
}
