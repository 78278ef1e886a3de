"""Launch templates for the plan's winner, in the serving runtimes' own terms.

``plan --out`` writes, beside ``best.yaml`` (:mod:`hetsim.report.best`), a folder ``launch/``:

- ``vllm.sh``: ``vllm serve`` per pool — parallelism, formats, batching, and for a
  disaggregated deployment the NIXL connector (``--kv-transfer-config``; vLLM's NIXL path is
  hetsim's ``pull`` protocol: prefill holds the blocks, decode reads them);
- ``sglang.sh``: ``python -m sglang.launch_server`` per pool, with ``--disaggregation-mode`` and
  a Mooncake transfer backend (SGLang's PD path is hetsim's ``push``: decode pre-allocates,
  prefill writes);
- ``dynamo.yaml``: a Dynamo ``DynamoGraphDeployment`` (frontend, prefill and decode workers on
  the vLLM backend) with the pools' instance counts as replicas.

Every file is a TEMPLATE to review: hetsim maps what it simulated onto flags and says, in the
file, what it could not map — an accelerator outside NVIDIA's (MetaX, Ascend, Cambricon, TPU,
CPU hosts … need their vendor's runtime build or plugin, so no flags are emitted for them),
a KV format or precision no flag expresses, a lifecycle protocol the runtime does not use.
A colocated winner gets aggregated servers (no KV connector).

Flag names were checked against the runtimes' sources (see :data:`CHECKED_AGAINST`). Command
lines are built with :func:`shlex.join` and YAML with :func:`yaml.safe_dump`: no hand quoting.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from hetsim.outputs import staged
from hetsim.perf.runtimes import pool_mixes_prompts
from hetsim.report.best import write_best

if TYPE_CHECKING:
    from hetsim.planner.results import PlanResult
    from hetsim.spec.resolve import Scenario
    from hetsim.spec.scenario import PoolSpec

__all__ = ["CHECKED_AGAINST", "RoleLaunch", "launch_roles", "write_launch"]

#: where each runtime's flag names were read (cited in every file's header)
CHECKED_AGAINST = {
    "vllm": "vLLM 0.20 (the version ai-dynamo 1.2.0 pins): vllm/engine/arg_utils.py, "
    "vllm/config/cache.py (CacheDType), vllm/config/kv_transfer.py (kv_role), "
    "docs/features/nixl_connector_usage.md",
    "sglang": "SGLang 0.5.11 (the version ai-dynamo 1.2.0 pins): "
    "python/sglang/srt/server_args.py (--kv-cache-dtype, QUANTIZATION_CHOICES, "
    "--disaggregation-*), docs/advanced_features/pd_disaggregation.md",
    "dynamo": "Dynamo 1.2.0: components/src/dynamo/vllm/backend_args.py "
    "(--disaggregation-mode), examples/backends/vllm/deploy/disagg.yaml, "
    "examples/backends/vllm/launch/disagg.sh",
}

TEMPLATE = "TEMPLATE — review before use"

#: the vendors whose accelerators the emitted flags are written for
_MAPPED_VENDORS = {"NVIDIA"}

#: what a non-NVIDIA accelerator needs instead of these flags
_VENDOR_RUNTIME = {
    "MetaX": "MetaX's MACA build of vLLM (vendor plugin)",
    "Huawei": "the vllm-ascend plugin, or SGLang's Ascend backend (--device npu, "
    "--disaggregation-transfer-backend ascend)",
    "Cambricon": "Cambricon's MLU build of vLLM (vendor fork)",
    "Google": "vLLM's TPU backend (tpu-inference)",
    "AWS": "the vllm-neuron plugin (Neuron SDK)",
    "AMD": "the ROCm builds of vLLM/SGLang (engine flags alike; the NIXL path on ROCm is RIXL, "
    "not checked here)",
    "Intel": "vLLM's CPU backend (no NIXL KV transfer checked here)",
}

#: hetsim KV format -> (vLLM --kv-cache-dtype, SGLang --kv-cache-dtype)
_KV_DTYPE = {
    "bf16": ("bfloat16", "bfloat16"),
    "fp8_e4m3": ("fp8_e4m3", "fp8_e4m3"),
    "fp8_e5m2": ("fp8_e5m2", "fp8_e5m2"),
}

#: (weights, activations) -> (vLLM --quantization, SGLang --quantization); None: no flag
_QUANT = {
    ("bf16", "bf16"): (None, None),
    ("fp16", "fp16"): (None, None),
    # both quantize a bf16 checkpoint online, per tensor with dynamic activation scales: only
    # that scaling (precision fp8_scales tensor_dynamic); the others are a checkpoint's own
    ("fp8_e4m3", "fp8_e4m3"): ("fp8", "fp8"),
}

_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}  # --dtype of the unquantized weights


@dataclass
class RoleLaunch:
    """One pool's engine arguments (shared by vLLM and Dynamo's vLLM workers, and SGLang),
    and what could not be mapped."""

    pool: PoolSpec
    vendor: str
    vllm: list[str] = field(default_factory=list)
    sglang: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sglang_notes: list[str] = field(default_factory=list)  # for sglang.sh only

    @property
    def mapped(self) -> bool:
        return self.vendor in _MAPPED_VENDORS


def launch_roles(scenario: Scenario) -> list[RoleLaunch]:
    """Each pool's engine arguments for vLLM and SGLang, with notes on what is not mapped."""
    roles = []
    for pool in scenario.spec.pools:
        profile = scenario.profiles[pool.name]
        role = RoleLaunch(pool=pool, vendor=profile.vendor)
        if not role.mapped:
            runtime = _VENDOR_RUNTIME.get(profile.vendor, "its vendor's runtime build")
            role.notes.append(
                f"NOT MAPPED: pool {pool.name} runs on {profile.display_name} "
                f"({profile.vendor}), which needs {runtime}; hetsim emits no flags for it"
            )
        else:
            _parallel(role)
            _formats(role)
            _batching(role)
        roles.append(role)
    _boundary_notes(scenario, roles)
    return roles


def _parallel(role: RoleLaunch) -> None:
    pool = role.pool
    role.vllm += ["--tensor-parallel-size", str(pool.tp)]
    role.sglang += ["--tp-size", str(pool.devices)]  # SGLang's tp counts every device
    if pool.dp > 1:
        role.vllm += ["--data-parallel-size", str(pool.dp)]
        role.sglang += ["--dp-size", str(pool.dp), "--enable-dp-attention"]
    if pool.ep > 1:
        role.vllm.append("--enable-expert-parallel")
        role.sglang += ["--ep-size", str(pool.ep)]
        if pool.ep != pool.devices:
            role.notes.append(
                f"{pool.name}: ep={pool.ep} of {pool.devices} devices; vLLM's expert "
                "parallelism spans all tp×dp devices (no partial ep flag)"
            )


def _formats(role: RoleLaunch) -> None:
    p = role.pool.precision
    quant = _QUANT.get((p.weights, p.activations))
    if p.fp8_scaling in ("block", "tensor"):
        role.notes.append(
            f"{role.pool.name}: fp8 weights scaled {p.fp8_scaling} need a checkpoint quantized "
            "that way (the runtimes read its quantization_config); no --quantization flag "
            "emitted (it would quantize online per tensor with dynamic scales)"
        )
    elif quant is None:
        role.notes.append(
            f"{role.pool.name}: weights {p.weights} / activations {p.activations} need a "
            "checkpoint quantized that way (the runtimes read its quantization from it); "
            "no --quantization flag emitted"
        )
    elif quant[0] is not None:
        role.vllm += ["--quantization", quant[0]]
        role.sglang += ["--quantization", quant[1]]
    if p.weights in _DTYPE:
        role.vllm += ["--dtype", _DTYPE[p.weights]]
        role.sglang += ["--dtype", _DTYPE[p.weights]]
    kv = _KV_DTYPE.get(p.kv)
    if p.kv == "fp16" and p.weights == "fp16":
        kv = ("auto", "auto")  # the cache follows --dtype float16
    if kv is None:
        role.notes.append(
            f"{role.pool.name}: KV format {p.kv} has no --kv-cache-dtype in vLLM/SGLang "
            "as checked; none emitted (the runtime would store the model dtype)"
        )
    else:
        role.vllm += ["--kv-cache-dtype", kv[0]]
        role.sglang += ["--kv-cache-dtype", kv[1]]


def _batching(role: RoleLaunch) -> None:
    pool = role.pool
    b = pool.batching
    role.vllm += [
        "--max-num-seqs", str(b.max_num_seqs),
        "--max-num-batched-tokens", str(b.max_batched_tokens),
        "--gpu-memory-utilization", f"{pool.memory_utilization:g}",
        "--block-size", str(pool.kv_page_tokens),
    ]  # fmt: skip
    role.sglang += [
        "--max-running-requests", str(b.max_num_seqs),
        "--mem-fraction-static", f"{pool.memory_utilization:g}",
        "--page-size", str(pool.kv_page_tokens),
    ]  # fmt: skip
    if pool.role != "decode":  # a decode server prefills nothing
        role.vllm.append("--enable-chunked-prefill")
        role.sglang += ["--chunked-prefill-size", str(b.chunk_size or b.max_batched_tokens)]
    if b.chunk_size is not None:
        role.notes.append(
            f"{pool.name}: chunk_size {b.chunk_size} (one request's prefill chunk) has no "
            "exact vLLM flag; --max-num-batched-tokens bounds a step's tokens"
        )
    if pool.role == "colocated":
        _mixing(role)
    role.sglang_notes.append(
        f"{pool.name}: SGLang's --mem-fraction-static counts weights and KV; hetsim's "
        f"memory_utilization {pool.memory_utilization:g} was the vLLM-style share"
    )


def _mixing(role: RoleLaunch) -> None:
    """Prompts beside decodes in one step, as simulated: SGLang mixes only when told; vLLM
    always does (a pool simulated with prompt-only steps is SGLang's default)."""
    pool = role.pool
    if pool_mixes_prompts(pool):
        if pool.dp == 1:  # under DP attention hetsim's mixed steps are SGLang's default
            role.sglang.append("--enable-mixed-chunk")
        return
    role.notes.append(
        f"{pool.name}: simulated with prompt-only steps (SGLang's default, sglang.sh); vLLM "
        "always runs prompt chunks beside the decodes, so its vllm.sh serves differently"
    )


def _boundary_notes(scenario: Scenario, roles: list[RoleLaunch]) -> None:
    """What the KV handoff simulated that the connectors here do not do."""
    spec = scenario.spec
    by_role = {r.pool.role: r for r in roles}
    if "prefill" not in by_role:
        return
    p, d = by_role["prefill"].pool.precision.kv, by_role["decode"].pool.precision.kv
    if p != d or (spec.kv.transfer_format not in (None, p)):
        roles[0].notes.append(
            f"KV formats differ across the boundary (prefill {p}, wire "
            f"{spec.kv.transfer_format or p}, decode {d}): hetsim costed a conversion; the "
            "connectors here move KV as stored, so give both sides the same --kv-cache-dtype "
            "or check that your runtime converts"
        )
    protocol = spec.lifecycle.protocol
    if protocol == "store":
        roles[0].notes.append(
            "lifecycle store (a shared KV pool) is not mapped: the connectors here are "
            "point-to-point (vLLM NIXL pull, SGLang Mooncake push); a shared pool is LMCache "
            "or Mooncake Store"
        )
    vendors = {r.vendor for r in roles}
    if len(vendors) > 1:
        roles[0].notes.append(
            f"cross-vendor deployment ({', '.join(sorted(vendors))}): the KV connector must "
            "be supported on both sides (host staging as simulated); not checked here"
        )


def _header(plan: PlanResult, runtime: str, roles: list[RoleLaunch]) -> list[str]:
    best = plan.best
    assert best is not None
    lines = [
        TEMPLATE,
        f"hetsim plan of '{plan.scenario.name}', candidate #{best.id}: {best.label}",
        f"Flags checked against {CHECKED_AGAINST[runtime]}.",
        f"Model: {plan.scenario.spec.model} (hetsim's name: give the Hugging Face id or path).",
    ]
    if runtime == "sglang" and best.candidate.kind == "disaggregated":
        lines.append(
            f"hetsim simulated lifecycle {best.candidate.protocol}; SGLang's PD transfer is "
            "push (decode pre-allocates, prefill writes)"
        )
    if runtime != "sglang" and best.candidate.kind == "disaggregated":
        lines.append(
            f"hetsim simulated lifecycle {best.candidate.protocol}; vLLM's NixlConnector is "
            "pull (prefill holds the blocks, decode reads them)"
        )
    if runtime == "dynamo":
        lines.append(
            "Frontend: HTTP, preprocessing and routing (Dynamo 1.x has no separate Processor); "
            "set the image tag (${VERSION}) and the model before applying"
        )
    notes = [n for r in roles for n in r.notes]
    if runtime == "sglang":
        notes += [n for r in roles for n in r.sglang_notes]
    if notes:
        lines.append("Not mapped / to review:")
        lines += [f"  - {n}" for n in notes]
    return lines


def write_launch(plan: PlanResult, out: str | Path) -> list[Path]:
    """``best.yaml`` and ``launch/`` (vllm.sh, sglang.sh, dynamo.yaml) for the plan's winner
    in ``out``; nothing when the plan recommends no deployment."""
    if plan.best is None or plan.best.candidate.scenario is None:
        return []
    roles = launch_roles(plan.best.candidate.scenario)
    with staged(out) as stage:
        folder = stage.dir / "launch"
        folder.mkdir(exist_ok=True)
        written = [write_best(plan, stage.dir / "best.yaml")]
        for name, runtime, text in (
            ("vllm.sh", "vllm", vllm_script(roles)),
            ("sglang.sh", "sglang", sglang_script(roles)),
            ("dynamo.yaml", "dynamo", dynamo_graph(plan, roles)),
        ):
            path = folder / name
            header = "".join(f"# {line}\n" for line in _header(plan, runtime, roles))
            path.write_text(_shebang(name) + header + text)
            if name.endswith(".sh"):
                path.chmod(0o755)
            written.append(path)
    return stage.final(written)


def _shebang(name: str) -> str:
    return "#!/usr/bin/env bash\n" if name.endswith(".sh") else ""


def kv_transfer_config() -> str:
    """vLLM's NIXL connector settings (kv_both on either side, as vLLM's and Dynamo's
    disaggregation examples set it)."""
    return json.dumps(
        {"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":")
    )


#: the script's first line: the model to serve (hetsim knows it by its config, not by a hub id)
_MODEL_LINE = ': "${MODEL:?set MODEL to the Hugging Face id or local path of the model}"\n'


def _pool_comment(role: RoleLaunch, extra: str) -> str:
    pool = role.pool
    what = f"{pool.role} pool '{pool.name}': {pool.instances} instance(s) of {pool.devices}x "
    what += f"{pool.accelerator}"
    if not role.mapped:
        return f"\n# {what}: not mapped (see above)\n"
    return f"\n# {what}; run once per instance, each on its own devices{extra}\n"


def vllm_script(roles: list[RoleLaunch]) -> str:
    """``vllm serve`` per pool; the NIXL connector on both sides of a disaggregated one."""
    disaggregated = any(r.pool.role == "prefill" for r in roles)
    text = _MODEL_LINE
    for i, role in enumerate(roles):
        extra = " (one host: its own --port and VLLM_NIXL_SIDE_CHANNEL_PORT)"
        text += _pool_comment(role, extra if disaggregated else " (behind a load balancer)")
        if not role.mapped:
            continue
        args = ["--port", str(8100 + 100 * i), *role.vllm]
        if disaggregated:
            args += ["--kv-transfer-config", kv_transfer_config()]
        text += 'vllm serve "$MODEL" ' + shlex.join(args) + "\n"
    if disaggregated:
        text += (
            "\n# Route each request to a prefill server, then to a decode server: Dynamo "
            "(dynamo.yaml), llm-d, or vLLM's disaggregated proxy example\n"
        )
    return text


def sglang_script(roles: list[RoleLaunch]) -> str:
    """``python -m sglang.launch_server`` per pool; PD mode with Mooncake for a
    disaggregated deployment."""
    disaggregated = any(r.pool.role == "prefill" for r in roles)
    text = _MODEL_LINE
    for i, role in enumerate(roles):
        text += _pool_comment(role, " (one host: its own --port)")
        if not role.mapped:
            continue
        args = ["--port", str(30000 + i), *role.sglang]
        if disaggregated:
            args += [
                "--disaggregation-mode", role.pool.role,
                "--disaggregation-transfer-backend", "mooncake",
            ]  # fmt: skip
            if role.pool.role == "prefill":
                args += ["--disaggregation-bootstrap-port", "8998"]
        text += 'python -m sglang.launch_server --model-path "$MODEL" ' + shlex.join(args) + "\n"
    if disaggregated:
        text += (
            "\n# Route with sglang-router in PD mode (python -m sglang_router.launch_router "
            "--pd-disaggregation --prefill <url> <bootstrap port> --decode <url>; check its "
            "--help for your version). --disaggregation-transfer-backend nixl is the "
            "alternative to mooncake.\n"
        )
    return text


def dynamo_graph(plan: PlanResult, roles: list[RoleLaunch]) -> str:
    """A DynamoGraphDeployment: the frontend (HTTP, preprocessing, routing) and one vLLM
    worker service per mapped pool, its replicas the pool's instances."""
    services: dict[str, object] = {
        "Frontend": {
            "componentType": "frontend",
            "replicas": 1,
            "extraPodSpec": {"mainContainer": {"image": _IMAGE}},
        }
    }
    disaggregated = any(r.pool.role == "prefill" for r in roles)
    for role in roles:
        if not role.mapped:
            continue
        args = ["--model", plan.scenario.spec.model, *role.vllm]
        service: dict[str, object] = {"componentType": "worker"}
        if disaggregated:
            args += ["--disaggregation-mode", role.pool.role]
            args += ["--kv-transfer-config", kv_transfer_config()]
            service["subComponentType"] = role.pool.role
        service |= {
            "replicas": role.pool.instances,
            "resources": {"limits": {"gpu": str(role.pool.devices)}},
            "extraPodSpec": {
                "mainContainer": {
                    "image": _IMAGE,
                    "command": ["python3", "-m", "dynamo.vllm"],
                    "args": args,
                }
            },
        }
        name = {"prefill": "VllmPrefillWorker", "decode": "VllmDecodeWorker"}
        services[name.get(role.pool.role, "VllmWorker")] = service
    graph = {
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": _k8s_name(f"hetsim-{plan.scenario.name}")},
        "spec": {"services": services},
    }
    return yaml.safe_dump(graph, sort_keys=False, allow_unicode=True)


#: the Dynamo vLLM runtime image; ${VERSION} is left for the reader, as Dynamo's examples do
_IMAGE = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:${VERSION}"


def _k8s_name(text: str) -> str:
    """A DNS-1123 name (Kubernetes rejects anything else)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "hetsim"
