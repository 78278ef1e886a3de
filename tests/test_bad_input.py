"""Every user-input error ends as one clear message on stderr and exit code 2, never a traceback.

Each case writes a broken scenario (usually a mutation of ``scenarios/qwen3-32b-6p2d.yaml``),
sometimes with a broken hardware profile, model config or trace next to it, runs
``python -m hetsim check FILE [args]`` in a subprocess and checks the message names the file, the
field path and, where there is one, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import InputError

REPO = Path(__file__).resolve().parents[1]
BASE_SCENARIO = REPO / "scenarios" / "qwen3-32b-6p2d.yaml"
COLOCATED_SCENARIO = REPO / "scenarios" / "qwen3-32b-colocated.yaml"
TINY_LLAMA = REPO / "hetsim" / "model_configs" / "tiny-llama.json"
H100_PROFILE = REPO / "hardware_profiles" / "nvidia-h100-sxm.yaml"

DELETE = object()


def base_scenario(path: Path = BASE_SCENARIO) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tiny_config(**changes: Any) -> dict[str, Any]:
    """tiny-llama's config.json with ``changes`` (None removes a key)."""
    config = json.loads(TINY_LLAMA.read_text(encoding="utf-8"))
    config.pop("_hetsim_meta")
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def h100_profile() -> dict[str, Any]:
    return yaml.safe_load(H100_PROFILE.read_text(encoding="utf-8"))


def no_fp8_profile() -> dict[str, Any]:
    """An H100 copy without any fp8 support, named ``nofp8-gpu``."""
    p = h100_profile()
    p["name"] = "nofp8-gpu"
    p["display_name"] = "Test GPU without FP8"
    p["compute"].pop("fp8")
    for role in ("weights", "activations", "kv"):
        p["formats"][role] = [f for f in p["formats"][role] if not f.startswith("fp8")]
    return p


def _set(data: Any, dotted: str, value: Any) -> None:
    parts: list[Any] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parts[:-1]:
        data = data[part]
    if value is DELETE:
        del data[parts[-1]]
    else:
        data[parts[-1]] = value


# ---- how a case builds its input ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    #: builds the input under tmp_path and returns the path to pass to `hetsim check`
    build: Callable[[Path], Path]
    #: substrings stderr must contain; "{file}" stands for the scenario path, "{dir}" its folder
    expect: tuple[str, ...]
    args: tuple[str, ...] = ()
    #: files to write next to the scenario (relative path -> text, bytes or YAML/JSON data)
    extra: dict[str, Any] = field(default_factory=dict)
    #: problems the one error lists: one is one line, several a numbered line each under it
    problems: int = 1


def _write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(content), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def mutated(
    changes: dict[str, Any] | None = None,
    fn: Callable[[dict[str, Any]], None] | None = None,
    base: Path = BASE_SCENARIO,
) -> Callable[[Path], Path]:
    """The base scenario with ``dotted.path: value`` changes (``DELETE`` removes a key)."""

    def build(tmp: Path) -> Path:
        data = copy.deepcopy(base_scenario(base))
        for dotted, value in (changes or {}).items():
            _set(data, dotted, value)
        if fn is not None:
            fn(data)
        path = tmp / "scenario.yaml"
        _write(path, data)
        return path

    return build


def raw(content: str | bytes, name: str = "scenario.yaml") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        _write(path, content)
        return path

    return build


def nothing(name: str) -> Callable[[Path], Path]:
    return lambda tmp: tmp / name


def directory(tmp: Path) -> Path:
    path = tmp / "scenarios.yaml"
    path.mkdir()
    return path


def trace_workload(**trace: Any) -> Callable[[dict[str, Any]], None]:
    def fn(data: dict[str, Any]) -> None:
        data["workload"] = {"trace": trace}

    return fn


VALID_TEXT = BASE_SCENARIO.read_text(encoding="utf-8")

CASES: list[Case] = [
    # ---- the file itself ----------------------------------------------------------------------
    Case("file-not-found", nothing("missing.yaml"), ("{file}", "not found")),
    Case("file-is-a-directory", directory, ("{file}", "is a directory")),
    Case("file-empty", raw(""), ("{file}", "empty")),
    Case("file-only-comments", raw("# nothing here\n\n"), ("{file}", "empty")),
    Case(
        "file-binary", raw(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"), ("{file}", "not UTF-8")
    ),
    Case(
        "not-yaml-plain-text",
        raw("This is a README, not a scenario.\n"),
        ("{file}", "must be a mapping", "str"),
    ),
    Case("top-level-list", raw("- name: a\n- name: b\n"), ("{file}", "must be a mapping", "list")),
    Case(
        "yaml-tab-indentation",
        raw("name: x\npools:\n\t- name: a\n"),
        ("{file}:3", "not valid YAML"),
    ),
    Case(
        "yaml-unclosed-bracket",
        raw("name: x\nmodel: Qwen3-32B\npools: [\n  {name: a\nsla: 1\n"),
        ("{file}:", "not valid YAML"),
    ),
    Case(
        "yaml-duplicate-key",
        raw(VALID_TEXT + "\nsla: {ttft: 1 s, tpot: 50 ms}\n"),
        ("{file}:", "duplicate key 'sla'"),
    ),
    Case("yaml-unhashable-key", raw("name: x\n[a, b]: 1\n"), ("{file}:2", "not valid YAML")),
    Case(
        "yaml-nested-too-deeply",
        raw("a: " + "[" * 5000 + "\n"),
        ("{file}", "not valid YAML", "nested too deeply"),
    ),
    Case(
        "yaml-control-character",
        raw("name: x\nmodel: Qwen3\x0032B\n"),
        ("{file}:2", "not valid YAML", "#x0000"),
    ),
    Case(
        "yaml-alias-containing-itself",
        raw(VALID_TEXT + "\nsearch: &s {decode: {accelerators: [*s]}}\n"),
        ("{file}", "search.decode.accelerators[0]", "contains itself"),
    ),
    Case(
        "yaml-two-documents",
        raw(VALID_TEXT + "\n---\nname: other\n"),
        ("{file}:", "not valid YAML"),
    ),
    # ---- schema: keys, types, ranges, units -----------------------------------------------------
    Case(
        "unknown-top-level-key",
        mutated(fn=lambda d: d.update(slas=d.pop("sla"))),
        ("{file}", "slas", "unknown key", "did you mean 'sla'", "workload"),
    ),
    Case(
        "unknown-pool-key",
        mutated({"pools.0.instance": 3}),
        ("pools[0].instance", "did you mean 'instances'"),
    ),
    Case("missing-required-sla", mutated({"sla": DELETE}), ("{file}", "sla", "required")),
    Case(
        "section-not-a-mapping", mutated({"sla": "fast"}), ("sla", "expected a mapping", "'fast'")
    ),
    Case("no-pools", mutated({"pools": []}), ("pools", "at least 1")),
    Case(
        "instances-wrong-type",
        mutated({"pools.0.instances": "many"}),
        ("pools[0].instances", "'many'", "integer"),
    ),
    Case(
        "instances-negative",
        mutated({"pools.1.instances": -1}),
        ("pools[1].instances", "-1", "greater than or equal to 1"),
    ),
    Case(
        "memory-utilization-above-one",
        mutated({"pools.1.memory_utilization": 1.5}),
        ("pools[1].memory_utilization", "1.5"),
    ),
    Case(
        "role-typo",
        mutated({"pools.0.role": "prefil"}),
        ("pools[0].role", "'prefil'", "'prefill'", "'decode'", "'colocated'"),
    ),
    Case(
        "pool-name-duplicate", mutated({"pools.1.name": "prefill"}), ("pools", "unique", "prefill")
    ),
    Case(
        "only-prefill-pools", mutated(fn=lambda d: d["pools"].pop(1)), ("pools", "no decode pool")
    ),
    Case(
        "ttft-unit-typo",
        mutated({"sla.ttft": "2 sec"}),
        ("{file}", "sla.ttft", "'sec'", "accepted units", "ms", "us"),
    ),
    Case(
        "tpot-not-a-number", mutated({"sla.tpot": "fast"}), ("sla.tpot", "'fast'", "accepted units")
    ),
    Case(
        "bandwidth-unit-typo",
        mutated({"interconnect.paths.0.hops.0.bandwidth": "450 GB/sec"}),
        ("interconnect.paths[0].hops[0].bandwidth", "GB/sec", "GB/s", "Gbps"),
    ),
    # bare numbers in dimensional fields were read as SI (tpot: 50 was 50 s): each is refused
    # with the unit its field's magnitude makes likely
    Case(
        "tpot-bare-number",
        mutated({"sla.tpot": 50}),
        ("{file}", "sla.tpot", "needs a unit", "did you mean '50 ms'?"),
    ),
    Case(
        "ttft-bare-number",
        mutated({"sla.ttft": 2000}),
        ("sla.ttft", "needs a unit", "did you mean '2000 ms'?"),
    ),
    Case(
        "hop-bandwidth-bare-number",
        mutated({"interconnect.paths.0.hops.0.bandwidth": 400}),
        ("interconnect.paths[0].hops[0].bandwidth", "did you mean '400 GB/s'?", "Gbit/s"),
    ),
    Case(
        "hop-latency-bare-number",
        mutated({"interconnect.paths.0.hops.0.latency": 10}),
        ("interconnect.paths[0].hops[0].latency", "did you mean '10 us'?"),
    ),
    Case(
        "rate-bare-number",
        mutated({"workload.synthetic.rate": 4}),
        ("workload.synthetic.rate", "did you mean '4 req/s'?", "req/min"),
    ),
    # zero and non-finite values were accepted and divided by downstream
    Case(
        "hop-bandwidth-zero",
        mutated({"interconnect.paths.0.hops.0.bandwidth": "0 GB/s"}),
        ("interconnect.paths[0].hops[0].bandwidth", "must be above zero"),
    ),
    Case(
        "hop-bandwidth-bare-zero",
        mutated({"interconnect.paths.0.hops.0.bandwidth": 0}),
        ("interconnect.paths[0].hops[0].bandwidth", "must be above zero"),
    ),
    Case(
        "rate-infinite",
        mutated({"workload.synthetic.rate": float("inf")}),
        ("workload.synthetic.rate", "not a finite request rate"),
    ),
    Case(
        "length-mean-infinite",
        mutated({"workload.synthetic.input_tokens.mean": float("inf")}),
        ("workload.synthetic.input_tokens", "finite"),
    ),
    Case(
        "length-cv-nan",
        mutated({"workload.synthetic.output_tokens.cv": float("nan")}),
        ("workload.synthetic.output_tokens", "finite"),
    ),
    Case("percentile-out-of-range", mutated({"sla.percentile": 150}), ("sla.percentile", "150")),
    # a share where a percent belongs (attainment is 0.9, percentile 90): judged at p0.9 before
    Case(
        "percentile-as-a-share",
        mutated({"sla.percentile": 0.9}),
        ("sla.percentile", "0.9", "write 90"),
    ),  # fmt: skip
    Case(
        "hop-kind-unknown",
        mutated({"interconnect.paths.0.hops.0.kind": "nvlink"}),
        ("interconnect.paths[0].hops[0].kind", "'nvlink'", "'scale_up'"),
    ),
    Case(
        "hop-efficiency-above-one",
        mutated({"interconnect.paths.0.hops.0.efficiency": 1.5}),
        ("interconnect.paths[0].hops[0].efficiency", "1.5", "less than or equal to 1"),
    ),
    # ---- precision ------------------------------------------------------------------------------
    Case(
        "precision-pair-invalid",
        mutated(
            {"pools.1.precision": {"weights": "int8", "activations": "fp8_e4m3", "kv": "bf16"}}
        ),
        ("pools[1].precision", "weights=int8", "activations=fp8_e4m3", "not a GEMM"),
    ),
    Case(
        "precision-shorthand-unknown",
        mutated({"pools.0.precision": "fp9"}),
        ("pools[0].precision", "'fp9'", "w8a8", "bf16"),
    ),
    Case(  # the scaling of fp8 weights on weights that are not fp8
        "fp8-scales-on-bf16-weights",
        mutated({"pools.1.precision.fp8_scales": "tensor"}),
        ("pools[1].precision", "fp8_scales=tensor", "weights are bf16", "fp8_e4m3"),
    ),
    Case(
        "fp8-scales-unknown",
        mutated(
            {
                "pools.0.precision": {
                    "weights": "fp8_e4m3",
                    "activations": "fp8_e4m3",
                    "fp8_scales": "channel",
                }
            }
        ),
        ("pools[0].precision.fp8_scales", "'channel'", "'block'", "'tensor'", "'tensor_dynamic'"),
    ),
    Case(
        "kv-format-unknown",
        mutated({"pools.1.precision.kv": "fp6"}),
        ("pools[1].precision.kv", "'fp6'", "fp8_e4m3", "int4"),
    ),
    Case(
        "fp8-kv-on-gpu-without-fp8",
        mutated({"pools.1.accelerator": "nofp8-gpu", "pools.1.precision.kv": "fp8_e4m3"}),
        ("{file}", "pools[1].precision.kv", "fp8_e4m3", "nofp8-gpu", "allowed: bf16"),
        extra={"hardware_profiles/nofp8-gpu.yaml": no_fp8_profile()},
    ),
    Case(
        "fp8-weights-on-gpu-without-fp8",
        mutated({"pools.0.accelerator": "nofp8-gpu", "pools.0.precision": "fp8"}),
        ("pools[0].precision.weights", "fp8_e4m3", "nofp8-gpu"),
        extra={"hardware_profiles/nofp8-gpu.yaml": no_fp8_profile()},
    ),
    Case(
        "transfer-format-unsupported",
        mutated({"pools.1.accelerator": "nofp8-gpu", "kv": {"transfer_format": "fp8_e5m2"}}),
        ("kv.transfer_format", "fp8_e5m2", "nofp8-gpu", "allowed: bf16"),
        extra={"hardware_profiles/nofp8-gpu.yaml": no_fp8_profile()},
    ),
    # ---- model and parallelism ------------------------------------------------------------------
    Case(
        "tp-not-dividing-heads",
        mutated({"pools.0.tp": 3}),
        ("{file}", "pools[0].tp", "64 attention heads", "got 3", "1, 2, 4, 8, 16"),
    ),
    Case(
        "tp-beyond-nvlink-domain", mutated({"pools.0.tp": 16}), ("pools[0].tp", "16", "domain of 8")
    ),
    Case(
        "ep-on-dense-model",
        mutated({"pools.0.ep": 2, "pools.0.dp": 2}),
        ("pools[0].ep", "dense", "allowed: 1"),
    ),
    Case(
        "weights-do-not-fit",
        mutated({"pools.0.memory_utilization": 0.3}),
        ("{file}", "pools[0]", "does not fit", "Qwen3-32B"),
    ),
    Case(
        "model-unknown",
        mutated({"model": "Qwen3-33B"}),
        ("{file}", "model", "'Qwen3-33B'", "Qwen3-32B", "tiny-llama"),
    ),
    Case(
        "model-config-not-json",
        mutated({"model": "my-model/config.json"}),
        ("{dir}/my-model/config.json:2", "not valid JSON"),
        extra={"my-model/config.json": '{"model_type": "llama", \n'},
    ),
    Case(
        "model-config-not-an-object",
        mutated({"model": "my-model"}),
        ("{dir}/my-model/config.json", "JSON object"),
        extra={"my-model/config.json": [1, 2, 3]},
    ),
    Case(
        "model-config-binary",
        mutated({"model": "my-model"}),
        ("{dir}/my-model/config.json", "UTF-8"),
        extra={"my-model/config.json": b"\x80\x81\xfe\xff"},
    ),
    Case(
        "model-config-model-type-not-a-string",
        mutated({"model": "my-model"}),
        ("my-model/config.json", "model_type", "['llama']", "qwen3"),
        extra={"my-model/config.json": {"model_type": ["llama"]}},
    ),
    Case(
        "model-config-unsupported-type",
        mutated({"model": "my-model"}),
        ("config.json", "model_type", "'gpt2'", "llama"),
        extra={"my-model/config.json": {"model_type": "gpt2", "hidden_size": 64}},
    ),
    Case(
        "model-config-missing-field",
        mutated({"model": "my-model"}),
        ("config.json", "hidden_size"),
        extra={"my-model/config.json": {"model_type": "llama", "num_attention_heads": 8}},
    ),
    Case(
        "model-config-field-wrong-type",
        mutated({"model": "my-model"}),
        ("config.json", "hidden_size", "'big'"),
        extra={
            "my-model/config.json": {
                "model_type": "llama",
                "hidden_size": "big",
                "intermediate_size": 688,
                "num_hidden_layers": 4,
                "num_attention_heads": 8,
                "vocab_size": 1024,
            }
        },
    ),
    Case(
        "model-config-zero-heads",
        mutated({"model": "my-model"}),
        ("config.json", "num_attention_heads", "0"),
        extra={
            "my-model/config.json": {
                "model_type": "llama",
                "hidden_size": 256,
                "intermediate_size": 688,
                "num_hidden_layers": 4,
                "num_attention_heads": 0,
                "vocab_size": 1024,
            }
        },
    ),
    # ---- accelerators and hardware profiles -----------------------------------------------------
    Case(
        "accelerator-unknown",
        mutated({"pools.0.accelerator": "nvidia-h1000"}),
        ("{file}", "pools[0].accelerator", "'nvidia-h1000'", "nvidia-h100-sxm"),
    ),
    Case(
        "accelerator-name-with-markup",
        mutated({"pools.0.accelerator": "[/bold]gpu[x]"}),
        ("pools[0].accelerator", "[/bold]gpu[x]"),
    ),
    Case(
        "profile-price-not-assumption",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "price_per_hour.confidence", "assumption"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "price_per_hour": "$3.00/h",
            }
        },
    ),
    Case(
        "profile-bad-unit",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "memory.bandwidth", "TB/sec", "accepted units"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "memory": {**h100_profile()["memory"], "bandwidth": "3.35 TB/sec"},
            }
        },
    ),
    Case(
        "profile-efficiency-above-one",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "efficiency.compute", "less than or equal to 1"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "efficiency": {**h100_profile()["efficiency"], "compute": 5},
            }
        },
    ),
    Case(
        "profile-memory-bandwidth-zero",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "memory.bandwidth", "must be above zero"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "memory": {**h100_profile()["memory"], "bandwidth": "0 TB/s"},
            }
        },
    ),
    Case(
        "profile-not-yaml",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml:", "not valid YAML"),
        extra={"hardware_profiles/bad-gpu.yaml": "name: bad-gpu\nmemory: {capacity: 80 GiB\n"},
    ),
    Case(
        "profile-name-mismatch",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "name", "'some-other-gpu'", "bad-gpu"),
        extra={"hardware_profiles/bad-gpu.yaml": {**h100_profile(), "name": "some-other-gpu"}},
    ),
    Case(
        "price-for-unknown-accelerator",
        mutated({"costs": {"prices": {"nvidia-x900": "$9/h"}}}),
        ("costs.prices.nvidia-x900", "nvidia-h100-sxm"),
    ),
    Case(
        "search-unknown-accelerator",
        mutated({"search": {"decode": {"accelerators": ["nvidia-h100-sxm", "tpu-v9"]}}}),
        ("search.decode.accelerators[1]", "'tpu-v9'", "nvidia-h100-sxm"),
    ),
    # ---- interconnect ---------------------------------------------------------------------------
    Case(
        "path-missing",
        mutated({"interconnect.paths": []}),
        ("{file}", "interconnect.paths", "no path", "from: prefill, to: decode"),
    ),
    Case(
        "path-unknown-pool",
        mutated({"interconnect.paths.0.to": "decoder"}),
        ("interconnect.paths[0].to", "'decoder'", "allowed: prefill, decode"),
    ),
    Case(
        "path-wrong-direction",
        mutated({"interconnect.paths.0.from": "decode", "interconnect.paths.0.to": "prefill"}),
        ("interconnect.paths[0].from", "'decode'", "prefill"),
    ),
    # ---- lifecycle and KV -----------------------------------------------------------------------
    Case(
        "store-without-store-tier",
        mutated({"lifecycle": "store"}),
        ("{file}", "lifecycle.store_tier", "store protocol"),
    ),
    Case(
        "store-tier-undefined",
        mutated({"lifecycle": {"protocol": "store", "store_tier": "x"}}),
        ("lifecycle.store_tier", "'x'"),
    ),
    Case(
        "lifecycle-unknown",
        mutated({"lifecycle": "teleport"}),
        ("lifecycle.protocol", "'teleport'", "'pull'", "'push'", "'store'"),
    ),
    Case(
        "prefix-cache-tier-undefined",
        mutated({"kv.prefix_cache": {"enabled": True, "tier": "dram"}}),
        ("kv.prefix_cache.tier", "'dram'", "hbm"),
    ),
    # ---- workload --------------------------------------------------------------------------------
    Case(
        "workload-trace-and-synthetic",
        mutated(fn=lambda d: d["workload"].update(trace={"path": "t.csv", "format": "azure"})),
        ("workload", "exactly one"),
    ),
    Case("workload-empty", mutated({"workload": {}}), ("workload", "exactly one")),
    Case(
        "synthetic-min-above-max",
        mutated({"workload.synthetic.input_tokens": {"dist": "uniform", "min": 900, "max": 10}}),
        ("workload.synthetic.input_tokens", "min (900)", "max (10)"),
    ),
    Case(
        "synthetic-lognormal-without-cv",
        mutated({"workload.synthetic.output_tokens": {"dist": "lognormal", "mean": 200}}),
        ("workload.synthetic.output_tokens", "needs cv"),
    ),
    Case(
        "trace-file-missing",
        mutated(fn=trace_workload(path="nope.csv", format="azure")),
        ("{file}", "workload.trace.path", "not found", "nope.csv"),
    ),
    Case(
        "trace-missing-column",
        mutated(fn=trace_workload(path="trace.csv", format="azure")),
        (
            "trace.csv",
            "workload.trace.format",
            "'GeneratedTokens'",
            "TIMESTAMP",
            "ContextTokens",
            "found: TIMESTAMP, ContextTokens",
        ),
        extra={"trace.csv": "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,374\n"},
    ),
    Case(
        "trace-empty",
        mutated(fn=trace_workload(path="trace.csv", format="azure")),
        ("trace.csv", "empty"),
        extra={"trace.csv": ""},
    ),
    Case(
        "trace-jsonl-not-json",
        mutated(fn=trace_workload(path="trace.jsonl", format="mooncake")),
        ("trace.jsonl:1", "not JSON"),
        extra={"trace.jsonl": "timestamp,input_length\n"},
    ),
    Case(  # check read only the first rows and said valid; simulate refused the file
        "trace-bad-row-after-the-first",
        mutated(fn=trace_workload(path="trace.jsonl", format="mooncake")),
        ("trace.jsonl:2", "column 'input_length'", "got -3"),
        extra={
            "trace.jsonl": '{"timestamp": 0, "input_length": 10, "output_length": 5}\n'
            '{"timestamp": 5, "input_length": -3, "output_length": 5}\n'
        },
    ),
    Case(
        "prefix-aware-on-a-mooncake-trace-without-hash-ids",
        mutated(
            {"pools.0.router": "prefix_aware"},
            fn=trace_workload(path="trace.jsonl", format="mooncake"),
        ),
        ("{file}", "pools[0].router", "'prefix_aware'", "no 'hash_ids' column", "allowed:"),
        extra={"trace.jsonl": '{"timestamp": 0, "input_length": 10, "output_length": 5}\n'},
    ),
    Case(
        "trace-binary",
        mutated(fn=trace_workload(path="trace.csv", format="azure")),
        ("trace.csv", "UTF-8"),
        extra={"trace.csv": b"\xff\xfe\x00\x81garbage\n"},
    ),
    Case(
        "trace-generic-csv-without-columns",
        mutated(fn=trace_workload(path="trace.csv", format="csv")),
        ("workload.trace", "columns", "arrival", "input_tokens", "output_tokens"),
    ),
    Case(
        "trace-format-unknown",
        mutated(fn=trace_workload(path="trace.csv", format="excel")),
        ("workload.trace.format", "'excel'", "'azure'", "'mooncake'"),
    ),
    # ---- issue #14: the spec and model layer ---------------------------------------------------
    Case(
        "schema-every-problem-listed",
        mutated({"pools.0.instance": 3, "pools.1.role": "decod"}),
        (
            "{file}: 2 problems",
            "1. pools[0].instance: unknown key (did you mean 'instances'?)",
            "2. pools[1].role",
            "'decod'",
            "'decode'",
        ),
        problems=2,
    ),
    Case(
        "instances-yaml-boolean",
        mutated({"pools.0.instances": True}),
        ("{file}", "pools[0].instances", "not a YAML boolean", "True"),
    ),
    Case(
        "set-instances-yes",
        mutated(),
        ("pools[1].instances", "not a YAML boolean"),
        args=("--set", "pools.decode.instances=yes"),
    ),
    Case(
        "batching-yaml-boolean",
        mutated({"pools.1.batching.max_num_seqs": False}),
        ("pools[1].batching.max_num_seqs", "not a YAML boolean"),
    ),
    Case("seed-negative", mutated({"seed": -5}), ("seed", "-5", "greater than or equal to 0")),
    Case(
        "swap-on-prefill-pool",
        mutated({"pools.0.preemption": "swap"}),
        ("{file}", "pools[0].preemption", "'swap'", "decode pools only", "recompute"),
    ),
    Case(
        "swap-on-colocated-pool",
        mutated({"pools.0.preemption": "swap"}, base=COLOCATED_SCENARIO),
        ("pools[0].preemption", "'swap'", "colocated pool recomputes", "recompute"),
    ),
    Case(
        "least-kv-load-on-prefill-pool",
        mutated({"pools.0.router": "least_kv_load"}),
        ("pools[0].router", "'least_kv_load'", "prefill pool", "least_outstanding_tokens"),
    ),
    Case(
        "least-kv-load-on-colocated-pool",
        mutated({"pools.0.router": "least_kv_load"}, base=COLOCATED_SCENARIO),
        ("pools[0].router", "'least_kv_load'", "colocated pool", "round_robin"),
    ),
    Case(
        "prefix-aware-on-decode-pool",
        mutated({"pools.1.router": "prefix_aware"}),
        ("pools[1].router", "'prefix_aware'", "no prefix cache", "least_kv_load"),
    ),
    Case(
        "prefix-aware-without-hashes",
        mutated({"pools.0.router": "prefix_aware", "kv.prefix_cache.enabled": True}),
        ("{file}", "pools[0].router", "carry none", "prefix_hit_rate"),
    ),
    Case(
        "prefix-aware-on-azure-trace",
        mutated(
            {"pools.0.router": "prefix_aware"}, fn=trace_workload(path="t.csv", format="azure")
        ),
        ("{file}", "pools[0].router", "carry none", "mooncake"),
        extra={"t.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,44\n"},
    ),
    Case(
        "synthetic-beyond-context",
        mutated({"workload.synthetic.input_tokens.max": 40000}),
        (
            "{file}",
            "workload.synthetic.input_tokens",
            "40,000 prompt + 2,048 output = 42,048",
            "40,960-token context of Qwen3-32B",
        ),
    ),
    Case(
        "trace-key-typo",
        mutated(fn=trace_workload(path="trace.jsonl", fromat="mooncake")),
        ("{file}", "workload.trace.fromat", "unknown key", "did you mean 'format'"),
    ),
    Case(
        "model-config-sliding-window",
        mutated({"model": "my-model"}),
        ("my-model/config.json", "sliding_window", "4096", "sliding-window attention is not"),
        extra={"my-model/config.json": tiny_config(model_type="mistral", sliding_window=4096)},
    ),
    Case(
        "model-config-use-sliding-window",
        mutated({"model": "my-model"}),
        ("config.json", "sliding_window", "not modelled"),
        extra={
            "my-model/config.json": tiny_config(
                model_type="qwen3", sliding_window=1024, use_sliding_window=True
            )
        },
    ),
    Case(
        "model-config-sliding-layer-types",
        mutated({"model": "my-model"}),
        ("config.json", "layer_types", "'sliding_attention'", "not modelled"),
        extra={
            "my-model/config.json": tiny_config(
                layer_types=["sliding_attention", "full_attention"] * 2, sliding_window=512
            )
        },
    ),
    # a config.json hetsim read wrongly without a word
    Case(
        "model-config-window-as-a-string",
        mutated({"model": "my-model"}),
        ("config.json", "sliding_window", "'4096'", "a number of tokens, or null"),
        extra={"my-model/config.json": tiny_config(model_type="mistral", sliding_window="4096")},
    ),
    Case(  # the string "false" read as true: the LM head went missing
        "model-config-tied-embeddings-as-a-string",
        mutated({"model": "my-model"}),
        ("config.json", "tie_word_embeddings", "'false'", "true, false"),
        extra={"my-model/config.json": tiny_config(tie_word_embeddings="false")},
    ),
    Case(  # a missing expert count made the MoE a dense model
        "model-config-moe-without-experts",
        mutated({"model": "my-model"}),
        ("config.json", "num_experts", "must set 'num_experts'"),
        extra={
            "my-model/config.json": {
                k: v
                for k, v in json.loads(
                    (REPO / "hetsim" / "model_configs" / "Qwen3-30B-A3B.json").read_text()
                ).items()
                if k not in ("num_experts", "_hetsim_meta")
            }
        },
    ),
    Case(  # an FP8 checkpoint was sized and timed as bf16
        "model-config-quantized-checkpoint-served-otherwise",
        mutated({"model": "my-model"}),
        (
            "pools[0].precision.weights",
            "checkpoint stores its weights in fp8_e4m3 (fp8)",
            "got 'bf16'",
            "allowed: fp8_e4m3",
        ),
        extra={
            "my-model/config.json": tiny_config(
                max_position_embeddings=131072,
                quantization_config={"quant_method": "fp8", "fmt": "e4m3"},
            )
        },
        problems=2,  # both pools
    ),
    Case(  # a ModelOpt FP8 checkpoint (static per-tensor scales) timed as block-scaled
        "model-config-fp8-checkpoint-scaled-otherwise",
        mutated(
            {
                "model": "my-model",
                "pools.0.precision": "fp8",
                "pools.1.precision": {
                    "weights": "fp8_e4m3",
                    "activations": "fp8_e4m3",
                    "fp8_scales": "tensor_dynamic",
                },
            }
        ),
        (
            "pools[0].precision.fp8_scales",
            "pools[1].precision.fp8_scales",
            "scales its fp8 weights tensor (ModelOpt FP8",
            "got 'unset (block)'",
            "got 'tensor_dynamic'",
            "allowed: tensor",
        ),
        extra={
            "my-model/config.json": tiny_config(
                max_position_embeddings=131072,
                quantization_config={"quant_method": "modelopt", "quant_algo": "FP8"},
            )
        },
        problems=2,  # both pools
    ),
    Case(
        "model-config-quantized-in-a-format-hetsim-lacks",
        mutated({"model": "my-model"}),
        ("model", "quantized (mxfp4)", "without quantization_config"),
        extra={
            "my-model/config.json": tiny_config(
                max_position_embeddings=131072, quantization_config={"quant_method": "mxfp4"}
            )
        },
    ),
    Case(
        "model-config-hidden-below-heads",
        mutated({"model": "my-model"}),
        ("config.json", "hidden_size", "(got 4)", "at least num_attention_heads (8)"),
        extra={"my-model/config.json": tiny_config(hidden_size=4)},
    ),
    Case(
        "model-config-kv-heads-not-dividing",
        mutated({"model": "my-model"}),
        ("config.json", "num_key_value_heads", "(got 3)", "allowed: 1, 2, 4, 8"),
        extra={"my-model/config.json": tiny_config(num_key_value_heads=3)},
    ),
    Case(
        "model-config-zero-context",
        mutated({"model": "my-model"}),
        ("config.json", "max_position_embeddings", "at least 1", "(got 0)"),
        extra={"my-model/config.json": tiny_config(max_position_embeddings=0)},
    ),
    Case(
        "model-config-top-k-above-experts",
        mutated({"model": "my-model"}),
        ("config.json", "num_experts_per_tok", "(got 9)", "1 to 8"),
        extra={
            "my-model/config.json": tiny_config(
                model_type="mixtral", num_local_experts=8, num_experts_per_tok=9
            )
        },
    ),
    Case(
        "model-config-mlp-only-layers-not-a-list",
        mutated({"model": "my-model"}),
        ("config.json", "mlp_only_layers", "list of layer indices", "(got 3)"),
        extra={
            "my-model/config.json": tiny_config(
                model_type="qwen3_moe",
                num_experts=8,
                num_experts_per_tok=2,
                moe_intermediate_size=64,
                mlp_only_layers=3,
            )
        },
    ),
    Case(
        "model-config-nested-too-deeply",
        mutated({"model": "my-model"}),
        ("my-model/config.json", "nested too deeply"),
        extra={"my-model/config.json": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    ),
    Case(
        "profile-compute-peak-zero",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "compute.bf16", "must be above zero"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "compute": {**h100_profile()["compute"], "bf16": "0 TFLOPS"},
            }
        },
    ),
    Case(
        "profile-efficiency-zero",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "efficiency.memory", "greater than 0"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "efficiency": {**h100_profile()["efficiency"], "memory": 0},
            }
        },
    ),
    Case(
        "profile-efficiency-negative",
        mutated({"pools.1.accelerator": "bad-gpu"}),
        ("hardware_profiles/bad-gpu.yaml", "efficiency.network", "greater than 0", "-0.5"),
        extra={
            "hardware_profiles/bad-gpu.yaml": {
                **h100_profile(),
                "name": "bad-gpu",
                "efficiency": {**h100_profile()["efficiency"], "network": -0.5},
            }
        },
    ),
    Case(
        "fault-straggler-factor-huge",
        mutated(
            {
                "faults": {
                    "events": [
                        {
                            "kind": "straggler",
                            "target": "decode",
                            "at": "1 s",
                            "duration": "10 s",
                            "factor": 1e300,
                        }
                    ]
                }
            }
        ),
        ("{file}", "faults.events[0].factor", "1e+300", "allowed: 0.01 to 100"),
    ),
    Case(
        "fault-duration-beyond-a-day",
        mutated(
            {
                "faults": {
                    "events": [
                        {"kind": "link_down", "target": "nvlink", "at": "1 s", "duration": "1e6 s"}
                    ]
                }
            }
        ),
        ("faults.events[0].duration", "`duration` of 1e+06 s", "at most 86,400 s"),
    ),
    # ---- --set overrides ------------------------------------------------------------------------
    Case(
        "set-without-equals",
        mutated(),
        ("--set", "pools.decode.instances", "dotted.path=value"),
        args=("--set", "pools.decode.instances"),
    ),
    Case("set-empty-path", mutated(), ("--set", "'=3'"), args=("--set", "=3")),
    Case(
        "set-unknown-pool-name",
        mutated(),
        ("{file}", "--set", "'decoder'", "prefill, decode"),
        args=("--set", "pools.decoder.instances=3"),
    ),
    Case(
        "set-index-out-of-range",
        mutated(),
        ("--set", "index 5", "2 items"),
        args=("--set", "pools.5.tp=2"),
    ),
    Case(
        "set-bad-index",
        mutated(),
        ("--set", "list index", "pools[x].tp=2"),
        args=("--set", "pools[x].tp=2"),
    ),
    Case("set-inside-scalar", mutated(), ("--set", "name.x=1", "str"), args=("--set", "name.x=1")),
    Case(
        "set-bad-unit",
        mutated(),
        ("{file}", "sla.ttft", "'sec'", "accepted units"),
        args=("--set", "sla.ttft=2 sec"),
    ),
    Case(
        "set-unknown-key",
        mutated(),
        ("sla.ttfts", "did you mean 'ttft'"),
        args=("--set", "sla.ttfts=1"),
    ),
    Case(
        "set-wrong-type",
        mutated(),
        ("pools[1].instances", "'lots'"),
        args=("--set", "pools.decode.instances=lots"),
    ),
    Case(
        "set-tp-not-dividing-heads",
        mutated(),
        ("pools[1].tp", "got 5", "1, 2, 4, 8"),
        args=("--set", "pools.decode.tp=5"),
    ),
    Case(  # the link took whichever source pool's efficiency.network built it first
        "shared-hop-without-its-own-efficiency",
        mutated(
            {
                "interconnect.paths.0.hops.1.efficiency": DELETE,
                "interconnect.paths.1.hops.2.efficiency": DELETE,
            },
            base=REPO / "scenarios" / "tiered-gpu.yaml",
        ),
        (
            "{file}",
            "'a40-nic'",
            "'prefill-a100' and 'prefill-4090'",
            "0.8 vs 0.75",
            "an efficiency on the hop",
        ),
    ),  # fmt: skip
    Case(  # every hit was scaled by 16/512 without a word
        "prefix-cache-block-size-unlike-the-hashes",
        mutated(
            {
                "kv.prefix_cache": {"enabled": True, "block_tokens": 16},
                "workload.synthetic.prefix_hit_rate": 0.5,
            },
        ),
        (
            "{file}",
            "kv.prefix_cache.block_tokens",
            "512-token blocks",
            "workload.synthetic.block_tokens",
            "got 16",
            "allowed: 512",
        ),
    ),  # fmt: skip
    Case(  # no max: prompts of up to 130K tokens ran for a 40K-context model
        "lognormal-tail-beyond-the-context",
        mutated({"workload.synthetic.input_tokens": {"dist": "lognormal", "mean": 20000, "cv": 3}}),
        (
            "{file}",
            "beyond the 40,960-token context",
            "lognormal input_tokens without max",
            "longest of 1,000 draws",
        ),
    ),  # fmt: skip
    Case(  # check said valid; simulate refused it, naming no file
        "sessions-outgrowing-the-context",
        mutated(
            {"workload.synthetic.sessions.turns": 1000},
            base=REPO / "scenarios" / "sessions-agent-loop.yaml",
        ),
        ("{file}", "workload.synthetic.sessions.turns", "a session can grow to 5,008,096 tokens"),
    ),
    Case(  # loaded fine; check then failed naming neither file nor pool
        "runtime-on-a-profile-without-tables",
        mutated({"pools.1.runtime": "vllm", "pools.1.accelerator": "nvidia-h20"}),
        ("{file}", "pools[1].runtime", "'nvidia-h20' names none", "nvidia-h100-sxm"),
    ),
    Case(  # said what was wrong, not what would do
        "attainment-as-a-percentage",
        mutated({"sla.attainment": "90%"}),
        ("sla.attainment", "'90%'", "a number (no unit or % sign) > 0 and <= 1"),
    ),
    Case(  # the second rule was accepted and never matched
        "routing-rule-behind-a-broader-one",
        mutated(
            fn=lambda d: d["routing"]["prefill"]["rules"].insert(
                1, {"when": {"input_tokens": ">16000"}, "to": "prefill-4090"}
            ),
            base=REPO / "scenarios" / "tiered-gpu.yaml",
        ),
        ("routing.prefill.rules[1].when", "rule 1 can never match", "rule 0 before it"),
    ),
    Case(  # sessions of unbounded turns: check said valid, simulate gave up naming no file
        "session-first-turn-beyond-the-context",
        mutated(
            {
                "workload.synthetic.input_tokens": 200000,
                "workload.synthetic.sessions.turns": {"dist": "lognormal", "mean": 3, "cv": 0.5},
            },
            base=REPO / "scenarios" / "sessions-agent-loop.yaml",
        ),
        ("{file}", "200,000 prompt", "beyond the 131,072-token context"),
    ),
    Case(  # one problem, not a second about the columns of a file that was not read
        "trace-missing-under-a-prefix-aware-router",
        mutated(
            {"pools.0.router": "prefix_aware"},
            fn=trace_workload(path="nope.jsonl", format="mooncake"),
        ),
        ("trace file not found",),
    ),
    # the first of several mistakes was all a check reported
    Case(
        "tp-wrong-in-both-pools",
        mutated({"pools.0.tp": 5, "pools.1.tp": 3}),
        ("pools[0].tp", "got 5", "pools[1].tp", "got 3"),
        problems=2,
    ),
    Case(
        "two-unknown-accelerators",
        mutated({"pools.0.accelerator": "nvidia-h1000", "pools.1.accelerator": "nvidia-h2O"}),
        ("pools[0].accelerator", "'nvidia-h1000'", "pools[1].accelerator", "'nvidia-h2O'"),
        problems=2,
    ),
    # faults that could not happen were accepted and did nothing
    Case(
        "abort-probability-with-a-schedule",
        mutated(
            {
                "faults": {
                    "events": [
                        {
                            "kind": "abort_mid_transfer",
                            "probability": 0.5,
                            "at": "1000 s",
                            "duration": "1 s",
                        }
                    ]
                }
            }
        ),
        ("faults.events[0]", "does not use at, duration", "it reads probability"),
    ),
    Case(
        "lost-notification-under-push",
        mutated(
            {
                "lifecycle": "push",
                "faults": {"events": [{"kind": "lost_notification", "probability": 0.5}]},
            }
        ),
        ("{file}", "faults.events[0].kind", "only pull's decode side", "push sends no such"),
    ),
    Case(
        "transfer-abort-in-a-colocated-deployment",
        mutated(
            {"faults": {"events": [{"kind": "abort_mid_transfer", "probability": 0.9}]}},
            base=COLOCATED_SCENARIO,
        ),
        ("{file}", "faults.events[0].kind", "moves no KV between instances"),
    ),
    # a parameter the chosen distribution or process does not read was ignored without a word
    Case(
        "length-bound-on-a-fixed-length",
        mutated({"workload.synthetic.input_tokens": {"value": 4096, "max": 1024}}),
        ("workload.synthetic.input_tokens", "dist 'fixed' does not use max", "reads value"),
    ),
    Case(  # every prompt came out at the bound
        "length-mean-beyond-its-clip",
        mutated({"workload.synthetic.input_tokens.mean": 20000}),
        ("workload.synthetic.input_tokens", "the median length", "clip bounds [128, 16384]"),
    ),
    Case(
        "arrival-cv-under-poisson",
        mutated({"workload.synthetic.cv": 3}),
        ("workload.synthetic", "arrival 'poisson' does not use cv", "cv: gamma"),
    ),
    Case(
        "ramp-duration-without-a-ramp",
        mutated(
            fn=lambda d: (
                d["workload"].update(
                    synthetic=None,
                    closed_loop={
                        "concurrency": 4,
                        "requests": 20,
                        "input_tokens": 512,
                        "output_tokens": 64,
                        "ramp_up": {"strategy": "none", "duration": "5 s"},
                    },
                )
                or d["workload"].pop("synthetic")
            )
        ),
        ("workload.closed_loop.ramp_up", "strategy 'none'", "no duration"),
    ),  # fmt: skip
    Case(  # check said valid; simulate raised "a transfer crosses each link at most once"
        "hop-twice-in-one-path",
        mutated(
            fn=lambda d: d["interconnect"]["paths"][0]["hops"].append(
                dict(d["interconnect"]["paths"][0]["hops"][0])
            )
        ),
        ("{file}", "interconnect.paths[0].hops", "repeated: nvlink"),
    ),
    Case(  # one link: the path that built it first silently set it for the other
        "hop-described-two-ways",
        mutated(
            {"interconnect.paths.0.hops.1.bandwidth": "1 Gbps"},
            base=REPO / "scenarios" / "tiered-gpu.yaml",
        ),
        (
            "{file}",
            "interconnect.paths",
            "'a40-nic'",
            "paths[0] and paths[1]",
            "bandwidth 125 MB/s vs 25 GB/s",
        ),
    ),  # fmt: skip
]


def test_case_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_check(path: Path, *args: str) -> Result:
    """``hetsim check PATH ARGS`` in this process, ending as :func:`hetsim.cli.main` ends it (an
    InputError becomes ``error: <message>`` on stderr and its exit code): a fresh interpreter per
    case cost ~0.7 s each, the largest share of the suite. The real entry point is compared
    with this one in :func:`test_the_entry_point_prints_what_the_in_process_run_does`."""
    result = CliRunner().invoke(app, ["check", str(path), *args])
    exc = result.exception
    if isinstance(exc, InputError):
        return Result(exc.exit_code, result.stdout, f"error: {exc.render()}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        trace = "".join(traceback.format_exception(exc))
        return Result(1, result.stdout, f"{result.stderr}Traceback (in process):\n{trace}")
    return Result(result.exit_code, result.stdout, result.stderr)


def run_entry_point(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hetsim", "check", str(path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def outcome(case: Case, tmp: Path) -> tuple[Path, Result]:
    for rel, content in case.extra.items():
        _write(tmp / rel, content)
    path = case.build(tmp)
    return path, run_check(path, *case.args)


#: one case of each kind of input the entry point reads: the file, the YAML, the schema, the
#: model config, a cross-field check, --set
ENTRY_POINT_CASES = [
    "file-not-found",
    "yaml-duplicate-key",
    "role-typo",
    "model-config-not-json",
    "tp-not-dividing-heads",
    "set-unknown-key",
]


@pytest.mark.parametrize("case_id", ENTRY_POINT_CASES)
def test_the_entry_point_prints_what_the_in_process_run_does(case_id: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    path, in_process = outcome(case, tmp_path)
    real = run_entry_point(path, *case.args)
    assert "Traceback" not in real.stderr, real.stderr
    assert (real.returncode, real.stdout) == (in_process.returncode, in_process.stdout)
    # the console may wrap a long line: compare the words
    assert real.stderr.split() == in_process.stderr.split()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(case: Case, tmp_path: Path) -> None:
    path, result = outcome(case, tmp_path)
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.returncode == 2, f"exit {result.returncode}\nstdout: {result.stdout}\n{err}"
    assert result.stdout == "", result.stdout
    lines = [line for line in err.splitlines() if line.strip()]
    if case.problems == 1:
        assert len(lines) == 1, f"expected one message line, got:\n{err}"
    else:  # "error: FILE: N problems:" and one numbered line per problem
        assert len(lines) == 1 + case.problems, err
        assert lines[0].endswith(f"{case.problems} problems:"), err
        for k, line in enumerate(lines[1:], 1):
            assert line.startswith(f"  {k}. "), err
    assert lines[0].startswith("error: "), err
    for want in case.expect:
        want = want.replace("{file}", str(path)).replace("{dir}", str(path.parent))
        assert want in err, f"{want!r} not in stderr:\n{err}"
