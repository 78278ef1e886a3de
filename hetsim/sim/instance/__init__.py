"""Serving instances as simpy processes: one event per batch step.

Each instance runs a loop that forms a batch, asks its :class:`~hetsim.perf.step.StepModel` how
long the step takes, waits that long, and then applies the step's effects. An idle instance
sleeps on a wake-up event that arrivals, finished transfers and freed blocks trigger. A decode
batch that nothing changes takes its steps several to one event, with the same results
(:mod:`~hetsim.sim.instance.fastforward`; ``simulate(..., fast_forward=False)`` turns it off).

* :class:`PrefillInstance` — FCFS over a max-batched-tokens budget with chunked prefill; KV
  blocks for the whole prompt are allocated when a request is admitted to the batch.
* :class:`DecodeInstance` — continuous batching up to ``max_num_seqs``; the handoff protocol
  decides when a request is admitted; a sequence takes a new block each time its context crosses
  a page; when blocks run out the newest sequence is preempted (recomputed or swapped to host).
* :class:`ColocatedInstance` — the aggregated baseline: decodes first, then prefill chunks in
  the remaining token budget, in one step (vLLM V1's scheduler).

Policy lives apart from mechanism: which prompts compute how many tokens in a step is
:func:`~hetsim.sim.scheduler.prefill_chunks`, the rule the planner's screen packs by too; who may
join (free KV blocks, head-of-line) is each instance's ``_admit``; block accounting and
per-sequence arrays are :class:`~hetsim.kv.blocks.BlockPool` and :class:`DecodeBatch`.
"""

from __future__ import annotations

from hetsim.sim.instance.base import Instance
from hetsim.sim.instance.batch import DecodeBatch
from hetsim.sim.instance.colocated import ColocatedInstance
from hetsim.sim.instance.decode import DecodeInstance
from hetsim.sim.instance.prefill import PrefillInstance

__all__ = ["Instance", "PrefillInstance", "DecodeInstance", "ColocatedInstance", "DecodeBatch"]
