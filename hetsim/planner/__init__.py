"""The planner: search deployments for the best goodput (per device, per dollar) under an SLA.

:func:`~hetsim.planner.goodput.goodput` finds the highest request rate a deployment serves
within its SLA by searching the workload's arrival rate on a fixed geometric grid.
"""

from hetsim.planner.goodput import GoodputResult, RateGrid, goodput, with_rate, workload_rate
from hetsim.planner.objective import Objective
from hetsim.planner.verdict import Verdict

__all__ = [
    "GoodputResult",
    "Objective",
    "RateGrid",
    "Verdict",
    "goodput",
    "with_rate",
    "workload_rate",
]
