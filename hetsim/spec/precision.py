"""Numeric formats and per-role precision policies.

A format is named the way serving engines name it (``bf16``, ``fp8_e4m3``, ``int8``, ``w4a16``...).
For each format we record the bytes per element and, for quantized formats, how scales are stored:
one scale (and, for asymmetric formats, one zero point) per group of ``scale_group`` elements,
``scale_bytes`` each. These granularities are the common defaults of the engines and are stated
in ``hetsim models`` output, since they change the KV bytes per token:

* fp8 KV (vLLM ``kv_cache_dtype=fp8``): one scale per tensor per layer — no per-token bytes.
* int8 KV (LMDeploy-style): asymmetric, one fp16 scale and zero point per token and head.
* int4 KV: asymmetric, one fp16 scale and zero point per token and head.
* int8 weights (W8A8): per output channel fp16 scale; fp8 weights: fp32 scale per 128×128 block
  (DeepSeek-V3 / GLM-5.1-FP8 checkpoints); w4a16 (AWQ/GPTQ): group 128 with fp16 scale and zero;
  fp4 (NVFP4): group 16 with an fp8 scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "NumericFormat",
    "FORMATS",
    "WEIGHT_FORMATS",
    "ACTIVATION_FORMATS",
    "KV_FORMATS",
    "COMPUTE_FORMATS",
    "get_format",
    "gemm_compute_format",
    "FP8_SCALINGS",
    "named_fp8_scaling",
    "PRECISION_SHORTHANDS",
]


@dataclass(frozen=True)
class NumericFormat:
    name: str
    element_bytes: float
    #: elements sharing one scale; 0 means one scale for the whole tensor (no per-token bytes)
    scale_group: int = 0
    scale_bytes: float = 0.0
    zero_point: bool = False
    description: str = ""
    #: the compute peak a GEMM in this format uses (key into a profile's ``compute`` table)
    compute_key: str | None = None

    @property
    def quantized(self) -> bool:
        return self.element_bytes < 2

    def bytes_for_vector(self, length: int) -> float:
        """Bytes to store ``length`` elements as one vector, scales and zero points included."""
        data = length * self.element_bytes
        if self.scale_group <= 0:
            return data
        groups = -(-length // self.scale_group)
        return data + groups * self.scale_bytes * (2 if self.zero_point else 1)

    @property
    def scale_granularity(self) -> str:
        if self.scale_bytes == 0 and self.scale_group == 0:
            return "per-tensor scale" if self.quantized else "none"
        kind = "scale + zero point" if self.zero_point else "scale"
        return f"{self.scale_bytes:g}-byte {kind} per {self.scale_group} elements"


def _f(*args: object, **kwargs: object) -> NumericFormat:
    return NumericFormat(*args, **kwargs)  # type: ignore[arg-type]


FORMATS: dict[str, NumericFormat] = {
    f.name: f
    for f in (
        _f("fp32", 4, description="IEEE single precision", compute_key="fp32"),
        _f("bf16", 2, description="bfloat16", compute_key="bf16"),
        _f("fp16", 2, description="IEEE half precision", compute_key="fp16"),
        _f("fp8_e4m3", 1, description="OCP FP8 E4M3, per-tensor scale", compute_key="fp8"),
        _f("fp8_e5m2", 1, description="OCP FP8 E5M2, per-tensor scale", compute_key="fp8"),
        _f(
            "int8",
            1,
            description="8-bit integer, asymmetric fp16 scale and zero point per token-head",
            compute_key="int8",
        ),
        _f("int4", 0.5, description="4-bit integer", compute_key="int4"),
        _f("w4a16", 0.5, description="AWQ/GPTQ INT4 weights, bf16/fp16 compute"),
        _f("fp4", 0.5, description="NVFP4 / MXFP4", compute_key="fp4"),
    )
}

# Scale metadata depends on the role a format plays, not only on its bits.
_WEIGHT_SCALES = {
    "fp8_e4m3": dict(scale_group=128 * 128, scale_bytes=4),
    "int8": dict(scale_group=0, scale_bytes=0),  # per-channel: negligible next to the weights
    "w4a16": dict(scale_group=128, scale_bytes=2, zero_point=True),
    "fp4": dict(scale_group=16, scale_bytes=1),
}
_KV_SCALES = {
    "int8": dict(scale_group=-1, scale_bytes=2, zero_point=True),
    "int4": dict(scale_group=-1, scale_bytes=2, zero_point=True),
}

#: how an fp8 checkpoint scales its weights and activations, which picks the GEMM kernel a runtime
#: runs (and the measured table that times it). Weights are sized with block scales whichever it
#: is: 4 bytes per 16,384 weights, 0.02 % of them.
FP8_SCALINGS: dict[str, str] = {
    "block": "one fp32 scale per 128x128 weight block, activations scaled per 128-element token "
    "group at run time (config.json weight_block_size [128, 128]: DeepSeek-V3, Qwen3-FP8, "
    "MiniMax-M2, GLM-5-FP8)",
    "tensor": "one scale per weight tensor and a static, calibrated activation scale (ModelOpt "
    "FP8 such as nvidia/Llama-3.3-70B-Instruct-FP8, activation_scheme static)",
    "tensor_dynamic": "one scale per weight tensor, the activations' scale computed at every "
    "step (activation_scheme dynamic without weight_block_size, vLLM --quantization fp8)",
}


def named_fp8_scaling(fp8_scales: str | None) -> str | None:
    """The fp8 scaling labels name: any but the default ``block`` (None for that and unset)."""
    return fp8_scales if fp8_scales not in (None, "block") else None


WEIGHT_FORMATS = ("bf16", "fp16", "fp8_e4m3", "int8", "w4a16", "fp4", "fp32")
ACTIVATION_FORMATS = ("bf16", "fp16", "fp8_e4m3", "int8", "fp4", "fp32")
KV_FORMATS = ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "fp32")
COMPUTE_FORMATS = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")

Role = Literal["weights", "activations", "kv"]

#: shorthand precision policies, the way engines and model cards name them. A shorthand naming an
#: unquantized dtype is the engine's ``--dtype``, and the KV cache then follows it (vLLM's
#: ``kv_cache_dtype=auto``): ``--dtype half`` keeps KV in fp16, which is what a T4 (no bf16) needs.
#: Quantized shorthands set only weights and activations; the KV format keeps its own default.
PRECISION_SHORTHANDS: dict[str, dict[str, str]] = {
    "bf16": {"weights": "bf16", "activations": "bf16"},
    "fp16": {"weights": "fp16", "activations": "fp16", "kv": "fp16"},
    "fp8": {"weights": "fp8_e4m3", "activations": "fp8_e4m3"},
    "w8a8": {"weights": "int8", "activations": "int8"},
    "int8": {"weights": "int8", "activations": "int8"},
    "w8a16": {"weights": "int8", "activations": "bf16"},
    "w4a16": {"weights": "w4a16", "activations": "bf16"},
    "awq": {"weights": "w4a16", "activations": "bf16"},
    "fp4": {"weights": "fp4", "activations": "fp4"},
    "fp32": {"weights": "fp32", "activations": "fp32", "kv": "fp32"},
}


def get_format(name: str, role: Role, vector_length: int | None = None) -> NumericFormat:
    """The format ``name`` as stored for ``role``, with that role's scale granularity.

    For KV, per token-head scales need the vector length (head_dim, or the MLA latent width).
    """
    allowed = {"weights": WEIGHT_FORMATS, "activations": ACTIVATION_FORMATS, "kv": KV_FORMATS}[role]
    if name not in allowed:
        raise KeyError(name)
    base = FORMATS[name]
    scales = (_WEIGHT_SCALES if role == "weights" else _KV_SCALES if role == "kv" else {}).get(name)
    if not scales:
        return base
    scales = dict(scales)
    if scales.get("scale_group") == -1:
        scales["scale_group"] = vector_length or 128
    return NumericFormat(
        name=base.name,
        element_bytes=base.element_bytes,
        description=base.description,
        compute_key=base.compute_key,
        **scales,  # type: ignore[arg-type]
    )


def gemm_compute_format(weights: str, activations: str) -> str | None:
    """The compute peak key a GEMM with these operand formats runs at, or None if invalid.

    Weight-only quantization (w4a16, int8 or fp8 weights with bf16/fp16 activations) dequantizes
    the weights and computes in the activation format. Otherwise both operands share one format
    (W8A8 int8, fp8 × fp8, fp4 × fp4) and that format's tensor throughput is used.
    """
    if activations in ("bf16", "fp16", "fp32"):
        if FORMATS[weights].element_bytes <= FORMATS[activations].element_bytes:
            return FORMATS[activations].compute_key
        return None
    if weights == activations:
        return FORMATS[activations].compute_key
    return None
