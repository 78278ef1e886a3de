"""The ``faults:`` section: what goes wrong, when, and how each protocol recovers.

Faults are scheduled (``at`` a time, for a ``duration``) or random (an instance crashes with an
exponential time between failures ``mtbf`` and comes back after ``mttr``). Each protocol's
recovery policy says what happens to a request whose KV was lost: ``retry`` (prefill it again,
up to ``max_retries`` times), ``fallback`` (the decode side recomputes the prompt itself, as a
colocated instance would), or ``fail``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hetsim.spec._types import Count, Seconds, StrictModel

__all__ = [
    "FAULT_KINDS",
    "INSTANCE_FAULTS",
    "MAX_FAULT_FACTOR",
    "MAX_FAULT_SECONDS",
    "LINK_FAULTS",
    "FaultSpec",
    "FaultsSpec",
    "allowed_targets",
    "instance_target",
    "target_exists",
]

FAULT_KINDS = (
    "link_down",
    "link_degraded",
    "instance_crash",
    "straggler",
    "abort_mid_transfer",
    "lost_notification",
)
#: faults whose target is a hop name
LINK_FAULTS = ("link_down", "link_degraded")
#: faults whose target is ``pool`` (all its instances) or ``pool[i]``
INSTANCE_FAULTS = ("instance_crash", "straggler")

_INDEXED = re.compile(r"^(?P<pool>[^\[\]]+)\[(?P<i>\d+)\]$")


def instance_target(target: str) -> tuple[str, int | None]:
    """``pool[i]`` as (pool, i); a bare ``pool`` as (pool, None): every instance of it."""
    match = _INDEXED.match(target)
    return (match["pool"], int(match["i"])) if match else (target, None)


def target_exists(fault: FaultSpec, instances: Mapping[str, int], hops: Collection[str]) -> bool:
    """Whether a deployment with ``instances`` per pool name and these transfer ``hops`` has
    what ``fault`` targets (a fault without a target applies to any deployment)."""
    if fault.target is None or fault.kind not in LINK_FAULTS + INSTANCE_FAULTS:
        return True
    if fault.kind in LINK_FAULTS:
        return fault.target in hops
    pool, index = instance_target(fault.target)
    return pool in instances and (index is None or index < instances[pool])


def allowed_targets(kind: str, instances: Mapping[str, int], hops: Collection[str]) -> str:
    """The targets a fault of ``kind`` may name in such a deployment, for messages."""
    if kind in LINK_FAULTS:
        return ", ".join(dict.fromkeys(hops)) or "none: no transfer path joins two pools"
    return ", ".join(
        f"{pool}, {pool}[0]" + (f"..{pool}[{n - 1}]" if n > 1 else "")
        for pool, n in instances.items()
    )


#: the longest a fault may last or wait to start, and the longest repair: hetsim replays serving
#: runs of minutes to hours, and a fault that outlasts them only keeps the simulated clock ticking
#: (heartbeats, lease checks, retries of stalled transfers) for a wall-clock time without end
MAX_FAULT_SECONDS = 86_400.0
#: the strongest slowdown (straggler) or bandwidth cut (link_degraded): beyond 100× an instance
#: or link is as good as down, which instance_crash and link_down model; 1e300 overflowed to inf
MAX_FAULT_FACTOR = 100.0


class FaultSpec(StrictModel):
    """One fault. ``target`` names a hop (link faults) or an instance as ``pool`` (every
    instance) or ``pool[i]`` (instance faults)."""

    kind: Literal[
        "link_down", "link_degraded", "instance_crash", "straggler", "abort_mid_transfer",
        "lost_notification",
    ] = Field(
        description="link_down / link_degraded (bandwidth × factor) on a hop; instance_crash "
        "(its HBM KV is lost, it restarts after `duration`); straggler (steps × factor); "
        "abort_mid_transfer (clients abort a share `probability` of requests while their KV "
        "moves); lost_notification (pull: decode's 'read done' never reaches prefill, which "
        "frees only at lease expiry — with `probability`)"
    )  # fmt: skip
    target: str | None = Field(default=None, description="hop name, pool, or pool[i]")
    at: Seconds | None = Field(default=None, description="when a scheduled fault starts")
    duration: Seconds | None = Field(
        default=None, gt=0, description="how long it lasts (restart delay for a crash)"
    )
    factor: float | None = Field(
        default=None, gt=0, description="link_degraded: bandwidth factor (0-1); straggler: "
        "slowdown factor (> 1)"
    )  # fmt: skip
    mtbf: Seconds | None = Field(default=None, gt=0, description="random crashes: mean time "
                                 "between failures of each targeted instance")  # fmt: skip
    mttr: Seconds | None = Field(default=None, gt=0, description="random crashes: mean repair")
    probability: float | None = Field(default=None, ge=0, le=1)

    @field_validator("at", "duration", "mttr")
    @classmethod
    def _within_a_day(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value > MAX_FAULT_SECONDS:
            raise ValueError(
                f"`{info.field_name}` of {value:g} s is beyond a day; allowed: at most "
                f"{MAX_FAULT_SECONDS:,.0f} s (a fault longer than the replayed run only "
                "keeps the simulated clock ticking)"
            )
        return value

    @field_validator("factor")
    @classmethod
    def _factor_bounded(cls, value: float | None) -> float | None:
        if value is not None and not 1 / MAX_FAULT_FACTOR <= value <= MAX_FAULT_FACTOR:
            raise ValueError(
                f"`factor` {value:g} is beyond a {MAX_FAULT_FACTOR:g}× slowdown or cut; "
                f"allowed: {1 / MAX_FAULT_FACTOR:g} to {MAX_FAULT_FACTOR:g} (a slower instance or "
                "link is as good as down: use instance_crash or link_down)"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> FaultSpec:
        k = self.kind
        self._only_its_fields()
        if k in ("abort_mid_transfer", "lost_notification"):
            if self.probability is None:
                raise ValueError(f"{k} needs `probability` (share of requests affected)")
            return self
        if self.target is None:
            raise ValueError(f"{k} needs a `target` ({'a hop name' if 'link' in k else 'pool'})")
        if self.mtbf is not None:
            if k != "instance_crash":
                raise ValueError("mtbf/mttr describe random instance crashes only")
            if self.mttr is None:
                raise ValueError("random crashes need both mtbf and mttr")
            return self
        if self.at is None or self.duration is None:
            raise ValueError(f"a scheduled {k} needs `at` and `duration` (or mtbf/mttr)")
        if k == "link_degraded" and not (self.factor and self.factor < 1):
            raise ValueError("link_degraded needs a `factor` below 1 (bandwidth multiplier)")
        if k == "straggler" and not (self.factor and self.factor > 1):
            raise ValueError("straggler needs a `factor` above 1 (step-time multiplier)")
        return self

    def _only_its_fields(self) -> None:
        """A field this kind of fault does not read would be ignored without a word (an abort
        probability with `at` still hit requests at any time)."""
        if self.kind in ("abort_mid_transfer", "lost_notification"):
            reads, how = ("probability",), "a share of every request's transfers, at any time"
        elif self.mtbf is not None:
            reads, how = ("target", "mtbf", "mttr"), "random crashes"
        else:
            factor = ("factor",) if self.kind in ("link_degraded", "straggler") else ()
            reads, how = ("target", "at", "duration", *factor), f"a scheduled {self.kind}"
        fields = ("target", "at", "duration", "factor", "mtbf", "mttr", "probability")
        unused = [f for f in fields if f not in reads and getattr(self, f) is not None]
        if unused:
            raise ValueError(
                f"{self.kind} ({how}) does not use {', '.join(unused)}; it reads {', '.join(reads)}"
            )


class FaultsSpec(StrictModel):
    events: list[FaultSpec] = Field(default_factory=list)
    recovery: Literal["retry", "fallback", "fail"] = Field(
        default="retry",
        description="a request whose KV is lost: prefill it again (retry), let the decode side "
        "recompute the prompt (fallback), or fail it",
    )
    max_retries: Count = Field(default=2, ge=0, description="retry: attempts before failing")
    transfer_timeout: Seconds | None = Field(
        default=None, gt=0, description="abort a KV transfer that has not finished after this "
        "long (then recover as above); SGLang waits 300 s"
    )  # fmt: skip
