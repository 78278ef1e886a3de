"""Cross-layer facts and checks of a resolved scenario, above :mod:`hetsim.kv` and below
:mod:`hetsim.sim`: the pool pairing and each pair's :class:`HandoffPlan`
(:mod:`~hetsim.checks.handoff`), and the scenario checks that the public loaders run
(:mod:`~hetsim.checks.scenario`)."""

from hetsim.checks.handoff import (
    EXAMPLE_TOKENS,
    STAGING_PROFILE,
    EfficiencySource,
    HandoffPlan,
    HopPlan,
    PoolPair,
    handoff_plan,
    handoff_plans,
    pool_pairs,
)
from hetsim.checks.scenario import (
    absent_fault_targets,
    check_scenario,
    drop_absent_faults,
    load_scenario,
    scenario_from_dict,
)

__all__ = [
    "EfficiencySource",
    "HopPlan",
    "HandoffPlan",
    "PoolPair",
    "pool_pairs",
    "handoff_plans",
    "handoff_plan",
    "absent_fault_targets",
    "drop_absent_faults",
    "check_scenario",
    "load_scenario",
    "scenario_from_dict",
    "STAGING_PROFILE",
    "EXAMPLE_TOKENS",
]
