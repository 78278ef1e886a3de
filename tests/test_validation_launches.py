"""Silicon rows posed with the launch settings their benchmark scripts gave the server
(hetsim.validation.launches), never with settings read from the measured values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hetsim.spec.scenario import Batching
from hetsim.validation import Runtime, read_silicon
from hetsim.validation.launches import AMBIGUOUS, DEFAULTS, launch_of, launch_table
from hetsim.validation.pose import Posed, pose
from hetsim.validation.protocols import INFERENCEX, protocol_of

EXCERPT = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"
# an InferenceX run: DeepSeek-R1 FP8 on 8 H200 with SGLang, 64 clients, 1k/1k, 2026-03-25
ROW_ID = "2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c64_tp8_0_ep1_0_256"
TABLE = f"""# a comment line
id,launch,max_batched_tokens,max_num_seqs,memory_utilization,kv,scheduler_recv_interval,batch_wait_timeout_iters,batch_wait_max_tokens_ratio,attention_dp_balance_timeout_iters,attention_dp_batching_wait_iters
{ROW_ID},benchmarks/x.sh@abc,16384,,0.82,fp8_e4m3,30,,,,
other_repeat,benchmarks/x.sh@def,8192,,,,,,,,
balanced,benchmarks/y.sh@ghi,8192,,,,,,,60,0
per_rank,benchmarks/z.sh@jkl,1152,32,,,,,,,
"""


@pytest.fixture(scope="module")
def row():
    (found,) = [r for r in read_silicon(EXCERPT) if r.id == ROW_ID]
    return found


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "launches.csv"
    path.write_text(TABLE, encoding="utf-8")
    return launch_table(path)


def test_a_listed_row_gets_its_scripts_settings(row, table):
    launch = launch_of(row, table)
    assert launch.settings == {
        "batching": {
            "max_batched_tokens": 16384,
            "chunk_size": 16384,
            "scheduler_recv_interval": 30,
        },
        "memory_utilization": 0.82,
        "precision": {"kv": "fp8_e4m3"},
    }
    assert launch.label == "benchmarks/x.sh@abc"


def test_the_posed_engine_runs_with_them(row, table):
    posed = pose(row, table)
    assert isinstance(posed, Posed)
    (engine,) = posed.scenario["pools"]
    assert engine["batching"] == {
        "max_num_seqs": 64,  # the row's own, which the script leaves as it is
        "max_batched_tokens": 16384,
        "chunk_size": 16384,
        "scheduler_recv_interval": 30,
    }
    assert engine["memory_utilization"] == 0.82
    assert engine["precision"] == {
        "weights": "fp8_e4m3",
        "activations": "fp8_e4m3",
        "kv": "fp8_e4m3",
        "fp8_scales": "block",  # DeepSeek's checkpoint declares 128 x 128 blocks
    }


def test_repeats_run_under_different_settings_keep_the_defaults_and_say_so(row, table):
    both = dataclasses.replace(row, repeat_ids=(ROW_ID, "other_repeat"))
    assert launch_of(both, table).settings == {}
    assert launch_of(both, table).label == AMBIGUOUS
    unlisted = dataclasses.replace(row, repeat_ids=(ROW_ID, "never_listed"))
    assert launch_of(unlisted, table).label == AMBIGUOUS


def test_unlisted_other_client_and_disaggregated_rows_keep_the_defaults(row, table):
    assert launch_of(dataclasses.replace(row, id="never_listed"), table).label == DEFAULTS
    unrecorded = dataclasses.replace(row, source="source_file=/data/h200_sxm/x.csv")
    assert launch_of(unrecorded, table).label == DEFAULTS
    assert launch_of(dataclasses.replace(row, agg=None), table).label == DEFAULTS


def test_the_bundled_table_lists_settings_hetsim_models_for_inferencex_rows():
    table = launch_table()
    assert len(table) > 2000
    for row_id, launch in table.items():
        assert "@" in launch.label and launch.label.startswith("benchmarks/"), row_id
        assert set(launch.settings) <= {"batching", "memory_utilization", "precision"}
        Batching(**launch.settings.get("batching", {}))  # valid batching settings
        assert 0 < launch.settings.get("memory_utilization", 0.5) <= 1
        assert launch.settings.get("precision", {}).get("kv", "fp8_e4m3") == "fp8_e4m3"
    excerpt = {r.id: r for r in read_silicon(EXCERPT)}
    listed = [excerpt[i] for i in table.keys() & excerpt.keys()]
    assert listed and all(protocol_of(r) is INFERENCEX for r in listed)


def test_balancing_where_the_row_records_one_rank_is_named_not_modelled(row, table):
    one_rank = dataclasses.replace(row, id="balanced")  # its engine records dp 1
    launch = launch_of(one_rank, table)
    assert launch.settings["batching"] == {"max_batched_tokens": 8192, "chunk_size": 8192}
    assert "attention DP" in launch.unmodelled
    ranks = dataclasses.replace(one_rank, agg=dataclasses.replace(row.agg, tp=1, dp=8))
    balanced = launch_of(ranks, table)
    assert balanced.settings["batching"]["attention_dp_balance_timeout_iters"] == 60
    assert balanced.unmodelled == ""


@pytest.mark.parametrize(
    ("runtime", "tokens", "seqs"),
    [
        (Runtime.TRTLLM, 8 * 1152, 8 * 32),
        (Runtime.VLLM, 8 * 1152, 8 * 32),
        (Runtime.SGLANG, 1152, 32),
    ],
)
def test_per_rank_limits_are_the_engines_times_its_ranks(row, table, runtime, tokens, seqs):
    """TensorRT-LLM's max_num_tokens and vLLM's --max-num-batched-tokens are each attention-DP
    rank's; SGLang divides its chunk among the ranks (its value is the engine's)."""
    ranks = dataclasses.replace(row, id="per_rank", runtime=runtime,
                                agg=dataclasses.replace(row.agg, tp=1, dp=8))  # fmt: skip
    batching = launch_of(ranks, table).settings["batching"]
    assert (batching["max_batched_tokens"], batching["max_num_seqs"]) == (tokens, seqs)
    assert batching["chunk_size"] == 1152  # one prompt's chunk is one rank's


def test_a_known_script_that_sets_no_kv_dtype_runs_the_runtimes_bf16_kv(row, tmp_path):
    # SGLang's --kv-cache-dtype auto is the model's dtype: DeepSeek's block-scaled fp8
    # checkpoint quantizes its weights only, so the KV stays bf16 where the script says nothing
    header = TABLE.splitlines()[1]
    path = tmp_path / "launches.csv"
    path.write_text(f"{header}\n{ROW_ID},benchmarks/x.sh@abc,16384,,0.82,,,,,,\n")
    posed = pose(row, launch_table(path))
    assert isinstance(posed, Posed)
    assert posed.scenario["pools"][0]["precision"]["kv"] == "bf16"
    # a script not known: the FP8 KV hetsim assumes for quantized rows stays
    unknown = pose(row, {})
    assert isinstance(unknown, Posed) and unknown.launch.label == DEFAULTS
    assert unknown.scenario["pools"][0]["precision"]["kv"] == "fp8_e4m3"
