"""What the planner concluded about a candidate."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL_VERDICTS", "Verdict"]


class Verdict(StrEnum):
    """A candidate's verdict. Members are in candidates.csv's order, best first; the values
    are the strings plan.json and candidates.csv write.

    ``invalid``: the deployment does not validate. ``screened``: discarded before any
    simulation (inventory, budget, hopeless even alone, capacity bound under ``min_rate``).
    ``beaten``: shown unable to beat the best measured, by its bounds or by one simulation.
    ``fails_sla``: searched, and no rate (or none above ``min_rate``) meets the SLA.
    ``ranked``: searched, with a goodput; ``recommended``: the best ranked.
    """

    RECOMMENDED = "recommended"
    RANKED = "ranked"
    FAILS_SLA = "fails_sla"
    BEATEN = "beaten"
    SCREENED = "screened"
    INVALID = "invalid"
    PENDING = "pending"  # still to simulate; no finished plan holds one

    @property
    def measured(self) -> bool:
        """Ranked by a searched goodput (recommended or ranked)."""
        return self in (Verdict.RECOMMENDED, Verdict.RANKED)


#: the verdicts a finished plan reports, best first
FINAL_VERDICTS = tuple(v for v in Verdict if v is not Verdict.PENDING)
