"""Closed-loop workloads: N clients, each with at most one request in flight.

This is how ``vllm bench serve --max-concurrency``, SGLang's bench_serving and genai-perf measure,
and how public benchmark tables are reported. Client c sends its first request at its ramp-up
offset; from then on it sends its next request ``think_time`` after its previous one ends
(completed or failed), until ``requests`` have been sent by all clients together.

Arrival times therefore depend on the simulated system: this module fixes only what does not.
:func:`iter_closed_loop` gives the requests' lengths in the order they will be issued (whichever
client issues the k-th request, it gets the k-th lengths), with ``arrival_s`` NaN: the simulator
decides it. :func:`client_starts` gives the clients' first-request offsets.

Ramp-up (``ramp_up.strategy``, over ``ramp_up.duration`` = D):

- ``none``: every client starts at t = 0. With equal lengths the clients then move in lock-step
  waves (they all prefill in one batch, decode together and come back together).
- ``uniform``: each client at an independent uniform time in [0, D), seeded; the offsets are
  sorted, so client c is the c-th to start.
- ``linear``: client c of N at c·D/N: clients join at a constant rate N/D.

The ramp-up matters beyond the start. With equal lengths every client's cycle takes about the
same time, so the phases the ramp sets persist: the simulator has no noise to dephase them.
Measured on ``scenarios/closed-loop-llama70b-h200.yaml`` (64 clients, ISL 2048, OSL 256, one
request ≈ 12.5 s end to end), TTFT p50 is 1.08 s with ``none`` and with the default ``uniform``
over 1 s (the first wave is prefilled in one queue), 0.29 s uniform over 12 s and 0.16 s (one
prompt's prefill) linear over 10 s; TPOT moves by under 7%. Varied lengths dephase the clients
by themselves: with output lengths lognormal (CV 0.5) the steady state (after 320 warm-up
requests) has TTFT p50 0.161 s whatever the ramp.

Randomness: ``numpy.random.SeedSequence(seed)`` spawns independent generators for the ramp-up,
input lengths and output lengths, each consumed in issue order, so the same spec and seed give
identical draws whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hetsim.spec.workload import ClosedLoopSpec, RampUpSpec
from hetsim.workload.chunk import RequestChunk
from hetsim.workload.synthetic import length_sampler
from hetsim.workload.traces import DEFAULT_CHUNK

__all__ = ["client_starts", "iter_closed_loop", "ramp_offsets"]


def _streams(seed: int) -> list[np.random.Generator]:
    # one spawn for all three, so a change to one kind of draw never shifts another
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def ramp_offsets(ramp: RampUpSpec, clients: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds from the start at which each of ``clients`` clients sends its first request,
    in increasing order (see the module docstring for the strategies)."""
    if ramp.strategy == "none" or ramp.duration == 0:
        return np.zeros(clients)
    if ramp.strategy == "linear":
        return np.arange(clients) * (ramp.duration / clients)
    return np.sort(rng.random(clients) * ramp.duration)


def client_starts(spec: ClosedLoopSpec, seed: int) -> np.ndarray:
    """When each client sends its first request, in increasing order: ``concurrency`` offsets
    (a run that sends fewer requests than there are clients uses the first ones)."""
    return ramp_offsets(spec.ramp_up, spec.concurrency, _streams(seed)[0])


def iter_closed_loop(
    spec: ClosedLoopSpec,
    base_dir: Path,
    seed: int,
    chunk_size: int = DEFAULT_CHUNK,
    *,
    field: str = "workload.closed_loop",
) -> Iterator[RequestChunk]:
    """The ``spec.requests`` requests in issue order as chunks of at most ``chunk_size``:
    consecutive ids from 0, lengths drawn in issue order, ``arrival_s`` NaN (decided by the
    simulation)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    _, rng_in, rng_out = _streams(seed)
    lengths = length_sampler(
        spec.input_tokens, spec.output_tokens, Path(base_dir), seed, (rng_in, rng_out), field
    )

    def generate() -> Iterator[RequestChunk]:
        done = 0
        while done < spec.requests:
            n = min(chunk_size, spec.requests - done)
            inp, out = lengths(n)
            yield RequestChunk(
                request_id=np.arange(done, done + n, dtype=np.int64),
                arrival_s=np.full(n, np.nan),
                input_tokens=inp,
                output_tokens=out,
            )
            done += n

    return generate()
