"""The kernels, per backend: each ``make_*`` method allocates the inputs of one shape once and
returns a callable that runs one kernel call (the timed region).

Inputs are random and cut as views from one flat random buffer per dtype (a *pool*), so that a
sweep of many shapes does not spend its time generating random numbers. Inputs that a real
serving step reads cold from memory — GEMM weights, the decode KV cache — *rotate*: a shape whose
operand is smaller than the rotation footprint (a few times the last-level cache) gets several
copies of it, and successive calls read successive copies, so every call reads its operand from
memory rather than from a cache that the previous call warmed. Activations (the GEMM's left
operand, the query) are not rotated: in a real step they were just written by the op before.

GEMM weights are stored as in a linear layer, ``n × k`` (output × input features), and the
kernel computes ``x @ wᵀ`` for activations ``x`` of ``m × k``.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hetsim.perf.microbench.timing import Timer, cpu_timer, cuda_timer

__all__ = ["Kernels", "NumpyKernels", "TorchKernels", "cpu_name", "last_level_cache_bytes"]

MiB = 1 << 20
#: most copies of one rotating operand (tiny operands would otherwise need thousands)
MAX_COPIES = 4096


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def last_level_cache_bytes() -> int:
    """Total size of the distinct L3 caches (sysfs), or 32 MiB when it cannot be read."""
    seen: set[str] = set()
    total = 0
    base = Path("/sys/devices/system/cpu")
    try:
        for cache in sorted(base.glob("cpu[0-9]*/cache/index[0-9]*")):
            if (cache / "level").read_text().strip() != "3":
                continue
            shared = (cache / "shared_cpu_list").read_text().strip()
            if shared in seen:
                continue
            seen.add(shared)
            size = (cache / "size").read_text().strip().upper()
            factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
            total += int(size.rstrip("KMG")) * factor
    except (OSError, ValueError):
        return 32 * MiB
    return total or 32 * MiB


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Pool:
    """One flat random buffer of a dtype; kernel inputs are contiguous views cut from it.

    ``take`` hands out consecutive, non-overlapping regions (wrapping to the start when the
    buffer is used up), so the inputs of one shape do not alias each other. An input larger than
    the buffer gets its own array, filled by tiling the buffer.
    """

    def __init__(self, buffer: Any, empty: Callable[[int], Any]) -> None:
        self.buffer = buffer
        self.size = int(buffer.shape[0])
        self.empty = empty
        self.cursor = 0

    def take(self, shape: tuple[int, ...], copies: int = 1) -> list[Any]:
        elems = math.prod(shape)
        need = elems * copies
        if need > self.size:
            flat = self.empty(need)
            for off in range(0, need, self.size):
                count = min(self.size, need - off)
                flat[off : off + count] = self.buffer[:count]
            base = 0
        else:
            if self.cursor + need > self.size:
                self.cursor = 0
            flat, base = self.buffer, self.cursor
            self.cursor += need
        return [
            flat[base + i * elems : base + (i + 1) * elems].reshape(shape) for i in range(copies)
        ]


class Kernels:
    """What a backend offers, and the factories of its timed callables."""

    name: str = ""
    version: str = ""
    device_kind: str = "cpu"
    device_name: str = ""
    threads: int = 1
    #: every GEMM format this backend can try (availability is probed by the sweep)
    gemm_dtypes: tuple[str, ...] = ()
    attention_dtypes: tuple[str, ...] = ()
    #: more facts about the device, for the table's metadata
    extra: dict[str, Any] = {}  # replaced per instance, never mutated
    #: calls per timed repeat of the ``launch`` kernel
    launch_inner: int = 200
    timer: Timer = staticmethod(cpu_timer)
    launch_timer: Timer = staticmethod(cpu_timer)

    def __init__(self, rotation_bytes: int) -> None:
        self.rotation_bytes = int(rotation_bytes)
        self._pools: dict[str, _Pool] = {}

    # -- inputs ---------------------------------------------------------------------------------

    def _itemsize(self, dtype: str) -> int:
        raise NotImplementedError

    def _new_pool(self, dtype: str, elems: int) -> _Pool:
        raise NotImplementedError

    def pool(self, dtype: str) -> _Pool:
        if dtype not in self._pools:
            # twice the footprint: a rotating operand of up to the footprint fits in one piece
            self._pools[dtype] = self._new_pool(
                dtype, 2 * self.rotation_bytes // self._itemsize(dtype)
            )
        return self._pools[dtype]

    def copies(self, nbytes: float) -> int:
        """Copies of an operand of ``nbytes`` so that a full rotation overflows the caches."""
        return max(1, min(MAX_COPIES, math.ceil(self.rotation_bytes / max(nbytes, 1))))

    def close(self) -> None:
        self._pools.clear()

    # -- kernels --------------------------------------------------------------------------------

    def make(self, op: str, dtype: str, shape: dict[str, int]) -> Callable[[], Any]:
        if op == "gemm":
            return self.gemm(dtype, shape["m"], shape["n"], shape["k"])
        if op == "attention_prefill":
            return self.attention_prefill(
                dtype, shape["batch"], shape["seq_len"], shape["heads"], shape["head_dim"]
            )
        if op == "attention_decode":
            return self.attention_decode(
                dtype,
                shape["batch"],
                shape["context"],
                shape["heads"],
                shape["kv_heads"],
                shape["head_dim"],
            )
        if op == "memcpy":
            return self.memcpy(shape["bytes"])
        if op == "elementwise":
            return self.elementwise(dtype, shape["m"])
        if op == "launch":
            return self.launch()
        raise ValueError(f"unknown op {op!r}")

    def gemm(self, dtype: str, m: int, n: int, k: int) -> Callable[[], Any]:
        raise NotImplementedError

    def attention_prefill(
        self, dtype: str, batch: int, seq_len: int, heads: int, head_dim: int
    ) -> Callable[[], Any]:
        raise NotImplementedError

    def attention_decode(
        self, dtype: str, batch: int, context: int, heads: int, kv_heads: int, head_dim: int
    ) -> Callable[[], Any]:
        raise NotImplementedError

    def memcpy(self, nbytes: int) -> Callable[[], Any]:
        raise NotImplementedError

    def elementwise(self, dtype: str, m: int) -> Callable[[], Any]:
        """``a + b`` into a new array of ``m`` elements: the shape of norms, activations and
        residual adds (their per-op cost dominates small tensors, their bandwidth large ones)."""
        raise NotImplementedError

    def launch(self) -> Callable[[], Any]:
        raise NotImplementedError


# ---- numpy ------------------------------------------------------------------------------------


class NumpyKernels(Kernels):
    """NumPy on the CPU, fp32 only (NumPy has no bf16, and its fp16 matmul is not BLAS-backed:
    hundreds of times slower than fp32, so it is not measured). GEMMs go to the BLAS NumPy was
    built with; attention is written out in NumPy operations (BLAS matmuls plus element-wise
    softmax, which NumPy runs on one thread)."""

    name = "numpy"
    gemm_dtypes = ("fp32",)
    attention_dtypes = ("fp32",)
    #: query rows per block of the blocked causal prefill attention
    prefill_block = 256

    def __init__(self, rotation_bytes: int) -> None:
        super().__init__(rotation_bytes)
        self.version = np.__version__
        self.device_name = cpu_name()
        self.threads = _blas_threads()
        self.extra = {"l3_cache_bytes": last_level_cache_bytes()}
        self._rng = np.random.default_rng(0)
        self._executor: ThreadPoolExecutor | None = None

    def _itemsize(self, dtype: str) -> int:
        return 4

    def _new_pool(self, dtype: str, elems: int) -> _Pool:
        if dtype != "fp32":
            raise ValueError(f"numpy backend has no {dtype} kernels")
        buffer = self._rng.standard_normal(elems, dtype=np.float32)
        return _Pool(buffer, lambda n: np.empty(n, dtype=np.float32))

    def gemm(self, dtype: str, m: int, n: int, k: int) -> Callable[[], Any]:
        pool = self.pool(dtype)
        (a,) = pool.take((m, k))
        weights = [w.T for w in pool.take((n, k), self.copies(n * k * 4))]
        out = np.empty((m, n), dtype=np.float32)
        nxt = itertools.cycle(weights).__next__
        matmul = np.matmul
        return lambda: matmul(a, nxt(), out=out)

    def attention_prefill(
        self, dtype: str, batch: int, seq_len: int, heads: int, head_dim: int
    ) -> Callable[[], Any]:
        """Causal softmax(Q Kᵀ/√d) V for every (sequence, head), in blocks of query rows: each
        block multiplies only against the keys up to its last row (the causal prefix), masks the
        diagonal block, and does an exact row softmax."""
        pool = self.pool(dtype)
        bh, s, d = batch * heads, seq_len, head_dim
        q = pool.take((bh, s, d))[0] * np.float32(1.0 / math.sqrt(d))  # pre-scaled copy
        (k,) = pool.take((bh, s, d))
        (v,) = pool.take((bh, s, d))
        kt = k.transpose(0, 2, 1)
        out = np.empty((bh, s, d), dtype=np.float32)
        block = min(self.prefill_block, s)
        scratch = np.empty(bh * block * s, dtype=np.float32)
        row_max = np.empty(bh * block, dtype=np.float32)
        mask = np.triu(np.full((block, block), -np.inf, dtype=np.float32), 1)
        starts = list(range(0, s, block))

        def call() -> None:
            for start in starts:
                stop = min(start + block, s)
                rows = stop - start
                scores = scratch[: bh * rows * stop].reshape(bh, rows, stop)
                np.matmul(q[:, start:stop], kt[:, :, :stop], out=scores)
                scores[:, :, start:stop] += mask[:rows, :rows]
                mx = row_max[: bh * rows].reshape(bh, rows, 1)
                np.max(scores, axis=2, keepdims=True, out=mx)
                np.subtract(scores, mx, out=scores)
                np.exp(scores, out=scores)
                np.sum(scores, axis=2, keepdims=True, out=mx)
                np.divide(scores, mx, out=scores)
                np.matmul(scores, v[:, :stop], out=out[:, start:stop])

        return call

    def attention_decode(
        self, dtype: str, batch: int, context: int, heads: int, kv_heads: int, head_dim: int
    ) -> Callable[[], Any]:
        """One query token per sequence over ``context`` cached keys/values with grouped-query
        attention: the ``heads // kv_heads`` query heads that share a KV head are the rows of one
        small matmul against that head's cache (no copy of K/V)."""
        pool = self.pool(dtype)
        group = heads // kv_heads
        b, c, d = batch, context, head_dim
        q = pool.take((b, kv_heads, group, d))[0] * np.float32(1.0 / math.sqrt(d))
        cache_bytes = 2 * b * kv_heads * c * d * 4
        copies = self.copies(cache_bytes)
        ks = pool.take((b, kv_heads, c, d), copies)
        vs = pool.take((b, kv_heads, c, d), copies)
        pairs = itertools.cycle(
            [(kk.transpose(0, 1, 3, 2), vv) for kk, vv in zip(ks, vs, strict=True)]
        )
        nxt = pairs.__next__
        scores = np.empty((b, kv_heads, group, c), dtype=np.float32)
        mx = np.empty((b, kv_heads, group, 1), dtype=np.float32)
        out = np.empty((b, kv_heads, group, d), dtype=np.float32)

        def call() -> None:
            kt, vv = nxt()
            np.matmul(q, kt, out=scores)
            np.max(scores, axis=3, keepdims=True, out=mx)
            np.subtract(scores, mx, out=scores)
            np.exp(scores, out=scores)
            np.sum(scores, axis=3, keepdims=True, out=mx)
            np.divide(scores, mx, out=scores)
            np.matmul(scores, vv, out=out)

        return call

    def memcpy(self, nbytes: int) -> Callable[[], Any]:
        """``np.copyto`` of ``nbytes``, split in one contiguous slice per thread (NumPy copies on
        one thread, and one core alone does not draw the memory bandwidth that the BLAS
        kernels, running on every core, do)."""
        src = np.full(nbytes // 4, 1.0, dtype=np.float32)  # written: no shared zero pages
        dst = np.empty_like(src)
        bounds = np.linspace(0, src.size, self.threads + 1).astype(int)
        slices = [(dst[a:b], src[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
        if len(slices) == 1:
            return lambda: np.copyto(dst, src)
        pool = self._copy_pool()
        copyto = np.copyto

        def call() -> None:
            for future in [pool.submit(copyto, d, s) for d, s in slices]:
                future.result()

        return call

    def _copy_pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="hetsim-copy")
        return self._executor

    def close(self) -> None:
        super().close()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def elementwise(self, dtype: str, m: int) -> Callable[[], Any]:
        a = np.full(m, 1.0, dtype=np.float32)
        b = np.full(m, 2.0, dtype=np.float32)
        add = np.add
        return lambda: add(a, b)  # a fresh output, as eager runtimes allocate one per op

    def launch(self) -> Callable[[], Any]:
        a = np.ones(1, dtype=np.float32)
        b = np.ones(1, dtype=np.float32)
        add = np.add
        return lambda: add(a, b)


def _blas_threads() -> int:
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cpu_threads()


# ---- torch ------------------------------------------------------------------------------------

_TORCH_DTYPES = {
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "int8": "int8",
    "fp8": "float8_e4m3fn",
}


class TorchKernels(Kernels):
    """PyTorch on the CPU or one CUDA device.

    GEMMs: ``torch.mm`` (fp32 with TF32 off, bf16, fp16), ``torch._int_mm`` (int8 → int32), and
    ``torch._scaled_mm`` (fp8 e4m3 with per-tensor scales → bf16). Attention:
    ``scaled_dot_product_attention``, causal over the sequence for prefill; for decode the query
    heads that share a KV head are laid out as the rows of that head's query (grouped-query
    attention without repeating K/V). On the CPU the formats are fp32, bf16 and int8: fp16 is
    left out (without AVX512-FP16 its matmul is emulated, 50-200x slower than fp32), and so is
    fp8 (``_scaled_mm`` runs on a CPU, but as a conversion to a wider format: slower than fp32,
    and no deployment runs fp8 GEMMs on a CPU).
    """

    name = "torch"

    def __init__(self, device: str, rotation_bytes: int | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.device_kind = "cuda" if self.device.type == "cuda" else "cpu"
        self.version = torch.__version__
        if self.device_kind == "cuda":
            index = (
                self.device.index if self.device.index is not None else torch.cuda.current_device()
            )
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)
            props = torch.cuda.get_device_properties(self.device)
            self.device_name = torch.cuda.get_device_name(self.device)
            self.threads = int(torch.get_num_threads())
            l2 = int(getattr(props, "L2_cache_size", 0) or 50 * MiB)
            self.extra = {
                "cuda_device_index": self.device.index,
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": int(props.multi_processor_count),
                "device_memory_bytes": int(props.total_memory),
                "l2_cache_bytes": l2,
                "cuda_version": torch.version.cuda,
            }
            default_rotation = max(256 * MiB, 4 * l2)
            self.timer = cuda_timer(torch, hold=True)
            self.launch_timer = cuda_timer(torch, hold=False)
            self.launch_inner = 100
            self.gemm_dtypes = ("fp32", "bf16", "fp16", "int8", "fp8")
            self.attention_dtypes = ("fp32", "bf16", "fp16")
        else:
            self.device_name = cpu_name()
            self.threads = int(torch.get_num_threads())
            self.extra = {"l3_cache_bytes": last_level_cache_bytes()}
            default_rotation = max(64 * MiB, 4 * last_level_cache_bytes())
            self.gemm_dtypes = ("fp32", "bf16", "int8")
            self.attention_dtypes = ("fp32", "bf16")
        super().__init__(rotation_bytes or default_rotation)
        # fp32 means fp32: no TF32 (CUDA) or bf16 (oneDNN) inside fp32 matmuls while we time
        self._precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(0)

    def tdtype(self, dtype: str) -> Any:
        return getattr(self.torch, _TORCH_DTYPES[dtype])

    def _itemsize(self, dtype: str) -> int:
        return self.torch.empty((), dtype=self.tdtype(dtype)).element_size()

    def _new_pool(self, dtype: str, elems: int) -> _Pool:
        torch = self.torch
        tdt = self.tdtype(dtype)
        if dtype == "int8":
            buffer = torch.randint(
                -128, 128, (elems,), dtype=torch.int8, device=self.device, generator=self._gen
            )
        else:
            buffer = torch.empty(elems, dtype=tdt, device=self.device)
            chunk = 1 << 24
            for off in range(0, elems, chunk):
                count = min(chunk, elems - off)
                part = torch.randn(count, device=self.device, generator=self._gen)
                buffer[off : off + count] = part.to(tdt)
        return _Pool(buffer, lambda n: torch.empty(n, dtype=tdt, device=self.device))

    def close(self) -> None:
        super().close()
        self.torch.set_float32_matmul_precision(self._precision)
        if self.device_kind == "cuda":
            self.torch.cuda.empty_cache()

    def _empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.torch.empty(shape, dtype=dtype, device=self.device)

    def gemm(self, dtype: str, m: int, n: int, k: int) -> Callable[[], Any]:
        torch = self.torch
        pool = self.pool(dtype)
        (a,) = pool.take((m, k))
        size = self._itemsize(dtype)
        weights = [w.t() for w in pool.take((n, k), self.copies(n * k * size))]
        nxt = itertools.cycle(weights).__next__
        if dtype == "int8":
            out = self._empty((m, n), torch.int32)
            int_mm = torch._int_mm
            return lambda: int_mm(a, nxt(), out=out)
        if dtype == "fp8":
            scale_a = torch.ones((), dtype=torch.float32, device=self.device)
            scale_b = torch.ones((), dtype=torch.float32, device=self.device)
            out = self._empty((m, n), torch.bfloat16)
            scaled_mm = torch._scaled_mm
            return lambda: scaled_mm(a, nxt(), scale_a, scale_b, out_dtype=torch.bfloat16, out=out)
        out = self._empty((m, n), self.tdtype(dtype))
        mm = torch.mm
        return lambda: mm(a, nxt(), out=out)

    def attention_prefill(
        self, dtype: str, batch: int, seq_len: int, heads: int, head_dim: int
    ) -> Callable[[], Any]:
        sdpa = self.torch.nn.functional.scaled_dot_product_attention
        pool = self.pool(dtype)
        shape = (batch, heads, seq_len, head_dim)
        (q,) = pool.take(shape)
        (k,) = pool.take(shape)
        (v,) = pool.take(shape)
        return lambda: sdpa(q, k, v, is_causal=True)

    def attention_decode(
        self, dtype: str, batch: int, context: int, heads: int, kv_heads: int, head_dim: int
    ) -> Callable[[], Any]:
        sdpa = self.torch.nn.functional.scaled_dot_product_attention
        pool = self.pool(dtype)
        group = heads // kv_heads
        (q,) = pool.take((batch, kv_heads, group, head_dim))
        cache_bytes = 2 * batch * kv_heads * context * head_dim * self._itemsize(dtype)
        copies = self.copies(cache_bytes)
        ks = pool.take((batch, kv_heads, context, head_dim), copies)
        vs = pool.take((batch, kv_heads, context, head_dim), copies)
        nxt = itertools.cycle(list(zip(ks, vs, strict=True))).__next__

        def call() -> Any:
            k, v = nxt()
            return sdpa(q, k, v)

        return call

    def memcpy(self, nbytes: int) -> Callable[[], Any]:
        torch = self.torch
        src = torch.full((nbytes // 4,), 1.0, dtype=torch.float32, device=self.device)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)

    def elementwise(self, dtype: str, m: int) -> Callable[[], Any]:
        torch = self.torch
        a = torch.full((m,), 1.0, dtype=torch.float32, device=self.device)
        b = torch.full((m,), 2.0, dtype=torch.float32, device=self.device)
        add = torch.add
        return lambda: add(a, b)  # a fresh output, as eager runtimes allocate one per op

    def launch(self) -> Callable[[], Any]:
        torch = self.torch
        a = torch.ones(1, device=self.device)
        b = torch.ones(1, device=self.device)
        add = torch.add
        return lambda: add(a, b)
