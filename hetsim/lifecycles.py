"""``hetsim.compare_lifecycles``: one workload under each KV lifecycle protocol, side by side.

The protocols differ in who holds KV blocks while a request crosses the prefill → decode
boundary, so the comparison shows latency next to the block-seconds each side spends holding
or reserving, the double residency during transfers and what faults cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hetsim.checks import drop_absent_faults, scenario_from_dict
from hetsim.metrics import RunSummary
from hetsim.simulation import simulate
from hetsim.spec.resolve import Scenario

__all__ = [
    "LifecycleComparison", "LifecycleOutcome", "PoolKV", "compare_lifecycles", "with_protocol",
]  # fmt: skip


@dataclass(frozen=True)
class PoolKV:
    """How one pool's KV capacity was used under one protocol."""

    pool: str
    peak_kv: float  # share of the pool's KV blocks in use at the busiest instance's peak
    held_block_s: float  # blocks kept for a transfer (pull's lease), times seconds
    reserved_block_s: float  # blocks reserved before their KV arrived (push), times seconds


@dataclass(frozen=True)
class LifecycleOutcome:
    """One protocol's run: the figures the comparison sets side by side, and its full summary."""

    protocol: str
    completed: int
    failed: int
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    tpot_p90_s: float | None
    attainment: float
    pools: tuple[PoolKV, ...]
    double_residency_block_s: float
    recomputed_tokens: int
    evicted_before_fetch: int  # store: KV the pool evicted before decode fetched it
    retries: int
    lease_expiries: int
    silent_corruptions: int
    summary: RunSummary  # the run's full summary
    #: the scenario's faults this protocol cannot have, left out of its run (``kind (why)``)
    skipped_faults: tuple[str, ...] = ()

    @classmethod
    def from_summary(
        cls, protocol: str, summary: RunSummary, skipped_faults: tuple[str, ...] = ()
    ) -> LifecycleOutcome:
        faults = summary.faults
        return cls(
            protocol=protocol,
            completed=summary.completed,
            failed=summary.failed,
            ttft_p50_s=summary.ttft_s.p50,
            ttft_p90_s=summary.ttft_s.p90,
            tpot_p90_s=summary.tpot_s.p90,
            attainment=summary.attainment,
            pools=tuple(
                PoolKV(name, u.peak_kv, u.held_block_s, u.reserved_block_s)
                for name, u in summary.utilisation.items()
            ),
            double_residency_block_s=summary.double_residency_block_s,
            recomputed_tokens=summary.recomputed_tokens,
            evicted_before_fetch=faults.get("evicted_before_fetch", 0),
            retries=summary.retries,
            lease_expiries=faults.get("lease_expiries", 0),
            silent_corruptions=summary.silent_corruptions,
            summary=summary,
            skipped_faults=skipped_faults,
        )

    def pool(self, name: str) -> PoolKV:
        for kv in self.pools:
            if kv.pool == name:
                return kv
        raise KeyError(name)


@dataclass(frozen=True)
class LifecycleComparison:
    """The same scenario, workload and seed under each protocol, in the order they ran."""

    scenario: str
    pools: tuple[str, ...]  # the scenario's pools, in its order
    outcomes: tuple[LifecycleOutcome, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per protocol; per-pool columns are named ``<figure>.<pool>``."""
        rows = []
        for o in self.outcomes:
            row = {k: v for k, v in vars(o).items() if k not in ("protocol", "pools", "summary")}
            row["skipped_faults"] = "; ".join(o.skipped_faults)
            for name in self.pools:
                kv = o.pool(name)
                row |= {
                    f"peak_kv.{name}": kv.peak_kv,
                    f"held_block_s.{name}": kv.held_block_s,
                    f"reserved_block_s.{name}": kv.reserved_block_s,
                }
            rows.append(row)
        return pd.DataFrame(
            rows, index=pd.Index([o.protocol for o in self.outcomes], name="protocol")
        )

    def to_dict(self) -> dict[str, Any]:
        """Each protocol's full run summary, as JSON-ready values."""
        return {
            o.protocol: o.summary.to_json() | {"skipped_faults": list(o.skipped_faults)}
            for o in self.outcomes
        }


def compare_lifecycles(
    scenario: Scenario,
    *,
    max_requests: int | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    heartbeat: Callable[[int, int, float], None] | None = None,
    heartbeat_s: float = 10.0,
    fast_forward: bool = True,
) -> LifecycleComparison:
    """Simulate ``scenario`` under ``pull``, ``push`` and, when it names a
    ``lifecycle.store_tier``, ``store``; everything else stays as the scenario says.

    ``progress(protocol)`` is called as each protocol's run starts. A protocol the scenario
    cannot use (e.g. layer-wise transfer without ``push``) is an input error, as if it had been
    set with ``--set lifecycle.protocol=...``. ``heartbeat``, ``heartbeat_s`` and ``fast_forward``
    go to each run (see :func:`hetsim.simulate`).
    """
    protocols = ["pull", "push"] + (["store"] if scenario.spec.lifecycle.store_tier else [])
    outcomes = []
    for protocol in protocols:
        if progress is not None:
            progress(protocol)
        posed, skipped = with_protocol(scenario, protocol)
        run = simulate(
            posed,
            max_requests=max_requests,
            seed=seed,
            heartbeat=heartbeat,
            heartbeat_s=heartbeat_s,
            fast_forward=fast_forward,
        )
        outcomes.append(LifecycleOutcome.from_summary(protocol, run.summary, skipped))
    pools = tuple(p.name for p in scenario.spec.pools)
    return LifecycleComparison(scenario.name, pools, tuple(outcomes))


def with_protocol(scenario: Scenario, protocol: str) -> tuple[Scenario, tuple[str, ...]]:
    """The scenario under ``protocol`` (``pull``, ``push`` or ``store``), less the faults it
    cannot have (a lost 'read done' notification exists only under pull), and those faults as
    ``kind (why)``. Setting the protocol with ``--set`` instead keeps such a fault: an input
    error."""
    # re-validated from plain data, as a --set override would be, so the protocol's own rules apply
    data = scenario.spec.model_dump(by_alias=True, exclude_none=True)
    data["lifecycle"]["protocol"] = protocol
    skipped = drop_absent_faults(data)
    return scenario_from_dict(data, path=scenario.path), skipped
