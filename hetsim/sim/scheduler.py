"""The chunked-prefill packing rule: which prompts compute how many tokens in the next step.

FCFS, as vLLM's chunked prefill: prompts already computing continue first, each taking at most
one chunk, then queued prompts join in order while the step's token budget and the sequence
limit allow. Pure (plain ints in, plain ints out) so that the simulator's prefill and colocated
instances (the latter with the budget and the sequence slots their decodes leave) and the
planner's analytic screen pack steps by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["prefill_chunks"]


def prefill_chunks(
    running: Sequence[int],
    waiting: Iterable[int],
    *,
    token_budget: int,
    chunk: int,
    max_seqs: int,
) -> tuple[list[int], int]:
    """(tokens each prompt computes in the next step, how many waiting prompts join).

    ``running``: tokens left to compute of each prompt already running, in order;
    ``waiting``: the same for queued prompts, head first; it is read lazily and only up to the
    prompts that join, so a caller may end it where its own admission check (free KV blocks)
    fails. The chunks list the running prompts served (a prefix of ``running``: the budget
    may run out) followed by the joining prompts. A prompt joins only while tokens are left in
    the budget and fewer than ``max_seqs`` prompts run.
    """
    left = token_budget
    chunks: list[int] = []
    for remaining in running:
        if left <= 0:
            return chunks, 0
        n = min(remaining, chunk, left)
        chunks.append(n)
        left -= n
    seats = max_seqs - len(running)
    joined = 0
    if left <= 0 or seats <= 0:
        return chunks, 0
    for remaining in waiting:
        n = min(remaining, chunk, left)
        chunks.append(n)
        left -= n
        joined += 1
        if left <= 0 or joined >= seats:
            break
    return chunks, joined
