"""Portability at the boundary: can the consumer use the producer's KV, and at what cost?

:func:`portability` compares two :class:`~hetsim.kv.state.KVState` and returns a :class:`Verdict`:

``identical``
    Same invariants and the same representation end to end: a raw byte copy is exact.
``convertible``
    Same invariants, different representation. Each difference is a :class:`Conversion` placed on
    a side — ``producer`` (a kernel on the prefill devices before sending), ``consumer`` (a kernel
    on the decode devices after receiving) or ``staging`` (on the host of a ``host_staging`` hop)
    — and costed as bytes read + written at that device's memory bandwidth × its memory
    efficiency.
``incompatible``
    An invariant differs — model (name or config hash), tokenizer, adapter, token range, layer or
    head geometry. Every such :class:`Mismatch` is listed with both values; no conversion is
    offered (a verdict never mixes the two).

What is a conversion, and where it may run (``kv.conversions`` in the scenario declares it):

* ``dtype`` — the producer's KV format → ``kv.transfer_format`` (on the producer or in
  staging: the bytes must be in the transfer format before they reach the link), and the transfer
  format → the consumer's KV format (on the consumer or in staging). A cast between two quantized
  formats (int8 ↔ fp8) dequantises and re-quantises in **one fused kernel**: it reads the source
  bytes and writes the target bytes, the bf16 intermediate stays in registers, so it is one
  conversion, not two passes through memory. Must be declared: no engine converts KV dtypes on
  its own (vLLM's and SGLang's handshakes reject a ``kv_cache_dtype`` mismatch), and a raw copy
  between formats is the seed paper's silent corruption.
* ``layout`` — NHD ↔ HND page layout (vLLM ``enable_permute_local_kv``): a permute kernel. Must be
  declared (vLLM needs an explicit flag too). MLA has no head axis, so no layout conversion.
* ``page_size`` — re-paging into the consumer's page size (vLLM remaps and permutes blocks after
  receipt). Implicit: runs on the consumer unless declared elsewhere; costed as a re-layout pass.
* ``tp`` — a different tensor-parallel degree. Implicit (vLLM and SGLang both map TP ranks): it
  changes which ranks read from which, not the bytes — no kernel, zero cost, but the
  :class:`TransferPlan` reports more, smaller transfers (GQA) or whole-latent reads (MLA).

A re-layout (``layout``/``page_size``) on the same side as a ``dtype`` cast is fused into the
cast kernel (it can write any layout); two re-layouts on one side share one pass.

Bytes of a conversion are per device of its side: each TP rank converts its own share in
parallel (its KV heads for GQA; the whole latent for MLA, which every rank holds), while a
staging host converts one copy of the whole KV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hetsim.errors import InputError
from hetsim.kv.state import KVState
from hetsim.spec.hardware import AcceleratorProfile
from hetsim.spec.precision import get_format
from hetsim.spec.scenario import ConversionSpec

__all__ = [
    "Verdict",
    "Conversion",
    "Mismatch",
    "TransferPlan",
    "portability",
    "SIDES",
]

VerdictKind = Literal["identical", "convertible", "incompatible"]
Where = Literal["producer", "consumer", "staging"]
Origin = Literal["declared", "implicit", "undeclared"]

#: the sides a conversion can run on, in the order the KV meets them
SIDES: tuple[Where, ...] = ("producer", "staging", "consumer")

_KINDS = ("dtype", "layout", "page_size", "tp")


@dataclass(frozen=True)
class Mismatch:
    """An invariant that differs: the pairing is incompatible."""

    field: str
    producer: object
    consumer: object

    def text(self) -> str:
        return f"{self.field}: producer {self.producer} ≠ consumer {self.consumer}"


@dataclass(frozen=True)
class Conversion:
    """One costed conversion of the KV on its way from producer to consumer."""

    kind: str
    from_value: str
    to_value: str
    where: Where
    #: bytes one device of ``where`` reads per token of the request
    bytes_read_per_token: float
    #: bytes one device of ``where`` writes per token of the request
    bytes_written_per_token: float
    #: declared in kv.conversions, implicit (engines do it unasked), or undeclared (an error)
    origin: Origin = "declared"
    #: which representations it joins: ("producer"|"transfer", "transfer"|"consumer")
    between: tuple[str, str] = ("producer", "consumer")
    #: index of the kv.conversions entry that placed it
    spec_index: int | None = None
    note: str = ""

    @property
    def bytes_per_token(self) -> float:
        return self.bytes_read_per_token + self.bytes_written_per_token

    def cost_s(self, tokens: float, profile: AcceleratorProfile) -> float:
        """Seconds to convert ``tokens`` tokens on one device of ``profile`` (each device of the
        side converts its own share in parallel): bytes read + written over memory bandwidth ×
        memory efficiency."""
        if self.bytes_per_token == 0:
            return 0.0
        bandwidth = profile.memory_bandwidth * profile.efficiency.memory.value
        return tokens * self.bytes_per_token / bandwidth

    def label(self) -> str:
        return f"{self.kind} {self.from_value} → {self.to_value}"

    def as_yaml(self, where: str | None = None) -> str:
        """The kv.conversions entry that declares it."""
        return (
            f"{{kind: {self.kind}, from: {self.from_value}, to: {self.to_value}, "
            f"where: {where or self.where}}}"
        )


@dataclass(frozen=True)
class TransferPlan:
    """How one request's KV crosses the link: point-to-point transfers between TP ranks."""

    wire_format: str
    #: KV bytes per token in the wire format, counted once
    wire_bytes_per_token: float
    #: reads (pull) or writes (push) between one prefill rank and one decode rank per request
    transfers_per_request: int
    bytes_per_transfer_per_token: float
    #: False for MLA: each transfer carries the whole latent, the heads are not split
    head_split: bool
    note: str = ""

    @property
    def network_bytes_per_token(self) -> float:
        """All transfers together: more than ``wire_bytes_per_token`` when ranks read replicas
        (every MLA decode rank reads a whole latent; GQA heads replicated past tp = kv_heads)."""
        return self.transfers_per_request * self.bytes_per_transfer_per_token


@dataclass(frozen=True)
class Verdict:
    """Whether and how the consumer can use the producer's KV."""

    kind: VerdictKind
    conversions: tuple[Conversion, ...] = ()
    #: conversions a dtype/layout difference needs but kv.conversions does not declare, placed
    #: where the fix would put them; non-empty means the scenario is invalid
    undeclared: tuple[Conversion, ...] = ()
    mismatches: tuple[Mismatch, ...] = ()
    transfer: TransferPlan | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: indices of the kv.conversions entries this verdict used
    used_specs: frozenset[int] = field(default_factory=frozenset)

    @property
    def ok(self) -> bool:
        return self.kind != "incompatible" and not self.undeclared

    def on(self, where: str) -> tuple[Conversion, ...]:
        return tuple(c for c in self.conversions if c.where == where)

    def seconds(self, where: str, tokens: float, profile: AcceleratorProfile) -> float:
        """Seconds the conversions on ``where`` take for ``tokens`` tokens on ``profile``."""
        return sum(c.cost_s(tokens, profile) for c in self.on(where))

    def cost_s(self, tokens: float, profiles: Mapping[str, AcceleratorProfile]) -> float:
        """Seconds of all conversions, side by side in sequence; ``profiles`` by side."""
        return sum(
            self.seconds(w, tokens, profiles[w])
            for w in SIDES
            if any(c.bytes_per_token for c in self.on(w))
        )


# ---- the comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Need:
    kind: str
    from_value: str
    to_value: str
    between: tuple[str, str]
    allowed: tuple[Where, ...]
    default: Where
    must_declare: bool
    #: why a side is not possible, by side
    why_not: dict[str, str] = field(default_factory=dict)


def portability(
    producer: KVState,
    consumer: KVState,
    transfer_format: str | None = None,
    placement: Sequence[ConversionSpec] | None = None,
    *,
    staging: bool = True,
) -> Verdict:
    """The verdict for handing ``producer``'s KV to ``consumer``, travelling in
    ``transfer_format`` (None: the producer's format), with conversions placed as ``placement``
    (a scenario's ``kv.conversions``) declares. ``staging``: whether the path has a host stage.

    A declared entry whose side is impossible for the conversion it matches raises
    :class:`~hetsim.errors.InputError` naming ``kv.conversions[i].where``; a missing declaration is
    reported in :attr:`Verdict.undeclared` (``hetsim check`` turns that into an error).
    """
    specs = list(placement or ())
    warnings = _warnings(producer, consumer, transfer_format)
    mismatches = _invariants(producer, consumer)
    if mismatches:
        return Verdict("incompatible", mismatches=tuple(mismatches), warnings=tuple(warnings))

    wire = producer.in_transfer_format(transfer_format)
    notes: list[str] = []
    needs = _needs(producer, consumer, wire, notes)
    placed: list[tuple[_Need, Where, Origin, int | None]] = []
    for need in needs:
        placed.append(_place(need, specs, staging))

    conversions: list[Conversion] = []
    undeclared: list[Conversion] = []
    fused: set[Where] = set()  # sides that already run a pass over the KV
    dtype_sides = {where for need, where, *_ in placed if need.kind == "dtype"}
    for need, where, origin, index in placed:
        read, written, note = _bytes(need, where, producer, consumer, wire, dtype_sides, fused)
        conv = Conversion(
            kind=need.kind,
            from_value=need.from_value,
            to_value=need.to_value,
            where=where,
            bytes_read_per_token=read,
            bytes_written_per_token=written,
            origin=origin,
            between=need.between,
            spec_index=index,
            note=note,
        )
        (undeclared if origin == "undeclared" else conversions).append(conv)
    transfer = _transfer_plan(producer, consumer, wire)
    if any(c.kind == "tp" for c in conversions):
        conversions = [c if c.kind != "tp" else _with_note(c, transfer.note) for c in conversions]
    conversions.sort(key=lambda c: (SIDES.index(c.where), _KINDS.index(c.kind)))
    kind: VerdictKind = "convertible" if conversions or undeclared else "identical"
    return Verdict(
        kind,
        conversions=tuple(conversions),
        undeclared=tuple(undeclared),
        transfer=transfer,
        warnings=tuple(warnings),
        notes=tuple(notes),
        used_specs=frozenset(i for *_, i in placed if i is not None),
    )


def _invariants(p: KVState, c: KVState) -> list[Mismatch]:
    out: list[Mismatch] = []

    def cmp(name: str, a: object, b: object) -> None:
        if a != b:
            out.append(Mismatch(name, a, b))

    cmp("model", p.model.name, c.model.name)
    cmp("model.config_hash", p.model.config_hash, c.model.config_hash)
    cmp("tokenizer", _tok(p), _tok(c))
    cmp("adapter", p.adapter, c.adapter)
    cmp("token_range", (p.token_start, p.token_end), (c.token_start, c.token_end))
    g, h = p.geometry, c.geometry
    cmp("geometry.attention", g.attention.upper(), h.attention.upper())
    cmp("geometry.layers", g.layers, h.layers)
    if g.is_mla and h.is_mla:
        cmp("geometry.kv_lora_rank", g.kv_lora_rank, h.kv_lora_rank)
        cmp("geometry.rope_dim", g.rope_dim, h.rope_dim)
    elif not g.is_mla and not h.is_mla:
        cmp("geometry.kv_heads", g.kv_heads, h.kv_heads)
        cmp("geometry.head_dim", g.head_dim, h.head_dim)
    else:  # one MLA, one GQA: show each side's per-token vector shape
        cmp("geometry.kv_vector", _vector(g), _vector(h))
    return out


def _tok(s: KVState) -> str:
    return f"{s.tokenizer.name} (vocab {s.tokenizer.vocab_size})"


def _vector(g: Any) -> str:
    if g.is_mla:
        return f"latent {g.kv_lora_rank} + rope {g.rope_dim}"
    return f"{g.kv_heads} KV heads × {g.head_dim}"


def _warnings(p: KVState, c: KVState, transfer_format: str | None) -> list[str]:
    out = []
    if p.model.weight_format != c.model.weight_format:
        out.append(
            f"KV computed with {p.model.weight_format} weights is decoded with "
            f"{c.model.weight_format} weights: same shape and meaning, slightly different "
            "numerics (vLLM's handshake would reject this pairing; hetsim allows it)"
        )
    fmt_t = transfer_format or p.kv_format
    b_p, b_t, b_c = (get_format(f, "kv").element_bytes for f in (p.kv_format, fmt_t, c.kv_format))
    if b_t < min(b_p, b_c):
        out.append(
            f"the KV is narrowed to {fmt_t} for the link and widened back to {c.kv_format}: the "
            f"consumer sees {fmt_t}-rounded values"
        )
    return out


def _needs(p: KVState, c: KVState, wire: KVState, notes: list[str]) -> list[_Need]:
    needs: list[_Need] = []
    fmt_p, fmt_t, fmt_d = p.kv_format, wire.kv_format, c.kv_format
    has_transfer = fmt_t != fmt_p
    if has_transfer:
        needs.append(
            _Need(
                "dtype", fmt_p, fmt_t, ("producer", "transfer"),
                allowed=("producer", "staging"), default="producer", must_declare=True,
                why_not={"consumer": f"the KV must already be {fmt_t} (kv.transfer_format) "
                         "before it reaches the link"},
            )
        )  # fmt: skip
    if fmt_t != fmt_d:
        if has_transfer:
            why = f"the KV travels as {fmt_t} (kv.transfer_format): it is cast after the link"
        else:
            why = (
                f"with kv.transfer_format null the KV travels as the producer's {fmt_p}; to cast "
                f"before sending, set kv.transfer_format: {fmt_d}"
            )
        needs.append(
            _Need(
                "dtype", fmt_t, fmt_d, ("transfer" if has_transfer else "producer", "consumer"),
                allowed=("consumer", "staging"), default="consumer", must_declare=True,
                why_not={"producer": why},
            )
        )  # fmt: skip
    if p.layout != c.layout:
        if p.geometry.is_mla:
            notes.append(
                f"layouts differ ({p.layout} vs {c.layout}) but the MLA latent has no head axis: "
                "nothing to permute"
            )
        else:
            needs.append(
                _Need(
                    "layout", p.layout, c.layout, ("producer", "consumer"),
                    allowed=("producer", "consumer", "staging"), default="consumer",
                    must_declare=True,
                )
            )  # fmt: skip
    if p.page_tokens != c.page_tokens:
        needs.append(
            _Need(
                "page_size", str(p.page_tokens), str(c.page_tokens), ("producer", "consumer"),
                allowed=("producer", "consumer", "staging"), default="consumer",
                must_declare=False,
            )
        )  # fmt: skip
    if p.tp.tp != c.tp.tp:
        needs.append(
            _Need(
                "tp", str(p.tp.tp), str(c.tp.tp), ("producer", "consumer"),
                allowed=("consumer", "producer"), default="consumer", must_declare=False,
                why_not={"staging": "a TP re-partition is which ranks read (consumer, pull) or "
                         "write (producer, push), not a staging kernel"},
            )
        )  # fmt: skip
    return needs


def _matches(declared: str | int | None, value: str) -> bool:
    return declared is None or str(declared) == value


def _place(
    need: _Need, specs: list[ConversionSpec], staging: bool
) -> tuple[_Need, Where, Origin, int | None]:
    allowed = tuple(w for w in need.allowed if staging or w != "staging")
    candidates = [
        (i, s)
        for i, s in enumerate(specs)
        if s.kind == need.kind
        and _matches(s.from_, need.from_value)
        and _matches(s.to, need.to_value)
    ]
    for i, s in candidates:
        if s.where in allowed:
            return need, s.where, "declared", i
    if candidates:
        i, s = candidates[0]
        why = need.why_not.get(s.where)
        if why is None and s.where == "staging":
            why = "the path has no host_staging hop to run it on"
        raise InputError(
            f"the {need.kind} conversion {need.from_value} → {need.to_value} cannot run on the "
            f"{s.where}: {why}",
            field=f"kv.conversions[{i}].where",
            value=s.where,
            allowed=", ".join(allowed),
        )
    if need.must_declare:
        return need, need.default, "undeclared", None
    return need, need.default, "implicit", None


def _share(p: KVState, c: KVState, where: Where, fmt: str) -> float:
    """Bytes per token one device of ``where`` touches when the KV is in ``fmt``."""
    if where == "producer":
        return p.bytes_per_token_per_rank(fmt)
    if where == "consumer":
        return c.bytes_per_token_per_rank(fmt)
    return p.geometry.bytes_per_token(fmt)  # a staging host handles one whole copy


def _bytes(
    need: _Need,
    where: Where,
    p: KVState,
    c: KVState,
    wire: KVState,
    dtype_sides: set[Where],
    fused: set[Where],
) -> tuple[float, float, str]:
    if need.kind == "tp":
        return 0.0, 0.0, ""
    if need.kind == "dtype":
        src, dst = need.from_value, need.to_value
        fused.add(where)
        a, b = get_format(src, "kv"), get_format(dst, "kv")
        vec = p.geometry.vectors_per_token_per_layer[1]
        scales = get_format(dst, "kv", vec).scale_granularity
        if a.quantized and b.quantized:
            how = "dequantise and re-quantise in one fused kernel (bf16 stays in registers)"
        elif a.quantized or b.quantized:
            how = "quantise" if b.quantized else "dequantise"
        else:
            how = "cast"
        note = f"{how}; {dst} with {scales}" + (
            f"; lossy ({dst} has fewer bits than {src})" if b.element_bytes < a.element_bytes
            else ""
        )  # fmt: skip
        return _share(p, c, where, src), _share(p, c, where, dst), note
    # a re-layout (layout or page_size) pass over the KV in the format present on that side
    if where in dtype_sides:
        return 0.0, 0.0, f"fused into the dtype cast on the {where}"
    if where in fused:
        return 0.0, 0.0, f"fused into the re-layout pass on the {where}"
    fused.add(where)
    fmt = {"producer": p.kv_format, "staging": wire.kv_format, "consumer": c.kv_format}[where]
    what = "permute NHD ↔ HND" if need.kind == "layout" else "re-page"
    share = _share(p, c, where, fmt)
    return share, share, f"{what}: one read + write pass over the {fmt} KV"


def _transfer_plan(p: KVState, c: KVState, wire: KVState) -> TransferPlan:
    full = wire.bytes_per_token
    tp_p, tp_d = p.tp.tp, c.tp.tp
    if p.geometry.is_mla:
        note = (
            f"MLA latent is whole on every rank (no head split): each of the {tp_d} decode "
            f"ranks reads one prefill rank's copy; no re-partition cost"
        )
        return TransferPlan(wire.kv_format, full, tp_d, full, False, note)
    heads = p.geometry.kv_heads
    h_p = heads / min(tp_p, heads)  # heads on each prefill rank
    h_d = heads / min(tp_d, heads)  # heads each decode rank needs
    pieces = max(1, -(-int(h_d) // int(h_p)))  # prefill ranks each decode rank reads from
    per = full * min(h_p, h_d) / heads
    transfers = tp_d * pieces
    if tp_p == tp_d:
        note = f"{transfers} transfers of {h_d:g} KV head(s) each (rank to rank)"
    else:
        note = (
            f"each of the {tp_d} decode ranks reads its {h_d:g} KV head(s) from {pieces} "
            f"prefill rank(s): {transfers} transfers of {per:,.0f} B/token instead of "
            f"{tp_p} of {full * h_p / heads:,.0f} B/token at equal TP"
        )
    if tp_d > heads:
        note += f"; heads replicated on {tp_d // heads} decode ranks each read their own copy"
    return TransferPlan(wire.kv_format, full, transfers, per, True, note)


def _with_note(c: Conversion, note: str) -> Conversion:
    return replace(c, note=note)
