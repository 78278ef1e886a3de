"""Benchmark result files (vLLM, SGLang, genai-perf, LLMServingSim) become one request table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import InputError
from hetsim.validation import Arrivals, BenchFormat, read_bench, write_import

DATA = Path(__file__).resolve().parent / "data" / "bench"
RTX4090 = DATA / "llmservingsim" / "RTX4090-Llama-3.1-8B"


def _vllm(**extra) -> dict:
    """A vllm bench serve --save-result --save-detailed file: three good requests, one failed."""
    doc = {
        "date": "20260801-120000",
        "backend": "vllm",
        "model_id": "meta-llama/Llama-3.1-8B",
        "num_prompts": 4,
        "request_rate": 2.0,
        "burstiness": 1.0,
        "max_concurrency": None,
        "input_lens": [100, 200, 300, 400],
        "output_lens": [3, 2, 1, 0],
        "ttfts": [0.1, 0.2, 0.3, 0.0],
        "itls": [[0.01, 0.03], [0.02], [], []],
        "start_times": [10.5, 10.0, 11.0, 11.5],
        "errors": ["", "", "", "Bad Request"],
        "mean_ttft_ms": 200.0,
    }
    doc.update(extra)
    return doc


def _write(tmp_path: Path, doc: dict | list, name: str = "r.json") -> Path:
    path = tmp_path / name
    if isinstance(doc, list):  # JSON lines
        path.write_text("".join(json.dumps(d) + "\n" for d in doc))
    else:
        path.write_text(json.dumps(doc))
    return path


def test_vllm_result_gives_send_times_ttft_tpot_and_drops_failures(tmp_path):
    run = read_bench(_write(tmp_path, _vllm()))
    assert run.format is BenchFormat.VLLM and run.arrivals is Arrivals.TIMED
    assert run.failed == 1 and run.model == "meta-llama/Llama-3.1-8B"
    r = run.requests
    # sorted by send time: the 200-token request was sent first (t = 10.0)
    assert r["input_tokens"].tolist() == [200, 100, 300]
    assert r["arrival_s"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    # 100-token request: ttft 0.1, e2e 0.1 + 0.01 + 0.03, tpot (e2e - ttft) / (3 - 1)
    first = r[r["input_tokens"] == 100].iloc[0]
    assert first["e2e_s"] == pytest.approx(0.14)
    assert first["tpot_s"] == pytest.approx(0.02)
    assert first["itl_s"] == pytest.approx(0.02)
    one_token = r[r["output_tokens"] == 1].iloc[0]
    assert math.isnan(one_token["tpot_s"])


def test_summary_only_result_names_the_flag_that_saves_requests(tmp_path):
    doc = {k: v for k, v in _vllm().items() if k not in ("ttfts", "itls", "input_lens")}
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field == "ttfts" and "--save-detailed" in exc.value.render()


def test_a_finite_rate_without_send_times_is_refused_not_guessed(tmp_path):
    doc = _vllm()
    del doc["start_times"]
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field == "start_times"


def test_rate_inf_without_send_times_is_a_burst_at_zero(tmp_path):
    doc = _vllm(request_rate="inf")
    del doc["start_times"]
    run = read_bench(_write(tmp_path, doc))
    assert run.arrivals is Arrivals.BURST
    assert run.requests["arrival_s"].tolist() == [0.0, 0.0, 0.0]


def test_lists_of_different_lengths_name_the_short_one(tmp_path):
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, _vllm(output_lens=[3, 2])))
    assert exc.value.field == "output_lens" and "4 entries" in exc.value.render()


def test_a_token_count_that_is_not_a_whole_number_is_named(tmp_path):
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, _vllm(output_lens=[3, 2, None, 0])))
    assert exc.value.field == "output_lens[2]"


def test_sglang_output_details_with_concurrency_is_a_closed_loop(tmp_path):
    doc = _vllm(max_concurrency=8, sharegpt_output_len=None, request_rate=float("inf"))
    for key in ("start_times", "model_id", "date"):
        del doc[key]
    run = read_bench(_write(tmp_path, [doc], "s.jsonl"))
    assert run.format is BenchFormat.SGLANG and run.arrivals is Arrivals.CLOSED_LOOP
    assert run.concurrency == 8 and run.requests["arrival_s"].isna().all()
    block = run.workload("trace.jsonl")["closed_loop"]
    assert block["concurrency"] == 8 and block["requests"] == 3


def test_appended_runs_are_refused_one_run_per_file(tmp_path):
    doc = _vllm(sharegpt_output_len=None)
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, [doc, doc], "s.jsonl"))
    assert "2 runs" in exc.value.message


def _genai(usage: bool) -> dict:
    def chunk(text: str) -> dict:
        return {"response": "data: " + json.dumps({"choices": [{"text": text}]}) + "\n\n"}

    outputs = [chunk("I"), chunk(" like"), chunk(" dogs")]
    if usage:
        body = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}
        outputs.append({"response": "data: " + json.dumps(body) + "\n\n"})
    stamps = [3_000_000_000, 5_000_000_000, 8_000_000_000, 8_100_000_000][: len(outputs)]
    request = {"timestamp": 1_000_000_000, "request_inputs": {"payload": "{}"},
               "response_timestamps": stamps, "response_outputs": outputs}  # fmt: skip
    return {
        "service_kind": "openai",
        "endpoint": "v1/completions",
        "experiments": [{"experiment": {"mode": "concurrency", "value": 2}, "requests": [request]}],
    }


def test_genai_perf_export_takes_lengths_from_usage_and_times_from_text_chunks(tmp_path):
    run = read_bench(_write(tmp_path, _genai(usage=True)))
    assert run.format is BenchFormat.GENAI_PERF and run.arrivals is Arrivals.CLOSED_LOOP
    r = run.requests.iloc[0]
    assert (r["input_tokens"], r["output_tokens"]) == (12, 3)
    # sent at 1 s, text at 3, 5 and 8 s (the usage chunk at 8.1 s carries no token)
    assert r["ttft_s"] == pytest.approx(2.0) and r["e2e_s"] == pytest.approx(7.0)
    assert r["tpot_s"] == pytest.approx(2.5) and r["itl_s"] == pytest.approx(2.5)


def test_genai_perf_export_without_usage_says_how_to_get_token_counts(tmp_path):
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, _genai(usage=False)))
    assert exc.value.field.endswith("response_outputs") and "include_usage" in exc.value.render()


def test_llmservingsim_run_matches_its_own_summary():
    run = read_bench(RTX4090)
    assert run.format is BenchFormat.LLMSERVINGSIM and len(run.requests) == 300
    first = run.requests.iloc[0]
    # bench-0: first_token_ts 27537.350135653 - queued_ts 27536.660701067
    assert first["ttft_s"] == pytest.approx(0.689434586)
    assert first["arrival_s"] == 0.0
    # LLMServingSim's validation/summary.txt for this run: TTFT mean 65456.6 ms, TPOT 32.4 ms
    assert run.requests["ttft_s"].mean() == pytest.approx(65.4566, abs=1e-4)
    assert run.requests["tpot_s"].mean() == pytest.approx(0.0324, abs=1e-4)


def test_import_writes_a_mooncake_trace_hetsim_reads(tmp_path):
    from hetsim.spec.workload import WorkloadSpec
    from hetsim.workload import load_requests

    run = read_bench(_write(tmp_path, _vllm()))
    write_import(run, tmp_path / "out")
    spec = WorkloadSpec.model_validate({"trace": {"path": "trace.jsonl", "format": "mooncake"}})
    chunk = load_requests(spec, tmp_path / "out", seed=0)
    assert chunk.arrival_s.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert chunk.input_tokens.tolist() == [200, 100, 300]
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["arrivals"] == "timed" and info["workload"]["trace"]["format"] == "mooncake"


def test_cli_import_of_an_unknown_file_is_an_input_error(tmp_path):
    path = _write(tmp_path, {"hello": 1})
    result = CliRunner().invoke(app, ["bench", "import", str(path)])
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "ttfts" and "genai-perf" in result.exception.render()


def test_genai_perf_usage_without_completion_tokens_is_refused_not_counted_by_chunk(tmp_path):
    doc = _genai(usage=True)
    outputs = doc["experiments"][0]["requests"][0]["response_outputs"]
    body = {"choices": [], "usage": {"prompt_tokens": 12}}
    outputs[-1] = {"response": "data: " + json.dumps(body) + "\n\n"}
    with pytest.raises(InputError, match="completion_tokens"):
        read_bench(_write(tmp_path, doc))


@pytest.mark.parametrize("bad", ["experiment", "request"])
def test_genai_perf_parts_that_are_not_objects_name_their_field(tmp_path, bad):
    doc = _genai(usage=True)
    if bad == "experiment":
        doc["experiments"] = [[1, 2]]
    else:
        doc["experiments"][0]["requests"] = ["not a request"]
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field.startswith("experiments[0]")


def test_llmservingsim_meta_that_is_not_an_object_is_an_input_error(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "meta.json").write_text("[1, 2]")
    (folder / "requests.jsonl").write_text((RTX4090 / "requests.jsonl").read_text())
    with pytest.raises(InputError, match="not a JSON object"):
        read_bench(folder)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start_times": [10.5, 10.0, 11.0]}, "start_times"),  # one short: not ignored
        ({"latencies": [0.2]}, "latencies"),
        ({"errors": 5}, "errors"),
        ({"itls": ["12", [0.02], [], []]}, "itls[0]"),  # a string is not a list of gaps
        ({"ttfts": [float("inf"), 0.2, 0.3, 0.0]}, "ttfts[0]"),
        ({"ttfts": ["0.1", 0.2, 0.3, 0.0]}, "ttfts[0]"),
        # the last token before the first: an end-to-end latency below the TTFT
        ({"latencies": [0.05, 0.3, 0.4, 0.0]}, "end-to-end latency"),
    ],
)
def test_vllm_lists_that_cannot_be_measurements_are_refused(tmp_path, change, field):
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, _vllm(**change)))
    assert exc.value.field == field


def _genai_request(doc: dict) -> dict:
    return doc["experiments"][0]["requests"][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.update(response_timestamps=[]), "response_timestamps"),
        (lambda r: r.update(response_outputs=5), "response_outputs"),
        (lambda r: r["response_timestamps"].reverse(), "response_timestamps"),  # out of order
        (lambda r: r.update(timestamp=9_000_000_000), "time to first token"),  # after the tokens
        (lambda r: r.update(timestamp=True), "experiments[0].requests[0]"),
    ],
)
def test_genai_perf_requests_that_cannot_be_measurements_are_refused(tmp_path, change, field):
    doc = _genai(usage=True)
    change(_genai_request(doc))
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field.endswith(field)


def test_genai_perf_negative_usage_and_missing_client_count_are_refused(tmp_path):
    doc = _genai(usage=True)
    body = {"choices": [], "usage": {"prompt_tokens": -12, "completion_tokens": 3}}
    _genai_request(doc)["response_outputs"][-1] = {"response": "data: " + json.dumps(body)}
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field == "prompt tokens" and exc.value.value == -12
    doc = _genai(usage=True)
    del doc["experiments"][0]["experiment"]["value"]
    with pytest.raises(InputError) as exc:  # was silently a burst
        read_bench(_write(tmp_path, doc))
    assert exc.value.field == "experiments[0].experiment.value"
    doc = _genai(usage=True)
    doc["experiments"][0]["requests"] = 5
    with pytest.raises(InputError) as exc:
        read_bench(_write(tmp_path, doc))
    assert exc.value.field == "experiments[0].requests"


@pytest.mark.parametrize(
    ("row", "field"),
    [({"input_toks": 100.7}, "input_toks"), ({"input_toks": -100}, "input_toks"),
     ({"queued_ts": float("nan")}, "queued_ts"),
     ({"first_token_ts": 1.0, "last_token_ts": 0.5}, "end-to-end latency")],
)  # fmt: skip
def test_llmservingsim_rows_that_cannot_be_measurements_are_refused(tmp_path, row, field):
    folder = tmp_path / "run"
    folder.mkdir()
    good = {"input_toks": 100, "output_toks": 10, "queued_ts": 0.0, "first_token_ts": 0.2,
            "last_token_ts": 0.6}  # fmt: skip
    (folder / "requests.jsonl").write_text(json.dumps(good | row) + "\n")
    (folder / "meta.json").write_text(json.dumps({"engine_kwargs": {"max_num_seqs": 8}}))
    with pytest.raises(InputError) as exc:
        read_bench(folder)
    assert exc.value.field == field
    (folder / "requests.jsonl").write_text(json.dumps(good) + "\n")
    (folder / "meta.json").write_text(json.dumps({"engine_kwargs": "abc"}))
    with pytest.raises(InputError) as exc:
        read_bench(folder)
    assert exc.value.field == "engine_kwargs"
    (folder / "meta.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(InputError, match="not UTF-8"):
        read_bench(folder)
