"""When the network limits a deployment, and what another interconnect would be worth.

With ``search.interconnect`` alternatives, every disaggregated deployment (pools, formats,
protocol) is a candidate once per interconnect. For the recommendation and each ranked
disaggregated candidate this module lines up its siblings — the same deployment over the
other interconnects — with what the plan learnt about each: a measured objective where it was
simulated, else its verdict and the most its capacity bound allows. It also says whether a
link is the candidate's *binding* screen bound (the smallest capacity bound, ``bound_by``): a
link that is not binding can still cost TTFT (the transfer is part of it), which only the
siblings' measured goodputs show.

Nothing here is recomputed: bounds come from the screen, objectives from the search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hetsim.planner.objective import Objective
from hetsim.planner.screen import ScreenResult
from hetsim.planner.space import Candidate
from hetsim.planner.verdict import Verdict

__all__ = ["LinkOption", "NetworkNote", "network_notes"]

#: the screen's bounds on links are named ``link <hop name>``
_LINK = "link "


class _Judged(Protocol):
    """What this module reads of a candidate's result (a planner CandidateResult)."""

    @property
    def candidate(self) -> Candidate: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def reason(self) -> str: ...
    @property
    def objective(self) -> float: ...
    @property
    def goodput(self) -> float: ...
    @property
    def cost_per_hour(self) -> float: ...
    @property
    def screen(self) -> ScreenResult | None: ...
    @property
    def power_w(self) -> float: ...


def link_bound(screen: ScreenResult | None) -> float:
    """The smallest of a screen's link bounds, requests/s (inf: no link, or not screened)."""
    if screen is None:
        return math.inf
    return min((v for k, v in screen.bounds.items() if k.startswith(_LINK)), default=math.inf)


@dataclass(frozen=True)
class LinkOption:
    """The same deployment over another interconnect, as the plan judged it."""

    interconnect: str
    id: int
    verdict: str
    reason: str
    cost_per_hour: float
    link_bound: float  # req/s, the narrowest link's capacity bound
    objective_bound: float  # the objective at its smallest capacity bound: no more is possible
    goodput: float  # req/s; NaN when not simulated to the end
    objective: float  # NaN when not simulated to the end
    change: float  # objective over the subject's, minus one; NaN unless both were measured

    def as_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class NetworkNote:
    """One measured disaggregated candidate, whether a link binds it, and its alternatives."""

    id: int
    label: str
    interconnect: str
    bound_by: str | None
    link_bound: float
    binding: bool  # a link is the smallest capacity bound
    objective: float
    options: tuple[LinkOption, ...]

    def as_dict(self) -> dict[str, Any]:
        out = {k: _json(v) for k, v in self.__dict__.items() if k != "options"}
        out["options"] = [o.as_dict() for o in self.options]
        return out

    def lines(self, unit: str) -> list[str]:
        """The note in prose: whether a link binds, then one line per alternative."""
        if self.binding:
            head = f"a link binds it ({self.bound_by}: {self.link_bound:.3g} req/s)"
        else:
            head = (
                f"no link binds it (bound by {self.bound_by}; its narrowest link allows "
                f"{self.link_bound:.3g} req/s)"
            )
        out = [f"#{self.id} {self.label}", f"over {self.interconnect}, {head}"]
        for o in self.options:
            instead = f"with {o.interconnect} instead of {self.interconnect}"
            if not math.isnan(o.change):
                out.append(
                    f"{instead}: {o.change:+.1%} {unit} (#{o.id}: {o.goodput:.3g} req/s at "
                    f"${o.cost_per_hour:,.2f}/h)"
                )
            else:
                out.append(
                    f"{instead}: {o.verdict}, at most {o.objective_bound:.4g} {unit} "
                    f"(#{o.id}, ${o.cost_per_hour:,.2f}/h): {o.reason}"
                )
        return out

    def best_option(self) -> LinkOption | None:
        """The measured alternative with the highest objective, if any was measured."""
        measured = [o for o in self.options if not math.isnan(o.objective)]
        return max(measured, key=lambda o: o.objective) if measured else None


def _json(v: Any) -> Any:
    """NaN and infinity as null: plan.json is strict JSON."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _option(r: _Judged, subject: _Judged, objective: Objective) -> LinkOption:
    measured = r.verdict.measured and not math.isnan(r.objective)
    bound = math.nan
    if r.screen is not None:
        rate = r.screen.rate_bound
        bound = objective.score(rate, r.candidate.devices, r.cost_per_hour, r.power_w)
    change = math.nan
    if measured and subject.objective and not math.isnan(subject.objective):
        change = (r.objective - subject.objective) / abs(subject.objective)
    return LinkOption(
        interconnect=r.candidate.interconnect or "",
        id=r.candidate.id,
        verdict=r.verdict.value,
        reason=r.reason,
        cost_per_hour=r.cost_per_hour,
        link_bound=link_bound(r.screen),
        objective_bound=bound,
        goodput=r.goodput if measured else math.nan,
        objective=r.objective if measured else math.nan,
        change=change,
    )


def network_notes(
    results: Sequence[_Judged], ranked: Sequence[_Judged], objective: Objective
) -> list[NetworkNote]:
    """A note for each ranked (measured) disaggregated candidate, best first, when the search
    tried interconnect alternatives; none otherwise."""
    if not any(r.candidate.interconnect for r in results):
        return []
    groups: dict[tuple, list[_Judged]] = {}
    for r in results:
        if r.candidate.interconnect:
            groups.setdefault(r.candidate.deployment, []).append(r)
    notes = []
    for r in ranked:
        if not r.candidate.interconnect:
            continue
        siblings = [s for s in groups[r.candidate.deployment] if s is not r]
        sr = r.screen
        notes.append(
            NetworkNote(
                id=r.candidate.id,
                label=r.candidate.label,
                interconnect=r.candidate.interconnect,
                bound_by=sr.bound_by if sr is not None else None,
                link_bound=link_bound(sr),
                binding=sr is not None and sr.bound_by.startswith(_LINK),
                objective=r.objective,
                options=tuple(_option(s, r, objective) for s in siblings),
            )
        )
    return notes
