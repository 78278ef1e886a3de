"""The planner: search deployments for the best goodput (per device, per dollar) under an SLA.

:func:`~hetsim.planner.goodput.goodput` finds the highest request rate a deployment serves
within its SLA by searching the workload's arrival rate on a fixed geometric grid;
:func:`~hetsim.planner.search.plan` searches a scenario's design space with it.

* ``space``: the candidates; ``sample``: the requests the screen looks at; ``capacity``: per-pool
  costs cached by value for one plan; ``queueing``: the goodput estimate; ``screen``: bounds
  that are proofs;
* ``objective``, ``verdict``: what is maximised and what was concluded; ``pruning``: each
  verdict's decision; ``search``: the branch-and-bound loop; ``goodput``: the rate search;
  ``backends``: where simulations run;
* ``results``: the frozen results and plan.json/candidates.csv; ``pareto``: the front.
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
