"""TPU v5e prefill with decode on another vendor: the cross-vendor KV path of
``scenarios/tpu-prefill-gpu-decode.yaml`` against hand arithmetic.

Llama-3.1-8B KV: 2 x 32 layers x 8 KV heads x 128 x 2 B = 131,072 B per token in bf16 (and
fp16). The path's bottleneck is the L4 host's 100 Gbps NIC at the TPU profile's network
efficiency 0.7: 12.5 GB/s x 0.7 = 8.75 GB/s; its hop latencies add up to 10 + 20 + 20 + 10 us.
Re-paging 128-token pages into 16-token ones reads and writes the KV once on the L4, at
300 GB/s x 0.8 memory efficiency: 262,144 B / 240 GB/s per token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.report.describe import describe

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "tpu-prefill-gpu-decode.yaml"
KV_PER_TOKEN = 131_072
WIRE_S_PER_TOKEN = KV_PER_TOKEN / (12.5e9 * 0.7)
PATH_LATENCY_S = 60e-6
REPAGE_S_PER_TOKEN = 2 * KV_PER_TOKEN / (300e9 * 0.8)
T4_DECODE = ["pools.decode.accelerator=nvidia-t4", "pools.decode.tp=2",
             "pools.decode.precision=fp16"]  # fmt: skip


def test_the_l4_pairing_only_repages_and_moves_bf16_kv() -> None:
    info = describe(hetsim.load_scenario(SCENARIO))
    (pair,) = info["portability"]
    assert pair["verdict"] == "convertible"
    kinds = {c["kind"] for c in pair["conversions"]}
    assert "dtype" not in kinds and "page_size" in kinds
    assert info["unused_conversions"] == []
    assert {p["name"]: p["kv_bytes_per_token"] for p in info["pools"]} == {
        "prefill": KV_PER_TOKEN,
        "decode": KV_PER_TOKEN,
    }


def test_a_t4_decode_pool_needs_the_bf16_to_fp16_cast_declared() -> None:
    with pytest.raises(InputError) as err:
        hetsim.load_scenario(SCENARIO, T4_DECODE)
    assert "bf16" in str(err.value) and "fp16" in str(err.value)
    cast = "kv.conversions=[{kind: dtype, from: bf16, to: fp16, where: consumer}]"
    sc = hetsim.load_scenario(SCENARIO, [*T4_DECODE, cast])
    (pair,) = describe(sc)["portability"]
    assert any(c["kind"] == "dtype" and c["where"] == "consumer" for c in pair["conversions"])


def test_a_lone_handoff_takes_the_wire_time_plus_the_repaging() -> None:
    # 0.2 req/s: no two transfers share a hop, so each takes exactly its own hand-computed time
    sc = hetsim.load_scenario(
        SCENARIO, ["workload.synthetic.requests=12", "workload.synthetic.rate=0.2 req/s"]
    )
    result = hetsim.simulate(sc)
    frame = result.to_frame()
    assert (frame.status == "completed").all() and result.summary.kv_blocks_leaked == 0
    handoff = frame.transfer_end_s - frame.transfer_start_s
    tokens = frame.input_tokens
    expected = tokens * (WIRE_S_PER_TOKEN + REPAGE_S_PER_TOKEN) + PATH_LATENCY_S
    assert handoff.to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-6)
