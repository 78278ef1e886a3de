"""The planner: search deployments for the best goodput per dollar (issue #7, in progress).

So far: :func:`~hetsim.plan.goodput.goodput`, the highest request rate a deployment serves
within its SLA, found by bisection on the workload's arrival rate.
"""

from hetsim.plan.goodput import GoodputResult, goodput, with_rate

__all__ = ["GoodputResult", "goodput", "with_rate"]
