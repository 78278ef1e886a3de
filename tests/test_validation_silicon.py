"""The silicon-sample validation: reading NVIDIA's end-to-end sample, posing its rows as
scenarios (or saying why not), and the error and coverage tables. Expected values are read
from the excerpt's CSV text with the csv module or worked out by hand, never from the code under
test."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest

from hetsim.errors import InputError
from hetsim.validation import (
    INFERENCEX,
    UNRECORDED,
    Mode,
    Outcome,
    Posed,
    Reason,
    RowResult,
    Runtime,
    SiliconValidation,
    Unposed,
    collapse_duplicates,
    pose,
    protocol_of,
    read_silicon,
    select_rows,
)

EXCERPT = Path(__file__).parent / "data" / "silicon" / "silicon_sample_excerpt.csv"


@pytest.fixture(scope="module")
def rows():
    return read_silicon(EXCERPT)


@pytest.fixture(scope="module")
def raw():
    with EXCERPT.open(newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def by_id(rows, needle):
    (found,) = [r for r in rows if needle in r.id]
    return found


# --- reading ---------------------------------------------------------------------------------


def test_reader_types_every_row_with_times_in_seconds(rows, raw):
    assert len(rows) == len(raw) == 41
    row = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    assert row.runtime is Runtime.SGLANG and row.mode is Mode.AGG
    assert row.ttft_s == pytest.approx(float(raw[row.id]["silicon_ttft_ms"]) / 1000)
    assert row.tpot_s == pytest.approx(0.01029225441516629)
    assert (row.isl, row.osl, row.system) == (1024, 1024, "h200_sxm")


def test_concurrency_comes_from_the_data_source_text(rows):
    row = by_id(rows, "disagg_8192x1024_c256_cfg434")
    assert row.concurrency == 256  # "...; silicon_concurrency=256; ..."
    assert by_id(rows, "gb200_trtllm_agg_4000x1000_c_tp8").concurrency is None


def test_agg_and_disagg_parallelism_blank_and_zero_degrees_read_as_one(rows):
    agg = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    assert agg.prefill is None and agg.decode is None
    assert (agg.agg.tp, agg.agg.dp, agg.agg.moe_tp, agg.agg.moe_ep) == (8, 1, 8, 1)
    dis = by_id(rows, "dsr1_h100_trtllm_fp8_disagg_8192x1024_c6_cfg494")
    assert dis.agg is None
    assert (dis.prefill.workers, dis.prefill.tp, dis.prefill.dp, dis.prefill.devices) == (
        1,
        1,
        16,
        16,
    )
    assert (dis.decode.workers, dis.decode.tp, dis.decode.batch_size) == (3, 16, 2)
    dense = by_id(rows, "qwen_qwen3_32b_h100_sxm_sglang_agg_1024x128_c16_tp2")
    assert dense.agg.dp == 1  # attention_dp_size is blank in the file


def test_duplicate_measurements_collapse_to_the_median_of_their_repeats(rows):
    unique = collapse_duplicates(rows)
    assert len(unique) == len(rows) - 1
    (twice,) = [r for r in unique if r.repeats == 2]
    # the two rows (file lines 35 and 39) measured tp8 DeepSeek-R1 fp8 on B200 under SGLang
    assert twice.ttft_s == pytest.approx((0.490443086437881 + 0.4785895008710213) / 2)
    assert twice.tpot_s == pytest.approx((0.006771537098234035 + 0.009606845544263849) / 2)


def test_a_file_in_another_format_is_an_input_error_naming_the_missing_columns(tmp_path):
    bad = tmp_path / "bench.csv"
    bad.write_text("id,ttft\nx,1\n")
    with pytest.raises(InputError) as err:
        read_silicon(bad)
    assert err.value.exit_code == 2
    assert "silicon_concurrency" not in err.value.message  # columns, not their content
    assert "silicon_data_source" in err.value.message and str(bad) in err.value.render()


@pytest.mark.parametrize(
    ("column", "value", "allowed"),
    [("mode", "hybrid", "agg, disagg"), ("backend", "tgi", "vllm, sglang, trtllm"),
     ("silicon_ttft_ms", "n/a", "a positive number"), ("tp_size", "2.5", "a whole number >= 0")],
)  # fmt: skip
def test_a_bad_value_names_line_column_value_and_what_is_allowed(tmp_path, column, value, allowed):
    lines = EXCERPT.read_text().splitlines()
    header = lines[0].split(",")
    first = next(csv.reader([lines[6]]))  # file line 7: the SGLang agg DeepSeek row
    first[header.index(column)] = value
    path = tmp_path / "sample.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, first])
    with pytest.raises(InputError) as err:
        read_silicon(path)
    assert (err.value.line, err.value.field, err.value.value) == (2, column, value)
    assert err.value.allowed == allowed


# --- posing rows as scenarios ----------------------------------------------------------------

# DeepSeek's fp8 checkpoint declares 128 x 128 weight blocks
FP8 = {"weights": "fp8_e4m3", "activations": "fp8_e4m3", "kv": "fp8_e4m3", "fp8_scales": "block"}


def test_an_agg_row_is_one_colocated_engine_under_a_closed_loop_at_its_concurrency(rows):
    posed = pose(by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81"))
    assert isinstance(posed, Posed)
    assert (posed.model, posed.profile) == ("DeepSeek-V3", "nvidia-h200-sxm")
    scenario = posed.scenario
    assert scenario["pools"] == [
        {
            "name": "engine",
            "role": "colocated",
            "accelerator": "nvidia-h200-sxm",
            "runtime": "sglang",
            "instances": 1,
            "tp": 8,
            "dp": 1,
            "ep": 1,  # moe_tp 8 x moe_ep 1: experts split by tp
            # the script sets no --kv-cache-dtype: SGLang's auto, the model's bf16
            "precision": {**FP8, "kv": "bf16"},
            # its launch script (benchmarks/single_node/dsr1_fp8_h200.sh at its run's commit):
            # --max-running-requests 512, --chunked-prefill-size 32768,
            # --mem-fraction-static 0.82 (hetsim.validation.launches)
            "batching": {"max_num_seqs": 512, "max_batched_tokens": 32768, "chunk_size": 32768},
            "memory_utilization": 0.82,
        }
    ]
    assert posed.launch.label == "benchmarks/single_node/dsr1_fp8_h200.sh@12ba0ae072"
    assert scenario["interconnect"] == {"paths": []}
    # an InferenceX run (db-dump source): lengths uniform in [0.8 L, L], ten requests per
    # client, every client at once, every request measured
    assert posed.protocol is INFERENCEX
    assert scenario["workload"] == {
        "closed_loop": {
            "concurrency": 4,
            "requests": 40,
            "think_time": "0 s",
            "ramp_up": {"strategy": "none"},
            "input_tokens": {"dist": "uniform", "min": 819, "max": 1024},
            "output_tokens": {"dist": "uniform", "min": 819, "max": 1024},
        },
        "warmup_requests": 0,
    }
    assert scenario["model"] == "DeepSeek-V3"


def test_a_disagg_row_keeps_worker_counts_and_scales_batch_by_attention_dp(rows):
    posed = pose(by_id(rows, "dsr1_h200_sglang_fp8_disagg_8192x1024_c256_cfg434"))
    prefill, decode = posed.scenario["pools"]
    assert (prefill["role"], prefill["instances"], prefill["tp"], prefill["dp"]) == (
        "prefill",
        1,
        8,
        1,
    )
    assert prefill["ep"] == 1 and prefill["batching"]["max_num_seqs"] == 1
    assert (decode["role"], decode["instances"], decode["tp"], decode["dp"]) == ("decode", 1, 1, 8)
    assert decode["ep"] == 8  # moe_ep 8 = every device of the engine
    # 32 running requests per attention-dp rank x 8 ranks
    assert decode["batching"] == {"max_num_seqs": 256, "max_batched_tokens": 256}
    # 8 + 8 GPUs exceed one 8-GPU NVLink domain: KV leaves through the prefill engine's 8 NICs
    (path,) = posed.scenario["interconnect"]["paths"]
    assert (path["from"], path["to"]) == ("prefill", "decode")
    assert path["hops"] == [
        {"name": "scale_out", "kind": "nic", "bandwidth": "8 x 50 GB/s", "latency": "5 us",
         "shared_by": "source_instance"}
    ]  # fmt: skip


def test_disagg_workers_within_one_node_hand_kv_over_nvlink(rows):
    row = by_id(rows, "nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_disagg")
    small = dataclasses.replace(
        row,
        prefill=dataclasses.replace(row.prefill, workers=2),  # 2 x tp1
        decode=dataclasses.replace(row.decode, workers=1),  # + 1 x tp4 = 6 of 8 GPUs
    )
    posed = pose(small)
    (path,) = posed.scenario["interconnect"]["paths"]
    assert path["hops"][0] | {} == {
        "name": "nvlink", "kind": "scale_up", "bandwidth": "1 x 900 GB/s", "latency": "10 us",
        "shared_by": "source_instance",
    }  # fmt: skip
    fp4 = posed.scenario["pools"][0]["precision"]
    assert fp4 == {"weights": "fp4", "activations": "fp4", "kv": "fp8_e4m3"}


@pytest.mark.parametrize(
    ("source", "protocol"),
    [("db-dump/2026-04-27; config_id=81; silicon_concurrency=4", INFERENCEX),
     ("source_file=2026-04-06.csv; model=Llama-3.1-70B; silicon_concurrency=8", INFERENCEX),
     ("source_file=kimi-k2.5-gap-analysis.csv; silicon_concurrency=4", INFERENCEX),
     ("source_file=/Users/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/1.0.0rc3/Qwen_Qwen3-32B.csv",
      UNRECORDED),
     ("", UNRECORDED)],
)  # fmt: skip
def test_the_benchmark_protocol_is_read_from_the_data_source(rows, source, protocol):
    row = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    assert protocol_of(dataclasses.replace(row, source=source)) is protocol


def test_every_inferencex_row_of_the_excerpt_is_one_of_its_fixed_length_scenarios(rows):
    scenarios = {(r.isl, r.osl) for r in rows if protocol_of(r) is INFERENCEX}
    assert scenarios <= {(1024, 1024), (1024, 8192), (8192, 1024)} and scenarios


def test_an_unrecorded_client_is_posed_with_the_rows_exact_lengths(rows):
    row = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    posed = pose(dataclasses.replace(row, source="source_file=/data/h200_sxm/x.csv"))
    assert posed.protocol is UNRECORDED
    loop = posed.scenario["workload"]["closed_loop"]
    assert loop["input_tokens"] == loop["output_tokens"] == {"dist": "fixed", "value": 1024}
    assert loop["requests"] == 40 and posed.scenario["workload"]["warmup_requests"] == 0


def test_deepseek_r1_is_posed_on_the_deepseek_v3_architecture_and_says_so(rows):
    posed = pose(by_id(rows, "2026_04_06_deepseek_r1_b200_sxm_sglang_fp8_agg_8192x1024_c4"))
    assert posed.model == "DeepSeek-V3" and "R1" in posed.model_note


@pytest.mark.parametrize(
    ("needle", "reason", "words"),
    [
        ("gb200_trtllm_agg_4000x1000_c_tp8", Reason.NO_CONCURRENCY, "silicon_concurrency"),
        ("c5632_tp72_ep1_43", Reason.CONTRADICTORY_PARALLELISM,
         "tp=72 does not divide the 128 attention heads"),
        ("dsr1_h100_trtllm_fp8_disagg_8192x1024_c6", Reason.INSTANCE_SPANS_DOMAIN, "16 devices"),
        ("tp8_ep8_920", Reason.CONTRADICTORY_PARALLELISM, "id says tp8/ep8; columns say tp=64"),
        ("qwen3_5_b200_sglang_fp8_agg_8192x1024_c64", Reason.CONTRADICTORY_PARALLELISM,
         "tp=16 = moe_tp 4 x moe_ep 4"),
    ],
)  # fmt: skip
def test_rows_hetsim_cannot_pose_say_why(rows, needle, reason, words):
    posed = pose(by_id(rows, needle))
    assert isinstance(posed, Unposed)
    assert posed.reason is reason and words in posed.detail


def test_a_format_the_accelerator_lacks_is_a_reason_not_a_substitute(rows):
    row = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    posed = pose(dataclasses.replace(row, precision="fp4"))  # H200 has no FP4 tensor cores
    assert posed.reason is Reason.FORMAT and "weights fp4" in posed.detail
    assert pose(dataclasses.replace(row, precision="mxfp8")).reason is Reason.FORMAT


def test_pipeline_parallel_rows_are_not_posed(rows):
    row = by_id(rows, "dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    piped = dataclasses.replace(row, agg=dataclasses.replace(row.agg, tp=4, moe_tp=4, pp=2))
    assert pose(piped).reason is Reason.PIPELINE_PARALLEL


def test_every_excerpt_row_is_posed_or_has_a_reason(rows):
    outcomes = [pose(r) for r in rows]
    # 31, and since mixed MoE splits: cfg666's two (attention dp 8 with moe_tp 8) and the
    # GB300 decode row of moe_tp 2 x moe_ep 4; less the three disagg rows (c4, c288, c1600)
    # that record no worker counts
    assert sum(isinstance(p, Posed) for p in outcomes) == 31
    unknown = [p for p in outcomes if getattr(p, "reason", None) is Reason.WORKERS_NOT_RECORDED]
    assert sorted(p.row.concurrency for p in unknown) == [4, 288, 1600]
    contradicted = [
        p for p in outcomes if getattr(p, "reason", None) is Reason.CONTRADICTORY_PARALLELISM
    ]
    assert len(contradicted) == 5 and all(p.row.mode is Mode.AGG for p in contradicted)


# --- the error and coverage tables -----------------------------------------------------------


def result(system, runtime, measured, predicted, reason="", outcome=Outcome.PREDICTED):
    """A row result with the same relative error on TTFT and TPOT."""
    return RowResult(
        id=f"{system}-{runtime}-{measured}-{predicted}", line=2, system=system, runtime=runtime,
        model="Qwen/Qwen3-32B", mode="agg", protocol="unrecorded", isl=1024, osl=128,
        concurrency=4, repeats=1,
        measured_ttft_s=measured, measured_tpot_s=measured / 100,
        predicted_ttft_s=predicted, predicted_tpot_s=predicted / 100,
        outcome=outcome, reason=reason, detail="", provenance="roofline-default",
    )  # fmt: skip


@pytest.fixture
def validation():
    return SiliconValidation(
        (
            result("h200_sxm", "vllm", 1.0, 1.1),  # +10 %
            result("h200_sxm", "sglang", 1.0, 0.8),  # -20 %
            result("b200_sxm", "vllm", 2.0, 3.0),  # +50 %
            result("b300_sxm", "vllm", 1.0, math.nan, "unknown_system", Outcome.UNPOSED),
        )
    )


def test_error_table_gives_median_p90_and_signed_median_of_relative_errors(validation):
    table = validation.error_table().set_index(["by", "group"])
    overall = table.loc[("all", "all")]
    assert overall["rows"] == 3  # the unposed row has no prediction
    for what in ("ttft", "tpot"):
        assert overall[f"{what}_median_abs_pct"] == pytest.approx(20.0)
        # |errors| 10, 20, 50: the 90th percentile interpolates 20 + 0.8 x 30
        assert overall[f"{what}_p90_abs_pct"] == pytest.approx(44.0)
        assert overall[f"{what}_signed_median_pct"] == pytest.approx(10.0)
    h200 = table.loc[("system", "h200_sxm")]
    assert h200["rows"] == 2 and h200["ttft_signed_median_pct"] == pytest.approx(-5.0)
    assert table.loc[("runtime", "sglang")]["tpot_median_abs_pct"] == pytest.approx(20.0)
    groupings = {"all", "system", "runtime", "model", "family", "mode", "protocol"}
    assert set(table.index.get_level_values("by")) == groupings


def test_per_row_frame_reports_milliseconds_signed_error_and_why(validation):
    frame = validation.to_frame().set_index("id")
    row = frame.loc["b200_sxm-vllm-2.0-3.0"]
    assert (row["measured_ttft_ms"], row["predicted_ttft_ms"]) == (2000.0, 3000.0)
    assert row["ttft_error_pct"] == pytest.approx(50.0)
    assert row["outcome"] == "predicted" and row["provenance"] == "roofline-default"
    unposed = frame.loc["b300_sxm-vllm-1.0-nan"]
    assert unposed["reason"] == "unknown_system" and math.isnan(unposed["ttft_error_pct"])


def test_coverage_counts_rows_predicted_and_left_out_by_reason(validation):
    cov = validation.coverage(by="system").set_index("system")
    assert cov.loc["all", "rows"] == 4 and cov.loc["all", "predicted"] == 3
    assert cov.loc["b300_sxm", "unknown_system"] == 1 and cov.loc["b300_sxm", "predicted"] == 0
    assert cov.loc["h200_sxm", "predicted"] == 2


def test_select_rows_filters_then_takes_a_repeatable_seeded_subset(rows):
    h200 = select_rows(rows, systems=["h200_sxm"])
    assert h200 and all(r.system == "h200_sxm" for r in h200)
    vllm = select_rows(rows, runtimes=[Runtime.VLLM])
    assert vllm and all(r.runtime is Runtime.VLLM for r in vllm)
    some = select_rows(rows, limit=5)
    assert len(some) == 5 and some == select_rows(rows, limit=5)
    assert [r.line for r in some] == sorted(r.line for r in some)  # file order kept
    assert select_rows(rows, limit=500) == rows
