"""A pool that streams every N tokens: the client's first chunk, TTFT and TPOT as a benchmark
client measures them (``vllm bench serve``: TTFT to the first chunk, TPOT = (E2E - TTFT) /
(output - 1)), checked against the engine's own token times."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hetsim.checks.scenario import scenario_from_dict
from hetsim.errors import InputError
from hetsim.simulation import simulate
from hetsim.spec.scenario import PoolSpec


def _one_request(output: int, stream_interval: int | None) -> dict:
    pool = {"name": "engine", "role": "colocated", "accelerator": "nvidia-h200-sxm",
            "tp": 1, "precision": {"weights": "bf16", "activations": "bf16", "kv": "bf16"},
            "batching": {"max_num_seqs": 4, "max_batched_tokens": 8192, "chunk_size": 8192}}
    if stream_interval is not None:
        pool["stream_interval"] = stream_interval
    return {
        "name": "one", "model": "Llama-3.1-8B", "pools": [pool], "interconnect": {"paths": []},
        "workload": {"closed_loop": {"concurrency": 1, "requests": 1, "think_time": "0 s",
                                     "input_tokens": {"dist": "fixed", "value": 1000},
                                     "output_tokens": {"dist": "fixed", "value": output}}},
        "sla": {"ttft": "1 h", "tpot": "1 h"}, "seed": 0,
    }  # fmt: skip


def _row(output: int, stream_interval: int | None):
    scenario = scenario_from_dict(_one_request(output, stream_interval))
    return simulate(scenario, sample_interval=None).requests.iloc[0]


def test_by_default_the_first_token_is_the_first_chunk():
    row = _row(11, None)
    assert row.first_chunk_s == row.first_token_s
    assert row.ttft_s == pytest.approx(row.first_token_s - row.arrival_s)


def test_streaming_every_five_tokens_delays_the_first_chunk_by_four_token_gaps():
    alone, row = _row(11, None), _row(11, 5)
    # one request alone: every decode step is equally long, so token 5 is exact
    assert (row.first_token_s, row.finish_s) == (alone.first_token_s, alone.finish_s)
    gap = (row.finish_s - row.first_token_s) / 10
    assert row.first_chunk_s == pytest.approx(row.first_token_s + 4 * gap, rel=1e-12)
    assert row.ttft_s == pytest.approx(alone.ttft_s + 4 * gap, rel=1e-12)
    # the client divides what is left after its first chunk by all ten gaps
    assert row.tpot_s == pytest.approx(6 * gap / 10, rel=1e-12)
    assert row.e2e_s == alone.e2e_s  # streaming moves what the client sees, not the work


def test_an_interval_longer_than_the_output_shows_everything_at_the_end():
    row = _row(3, 16)
    assert row.first_chunk_s == pytest.approx(row.finish_s, rel=1e-12)
    assert row.tpot_s == pytest.approx(0.0, abs=1e-12)


def test_a_prefill_pool_cannot_stream():
    with pytest.raises(ValidationError, match="prefill pool does not stream"):
        PoolSpec(name="p", role="prefill", accelerator="nvidia-h200-sxm", stream_interval=10)


def test_stream_interval_zero_is_an_input_error_naming_the_field():
    scenario = _one_request(4, 0)
    with pytest.raises(InputError) as e:
        scenario_from_dict(scenario)
    assert "stream_interval" in e.value.render()
