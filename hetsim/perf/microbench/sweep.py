"""The calibration sweep: which shapes to time, in what order, within what time.

For every (op, dtype) the *fit* rows form a cartesian grid over the op's varying shape axes (what
:class:`~hetsim.perf.calibration.EfficiencySurface` interpolates on), and a few *holdout* rows sit
off that grid, strictly between its values on every varying axis, so that a later validation can
ask the fitted surface about shapes it never saw.

Grids come in tiers, largest first, per device kind. Before the sweep, each (op, dtype) is probed
once at a mid-size shape; from the achieved rate (and the copy bandwidth) the sweep predicts what
each tier would cost and takes the largest tier that fits the (op, dtype)'s time budget and the
free memory. A format that the device only emulates (say bf16 on a CPU without bf16 instructions)
therefore still gets measured, on a smaller grid. ``quick=True`` takes one fixed, tiny grid and
no probes (seconds; for tests).

On a CPU the default sweep goes over all cases twice, each pass in a fresh shuffled order, and
keeps each case's faster pass: a (virtual) CPU drifts by ±20% over seconds, and shuffling turns
that drift into scatter instead of a slow row of one grid. A measurement during which other
processes used a fifth of the CPUs or more is taken again (up to twice); the cases that stayed
contended are listed in the metadata (``contended``), as are the formats and shapes that could
not run (``skipped``, ``failed``), the grids taken (``grids``) and the probes (``planning``).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetsim.errors import InputError
from hetsim.perf.calibration import (
    CONTENDED_LIMIT,
    TABLE_COLUMNS,
    CalibrationTable,
    kernel_flops_bytes,
)
from hetsim.perf.microbench.backends import (
    Kernels,
    NumpyKernels,
    TorchKernels,
    last_level_cache_bytes,
)
from hetsim.perf.microbench.timing import (
    DEFAULT_POLICY,
    QUICK_POLICY,
    OtherLoad,
    Timing,
    TimingPolicy,
    time_kernel,
)

__all__ = [
    "run_calibration",
    "available_backends",
    "available_devices",
    "open_backend",
    "holdout_shapes",
    "Case",
]

MiB = 1 << 20
GiB = 1 << 30

Grid = dict[str, tuple[int, ...]]
Progress = Callable[[int, int, str], None]

# ---- the grids ----------------------------------------------------------------------------------

_M_DECODE_TO_PREFILL = (1, 4, 16, 64, 256, 1024, 4096)

#: largest first; the sweep takes the first tier that fits the budget (and memory). On a CPU the
#: GEMM grid tops out at m = n = k = 4096 (0.14 TFLOP, about a second on two cores): a corner
#: of m = 16384 with n = k = 8192 (2.2 TFLOP) would take the whole budget by itself.
CPU_TIERS: dict[str, list[Grid]] = {
    "gemm": [
        {"m": _M_DECODE_TO_PREFILL, "n": (256, 1024, 4096), "k": (256, 1024, 4096)},
        {"m": _M_DECODE_TO_PREFILL[:-1], "n": (256, 1024, 4096), "k": (256, 1024, 4096)},
        {"m": (1, 16, 256), "n": (256, 1024), "k": (256, 1024)},
    ],
    "attention_prefill": [
        {
            "batch": (1,),
            "seq_len": (128, 256, 512, 1024, 2048, 4096),
            "heads": (4, 8, 16),
            "head_dim": (64,),
        },
        {
            "batch": (1,),
            "seq_len": (128, 256, 512, 1024, 2048),
            "heads": (4, 8, 16),
            "head_dim": (64,),
        },
        {"batch": (1,), "seq_len": (128, 512), "heads": (4, 8), "head_dim": (64,)},
    ],
    "attention_decode": [
        {
            "batch": (1, 4, 16, 64),
            "context": (128, 512, 2048, 8192),
            "heads": (16,),
            "kv_heads": (4,),
            "head_dim": (64,),
        },
        {
            "batch": (1, 4, 16),
            "context": (128, 512, 2048),
            "heads": (16,),
            "kv_heads": (4,),
            "head_dim": (64,),
        },
        {
            "batch": (1, 4),
            "context": (128, 512),
            "heads": (16,),
            "kv_heads": (4,),
            "head_dim": (64,),
        },
    ],
    "memcpy": [{"bytes": (64 * MiB, 128 * MiB, 256 * MiB, 512 * MiB, 1 * GiB)}],
}

CUDA_TIERS: dict[str, list[Grid]] = {
    "gemm": [
        {"m": (*_M_DECODE_TO_PREFILL, 16384), "n": (1024, 4096, 16384), "k": (1024, 4096, 16384)},
        {"m": (*_M_DECODE_TO_PREFILL, 16384), "n": (512, 2048, 8192), "k": (512, 2048, 8192)},
        {"m": _M_DECODE_TO_PREFILL, "n": (512, 2048, 8192), "k": (512, 2048, 8192)},
        CPU_TIERS["gemm"][0],
    ],
    "attention_prefill": [
        {
            "batch": (1,),
            "seq_len": (512, 1024, 2048, 4096, 8192, 16384, 32768),
            "heads": (8, 16, 32, 64),
            "head_dim": (128,),
        },
        {
            "batch": (1,),
            "seq_len": (512, 1024, 2048, 4096, 8192),
            "heads": (8, 16, 32),
            "head_dim": (128,),
        },
        {"batch": (1,), "seq_len": (512, 2048), "heads": (8, 32), "head_dim": (128,)},
    ],
    "attention_decode": [
        {
            "batch": (1, 4, 16, 64, 256),
            "context": (512, 2048, 8192, 32768),
            "heads": (32,),
            "kv_heads": (8,),
            "head_dim": (128,),
        },
        {
            "batch": (1, 4, 16, 64),
            "context": (512, 2048, 8192, 32768),
            "heads": (32,),
            "kv_heads": (8,),
            "head_dim": (128,),
        },
        {
            "batch": (1, 4, 16, 64),
            "context": (512, 2048, 8192),
            "heads": (32,),
            "kv_heads": (8,),
            "head_dim": (128,),
        },
        {
            "batch": (1, 16),
            "context": (512, 4096),
            "heads": (32,),
            "kv_heads": (8,),
            "head_dim": (128,),
        },
    ],
    "memcpy": [{"bytes": (64 * MiB, 256 * MiB, 1 * GiB, 4 * GiB)}],
}

QUICK_GRIDS: dict[str, Grid] = {
    "gemm": {"m": (1, 16, 256), "n": (256, 1024), "k": (256, 1024)},
    "attention_prefill": {"batch": (1,), "seq_len": (64, 256), "heads": (2, 4), "head_dim": (64,)},
    "attention_decode": {
        "batch": (1, 4),
        "context": (128, 512),
        "heads": (16,),
        "kv_heads": (4,),
        "head_dim": (64,),
    },
    "memcpy": {"bytes": (64 * MiB, 128 * MiB)},
}

#: seconds the default sweep may spend on one (op, dtype), per device kind
BUDGET_S = {
    "cpu": {"gemm": 45.0, "attention_prefill": 30.0, "attention_decode": 12.0},
    "cuda": {"gemm": 30.0, "attention_prefill": 15.0, "attention_decode": 10.0},
}

#: the mid-size shape each (op, dtype) is probed at, to predict what a tier costs
PROBES = {
    "cpu": {
        "gemm": {"m": 1024, "n": 1024, "k": 1024},
        "attention_prefill": {"batch": 1, "seq_len": 1024, "heads": 8, "head_dim": 64},
        "attention_decode": {
            "batch": 16,
            "context": 2048,
            "heads": 16,
            "kv_heads": 4,
            "head_dim": 64,
        },
    },
    "cuda": {
        "gemm": {"m": 4096, "n": 4096, "k": 4096},
        "attention_prefill": {"batch": 1, "seq_len": 4096, "heads": 32, "head_dim": 128},
        "attention_decode": {
            "batch": 16,
            "context": 8192,
            "heads": 32,
            "kv_heads": 8,
            "head_dim": 128,
        },
    },
}

#: held-out shapes per (op, dtype)
HOLDOUTS = {
    "gemm": 12,
    "attention_prefill": 8,
    "attention_decode": 8,
    "memcpy": 3,
    "elementwise": 3,
}
QUICK_HOLDOUTS = {
    "gemm": 4,
    "attention_prefill": 2,
    "attention_decode": 2,
    "memcpy": 1,
    "elementwise": 1,
}

#: elementwise ops (norms, activations, residual adds) from decode-sized to prefill-sized
ELEMENTWISE_GRID: Grid = {"m": (1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)}
QUICK_ELEMENTWISE_GRID: Grid = {"m": (4096, 1048576)}

#: held-out values are rounded to multiples of this, per axis
_GRANULARITY = {"n": 64, "k": 64, "seq_len": 64, "context": 64, "bytes": 16 * MiB}

#: passes over all cases of the default sweep, per device kind (each case keeps its fastest
#: pass): a CPU, above all a virtual one, drifts by ±20% over seconds; a GPU does not
PASSES = {"cpu": 2, "cuda": 1}
#: a measurement during which other processes used this share of the CPUs is taken again ...
BUSY_SHARE = 0.2
#: ... at most this many more times (the fastest attempt is kept), and for no more than this
#: many seconds in all (when the machine stays busy, retrying only lengthens the sweep)
RETRIES = 2
RETRY_BUDGET_S = 20.0
#: the key under which a measured row carries the others' CPU share while it was timed
_OTHERS = "_others_cpu_share"

_OPS = ("gemm", "attention_prefill", "attention_decode")
BACKENDS = ("numpy", "torch")


# ---- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kernel shape to time."""

    op: str
    dtype: str
    shape: tuple[tuple[str, int], ...]
    split: str = "fit"

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    @property
    def label(self) -> str:
        dims = self.dims
        if self.op == "memcpy":
            text = f"{dims['bytes'] / MiB:g} MiB"
        else:
            text = " ".join(f"{k}={v}" for k, v in self.shape)
        return f"{self.op} {self.dtype} {text}".strip() + (
            " (holdout)" if self.split != "fit" else ""
        )

    def flops_bytes(self) -> tuple[float, float]:
        dims = self.dims
        if self.op == "launch":
            return 0.0, 0.0
        if self.op == "memcpy":
            return kernel_flops_bytes("memcpy", "bytes", bytes=dims["bytes"])
        return kernel_flops_bytes(self.op, self.dtype, **dims)


def _shape(op: str, dims: dict[str, int]) -> tuple[tuple[str, int], ...]:
    dims = dict(dims)
    if op == "attention_prefill":
        dims.setdefault("kv_heads", dims["heads"])  # prefill attention is timed as MHA
    return tuple((k, int(v)) for k, v in dims.items())


def grid_cases(op: str, dtype: str, grid: Grid, holdouts: int, seed: int = 0) -> list[Case]:
    """The cartesian fit grid of one (op, dtype), then its held-out shapes."""
    axes = list(grid)
    fit = [
        Case(op, dtype, _shape(op, dict(zip(axes, values, strict=True))), "fit")
        for values in itertools.product(*(grid[a] for a in axes))
    ]
    held = [
        Case(op, dtype, _shape(op, dims), "holdout")
        for dims in holdout_shapes(grid, holdouts, seed)
    ]
    return fit + held


def _off_grid(values: tuple[int, ...], granularity: int) -> list[int]:
    """Values strictly between neighbouring grid values: the geometric midpoint and 3/4 of the
    upper neighbour, rounded to the axis granularity."""
    ordered = sorted(set(values))
    found: set[int] = set()
    for lo, hi in itertools.pairwise(ordered):
        for x in (math.sqrt(lo * hi), 0.75 * hi):
            r = max(granularity, round(x / granularity) * granularity)
            if lo < r < hi:
                found.add(int(r))
    return sorted(found)


def holdout_shapes(grid: Grid, count: int, seed: int = 0) -> list[dict[str, int]]:
    """Up to ``count`` shapes off the grid on every axis that varies in it (fixed axes keep their
    one value), chosen by a seeded draw among all such combinations."""
    varying = [a for a, v in grid.items() if len(v) > 1]
    if not varying or count <= 0:
        return []
    options = {
        a: (_off_grid(v, _GRANULARITY.get(a, 1)) if a in varying else list(v))
        for a, v in grid.items()
    }
    if any(not o for o in options.values()):
        return []
    combos = list(itertools.product(*options.values()))
    pick = np.random.default_rng(seed).permutation(len(combos))[:count]
    return [dict(zip(options, combos[i], strict=True)) for i in sorted(pick)]


# ---- backends ---------------------------------------------------------------------------------


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Backends that can run here: ``numpy`` always, ``torch`` when PyTorch imports."""
    return ["numpy", "torch"] if _torch_importable() else ["numpy"]


def available_devices(backend: str = "torch") -> list[str]:
    """Devices a backend can run on here: ``cpu``, and ``cuda`` for torch with a CUDA GPU."""
    if backend != "torch" or not _torch_importable():
        return ["cpu"]
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _cpu_rotation_bytes(quick: bool) -> int:
    return max(64 * MiB, (2 if quick else 4) * last_level_cache_bytes())


def open_backend(backend: str, device: str = "cpu", quick: bool = False) -> Kernels:
    """The kernels of ``backend`` on ``device``; a clear :class:`InputError` when impossible."""
    backend = str(backend).strip().lower()
    device = str(device).strip().lower()
    if backend not in BACKENDS:
        raise InputError(
            "unknown calibration backend",
            field="--backend",
            value=backend,
            allowed=", ".join(BACKENDS),
        )
    kind = device.split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise InputError(
            "unknown calibration device", field="--device", value=device, allowed="cpu, cuda"
        )
    if backend == "numpy":
        if kind != "cpu":
            raise InputError(
                "the numpy backend runs on the CPU only; use --backend torch for a GPU",
                field="--device",
                value=device,
                allowed="cpu",
            )
        return NumpyKernels(_cpu_rotation_bytes(quick))
    if not _torch_importable():
        raise InputError(
            "the torch backend needs PyTorch, which is not installed here "
            "(pip install -e '.[torch]')",
            field="--backend",
            value=backend,
            allowed=", ".join(available_backends()),
        )
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "CUDA is not available to PyTorch on this machine",
                field="--device",
                value=device,
                allowed="cpu",
            )
        if ":" in device:
            index = device.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise InputError(
                    "no such CUDA device",
                    field="--device",
                    value=device,
                    allowed=", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count())),
                )
        return TorchKernels(device)
    return TorchKernels("cpu", _cpu_rotation_bytes(quick))


def _free_memory_bytes(kernels: Kernels) -> float:
    if kernels.device_kind == "cuda":
        import torch

        return float(torch.cuda.mem_get_info()[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8.0 * GiB


# ---- the sweep --------------------------------------------------------------------------------


@dataclass
class _Plan:
    cases: list[Case] = field(default_factory=list)
    grids: dict[str, Grid] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class _Sweep:
    def __init__(self, kernels: Kernels, quick: bool, progress: Progress | None) -> None:
        self.k = kernels
        self.quick = quick
        self.policy: TimingPolicy = QUICK_POLICY if quick else DEFAULT_POLICY
        self.passes = 1 if quick else PASSES[kernels.device_kind]
        self.report = progress or (lambda done, total, label: None)
        self.kind = kernels.device_kind
        self.failed: list[str] = []
        self.contended: list[dict[str, Any]] = []
        self.load = OtherLoad()
        self.retry_left_s = 2.0 if quick else RETRY_BUDGET_S

    # -- measuring ----------------------------------------------------------------------------

    def measure(self, case: Case, policy: TimingPolicy | None = None) -> dict[str, Any] | None:
        """Time one case; on a busy machine, again (keeping the fastest), up to ``RETRIES``."""
        policy = policy or self.policy
        best: tuple[float, Timing] | None = None
        fn: Callable[[], Any] | None = None
        try:
            fn = self.k.make(case.op, case.dtype, case.dims)
            for attempt in range(1 + RETRIES):
                if attempt and self.retry_left_s <= 0:
                    break  # the machine stays busy: retrying would only make the sweep longer
                started = time.perf_counter()
                self.load.start()
                if case.op == "launch":
                    timing = time_kernel(fn, policy, self.k.launch_timer, self.k.launch_inner)
                else:
                    timing = time_kernel(fn, policy, self.k.timer)
                others = self.load.stop()
                if attempt:
                    self.retry_left_s -= time.perf_counter() - started
                if best is None or timing.median_s < best[1].median_s:
                    best = (others, timing)
                if others < BUSY_SHARE:
                    break
        except (RuntimeError, MemoryError, ValueError, TypeError, NotImplementedError) as exc:
            self.failed.append(f"{case.label}: {type(exc).__name__}: {str(exc)[:200]}")
            return None
        finally:
            fn = None  # free the shape's buffers before the next one
        assert best is not None
        others, timing = best
        if others >= BUSY_SHARE:
            self.contended.append({"case": case.label, "others_cpu_share": round(others, 2)})
        flops, nbytes = case.flops_bytes()
        row: dict[str, Any] = dict.fromkeys(TABLE_COLUMNS, np.nan)
        for axis, value in case.shape:
            if axis != "bytes":
                row[axis] = value
        row.update(
            op=case.op,
            dtype=case.dtype,
            bytes=nbytes,
            flops=flops,
            time_s=timing.median_s,
            time_std_s=timing.std_s,
            repeats=timing.repeats,
            split=case.split,
        )
        row[_OTHERS] = others  # not a table column: meta's contended_share counts it
        return row

    def _works(self, case: Case) -> str | None:
        """None when one call of ``case`` runs, else why not."""
        try:
            fn = self.k.make(case.op, case.dtype, case.dims)
            self.k.timer(fn, 1)
        except Exception as exc:  # noqa: BLE001 - any failure means: not available here
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None

    # -- planning -----------------------------------------------------------------------------

    def _tiers(self, op: str) -> list[Grid]:
        if self.quick:
            return [QUICK_GRIDS[op]]
        return (CUDA_TIERS if self.kind == "cuda" else CPU_TIERS)[op]

    def _predict(self, op: str, dtype: str, grid: Grid, rate: float, bw: float) -> float:
        """Seconds to time every fit and holdout case of ``grid`` at ``rate`` flop/s."""
        p = self.policy
        total = 0.0
        for case in grid_cases(op, dtype, grid, HOLDOUTS.get(op, 0)):
            flops, nbytes = case.flops_bytes()
            t = max(flops / rate if rate > 0 else 0.0, nbytes / bw)
            total += max(t * p.warmup_calls, p.warmup_s)
            total += max(t * p.min_repeats, min(p.min_time_s, t * p.max_repeats))
            total += 0.005 + nbytes / 20e9  # setup: views, outputs, the odd big allocation
        total *= self.passes
        return total

    def _fits_memory(self, op: str, dtype: str, grid: Grid, free: float) -> bool:
        biggest = max(case.flops_bytes()[1] for case in grid_cases(op, dtype, grid, 0))
        return 1.5 * biggest < 0.4 * free

    def plan(self) -> _Plan:
        plan = _Plan()
        k = self.k
        holdouts = QUICK_HOLDOUTS if self.quick else HOLDOUTS
        steps = 1 + len(k.gemm_dtypes) + 2 * len(k.attention_dtypes)
        step = 0

        def tick(label: str) -> None:
            nonlocal step
            step += 1
            self.report(min(step, steps), steps, label)

        free = _free_memory_bytes(k)
        # per-op dispatch overhead and copy bandwidth: fixed grids, measured first
        plan.cases.append(Case("launch", "fp32", (), "fit"))
        mem_grid = next(
            (g for g in self._tiers("memcpy") if self._fits_memory("memcpy", "bytes", g, free)),
            QUICK_GRIDS["memcpy"],
        )
        plan.grids["memcpy/bytes"] = mem_grid
        plan.cases += grid_cases("memcpy", "bytes", mem_grid, holdouts["memcpy"])
        ew_grid = QUICK_ELEMENTWISE_GRID if self.quick else ELEMENTWISE_GRID
        plan.grids["elementwise/fp32"] = ew_grid
        plan.cases += grid_cases("elementwise", "fp32", ew_grid, holdouts["elementwise"])
        bw = 1e9
        if not self.quick:
            tick("probing copy bandwidth")
            probe = self.measure(
                Case("memcpy", "bytes", _shape("memcpy", {"bytes": mem_grid["bytes"][0]})),
                QUICK_POLICY,
            )
            if probe:
                bw = probe["bytes"] / probe["time_s"]
            plan.notes["probe_copy_bandwidth"] = bw

        gemm_ok: list[str] = []
        for op in _OPS:
            dtypes = k.gemm_dtypes if op == "gemm" else k.attention_dtypes
            for dtype in dtypes:
                key = f"{op}/{dtype}"
                if op != "gemm" and dtype not in gemm_ok:
                    plan.skipped[key] = f"no {dtype} GEMM here, so no {dtype} peak to relate it to"
                    continue
                tiers = self._tiers(op)
                smallest = tiers[-1]
                # the smallest tier's largest shape: some kernels reject the tiniest (m <= 16)
                corner = {a: v[-1] for a, v in smallest.items()}
                why = self._works(Case(op, dtype, _shape(op, corner)))
                if why is not None:
                    plan.skipped[key] = why
                    continue
                grid = tiers[-1]
                if not self.quick:
                    tick(f"probing {op} {dtype}")
                    probe_case = Case(op, dtype, _shape(op, PROBES[self.kind][op]))
                    probe = self.measure(probe_case, QUICK_POLICY)
                    if probe is None:
                        plan.skipped[key] = self.failed.pop()
                        continue
                    rate = probe["flops"] / probe["time_s"]
                    budget = BUDGET_S[self.kind][op]
                    predicted: list[float] = []
                    for tier in tiers:
                        cost = self._predict(op, dtype, tier, rate, bw)
                        predicted.append(round(cost, 1))
                        if cost <= budget and self._fits_memory(op, dtype, tier, free):
                            grid = tier
                            break
                    plan.notes[key] = {
                        "probe_flops_per_s": rate,
                        "budget_s": budget,
                        "predicted_s_by_tier": predicted,  # largest tier first, up to the one taken
                    }
                if op == "gemm":
                    grid = self._working_m(dtype, grid, plan, key)
                    gemm_ok.append(dtype)
                plan.grids[key] = grid
                plan.cases += grid_cases(op, dtype, grid, holdouts[op])
        return plan

    def _working_m(self, dtype: str, grid: Grid, plan: _Plan, key: str) -> Grid:
        """Drop the m values a format's kernel rejects (some int8/fp8 GEMMs need m > 16)."""
        n, kk = min(grid["n"]), min(grid["k"])
        good = []
        for m in grid["m"]:
            why = self._works(Case("gemm", dtype, _shape("gemm", {"m": m, "n": n, "k": kk})))
            if why is None:
                good.append(m)
            else:
                plan.notes.setdefault(key, {})[f"m={m}"] = f"rejected: {why}"
        return {**grid, "m": tuple(good)} if good else grid

    # -- running ------------------------------------------------------------------------------

    def run(self) -> CalibrationTable:
        started = time.perf_counter()
        plan = self.plan()
        planning_s = time.perf_counter() - started
        best: dict[Case, dict[str, Any]] = {}
        broken: set[Case] = set()
        total = len(plan.cases) * self.passes
        done = 0
        self.report(0, total, "measuring")
        for p in range(self.passes):
            # a fresh order every pass: a slow spell of the machine hits scattered shapes,
            # not a whole row of one grid, and a second pass gets another chance at each
            order = list(plan.cases)
            np.random.default_rng(p).shuffle(order)  # type: ignore[arg-type]
            for case in order:
                done += 1
                if case not in broken:
                    row = self.measure(case)
                    if row is None:
                        broken.add(case)
                    elif case not in best or row["time_s"] < best[case]["time_s"]:
                        best[case] = row
                self.report(done, total, case.label)
        rows = [best[c] for c in plan.cases if c in best]
        frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        frame["repeats"] = frame["repeats"].astype(int)
        meta = self.meta(frame, plan, planning_s, time.perf_counter() - started)
        meta.update(contention_meta([r[_OTHERS] for r in rows], self.kind))
        return CalibrationTable(rows=frame, meta=meta)

    def meta(
        self, frame: pd.DataFrame, plan: _Plan, planning_s: float, wall_s: float
    ) -> dict[str, Any]:
        from hetsim._version import __version__

        k = self.k
        gemm = frame[frame["op"] == "gemm"]
        flops = {
            str(dtype): float((g["flops"] / g["time_s"]).max())
            for dtype, g in gemm.groupby("dtype")
        }
        copies = frame[frame["op"] == "memcpy"]
        bandwidth = (
            float((copies["bytes"] / copies["time_s"]).max()) if len(copies) else float("nan")
        )
        torch_version = None
        if k.name == "torch" or _torch_loaded():
            import torch

            torch_version = torch.__version__
        meta: dict[str, Any] = {
            "device": k.device_name,
            "device_kind": k.device_kind,
            "backend": k.name,
            "backend_version": k.version,
            "numpy_version": np.__version__,
            "torch_version": torch_version,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "hostname": platform.node(),
            "threads": k.threads,
            "hetsim_version": __version__,
            "sweep": "quick" if self.quick else "default",
            "peak": {
                "flops": flops,
                "memory_bandwidth": bandwidth,
                "source": "measured: best achieved in this sweep",
            },
            "timing": {
                **self.policy.as_dict(),
                "statistic": "median over repeats (the lowest median over passes)",
                "passes": self.passes,
                "clock": "CUDA events" if k.device_kind == "cuda" else "time.perf_counter",
                "launch_calls_per_repeat": k.launch_inner,
            },
            "device_info": k.extra,
            "rotation_bytes": k.rotation_bytes,
            "grids": {key: {a: list(v) for a, v in g.items()} for key, g in plan.grids.items()},
            "planning": plan.notes,
            "skipped": plan.skipped,
            "failed": self.failed,
            # every measurement (probes and passes included) still busy after its retries
            "contended_cases": self.contended,
            "wall_s": round(wall_s, 2),
            "planning_s": round(planning_s, 2),
        }
        if k.name == "torch":
            meta.update(_torch_ops_per_layer())
        return meta


def contention_meta(others: list[float], device_kind: str = "cpu") -> dict[str, Any]:
    """How contended the kept timings are: ``others`` holds, per row of the table, the share of
    the CPUs other processes used while that row was timed (the fastest of its attempts and
    passes). ``contended``: more than ``CONTENDED_LIMIT`` of the rows were timed while others
    used ``BUSY_SHARE`` or more — then the table measures the neighbours as much as the device.
    CUDA events time the GPU's own execution, which other processes' CPU use does not enter:
    a CUDA table records the share but is never marked contended by it."""
    busy = [x for x in others if x >= BUSY_SHARE]
    share = len(busy) / len(others) if others else 0.0
    return {
        "contended": device_kind == "cpu" and share > CONTENDED_LIMIT,
        "contended_share": round(share, 3),
        "contention": {
            "rows_timed_busy": len(busy),
            "rows": len(others),
            "busy_when_others_used": BUSY_SHARE,
            "contended_above_share": CONTENDED_LIMIT,
            "others_cpu_share_median": round(float(np.median(others)), 3) if others else 0.0,
            "measure": "other processes' share of all CPUs over each timing, from /proc/stat "
            "less this process's own CPU time (0 where /proc cannot be read)",
        },
    }


def _torch_loaded() -> bool:
    import sys

    return "torch" in sys.modules


def _torch_ops_per_layer() -> dict[str, Any]:
    """Dispatched ops per decoder layer of the reference model in eager PyTorch (decode step)."""
    try:
        from hetsim.perf.microbench.reference_model import ops_per_layer

        counted = ops_per_layer("decode")
    except Exception as exc:  # noqa: BLE001 - optional extra; the table is valid without it
        return {"ops_per_layer_note": f"not counted: {type(exc).__name__}: {exc}"}
    return {
        "ops_per_layer": counted["total"],
        "ops_per_layer_note": (
            "aten ops dispatched by one decoder layer of hetsim's reference transformer in eager "
            "PyTorch during one decode step (counted with a TorchDispatchMode)"
        ),
    }


def run_calibration(
    backend: str = "numpy",
    device: str = "cpu",
    quick: bool = False,
    progress: Progress | None = None,
) -> CalibrationTable:
    """Time the microkernels of ``backend`` on ``device`` and return the calibration table.

    ``progress(done, total, label)`` is called as the sweep advances (``total`` grows once, when
    the probing that sizes the grids is over). Raises :class:`InputError` for an unknown backend
    or device, for ``torch`` without PyTorch installed, and for ``cuda`` without a CUDA GPU.
    """
    kernels = open_backend(backend, device, quick)
    try:
        return _Sweep(kernels, quick, progress).run()
    finally:
        kernels.close()
