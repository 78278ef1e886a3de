"""Users' own benchmark runs: read them into one shape, the requests and what each measured.

Four result formats are read, each as its tool writes it:

* ``vllm bench serve --save-result --save-detailed``: one JSON object with run metadata
  (``model_id``, ``date``, ``num_prompts``, ``request_rate``, ``max_concurrency``) and per-request
  lists ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (lists of s), ``start_times``
  (s, the client's clock), ``errors``. Without ``--save-detailed`` vLLM drops the lists.
* SGLang ``bench_serving --output-file F --output-details``: JSON lines, one run per line, with
  ``request_rate``, ``max_concurrency`` and the same per-request lists (no start times).
* genai-perf's ``profile_export.json`` (written by perf_analyzer): ``experiments[i]`` holds the
  load (``experiment.mode`` concurrency or request_rate, ``value``) and ``requests`` with
  ``timestamp`` and ``response_timestamps`` (ns). Token counts are not in it unless the server
  streamed ``usage`` (OpenAI ``stream_options.include_usage``), so that is required.
* LLMServingSim's bench recorder (``meta.json`` + ``requests.jsonl`` in one folder, vLLM
  ``RequestStateStats``): ``input_toks``, ``output_toks`` and the engine's ``queued_ts``,
  ``first_token_ts``, ``last_token_ts``.

Every request gets TTFT, TPOT (``(e2e - ttft) / (output - 1)``, hetsim's definition), mean ITL
and E2E in seconds, and an arrival: the client's send times where the file has them
(:attr:`Arrivals.TIMED`), the clients of a ``max_concurrency`` run (:attr:`Arrivals.CLOSED_LOOP`),
all at once for a rate-``inf`` run (:attr:`Arrivals.BURST`). A run at a finite rate without send
times is refused: its arrivals cannot be known, and a Poisson draw would not be those requests.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetsim.errors import InputError
from hetsim.metrics import LatencyStats, percentiles

__all__ = [
    "Arrivals",
    "BenchFormat",
    "BenchRun",
    "MEASURED_COLUMNS",
    "read_bench",
    "write_import",
]

#: the per-request columns of a run, in seconds where they are times
MEASURED_COLUMNS = (
    "request_id",
    "arrival_s",
    "input_tokens",
    "output_tokens",
    "ttft_s",
    "tpot_s",
    "itl_s",
    "e2e_s",
)


class BenchFormat(enum.Enum):
    VLLM = "vllm"
    SGLANG = "sglang"
    GENAI_PERF = "genai-perf"
    LLMSERVINGSIM = "llmservingsim"


class Arrivals(enum.Enum):
    TIMED = "timed"  # the file holds each request's send time
    CLOSED_LOOP = "closed-loop"  # N clients, each sends its next request when one ends
    BURST = "burst"  # request rate inf, no concurrency cap: all sent at t = 0


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run: its successful requests (``requests``, :data:`MEASURED_COLUMNS`),
    how they arrived, and what the file says about the run."""

    path: Path
    format: BenchFormat
    requests: pd.DataFrame
    arrivals: Arrivals
    concurrency: int | None = None
    request_rate: float | None = None
    model: str | None = None
    failed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Digest of the file(s) read, so a calibration can name the data it came from."""
        digest = hashlib.sha256()
        for p in _data_files(self.path, self.format):
            digest.update(p.read_bytes())
        return digest.hexdigest()

    def trace_frame(self) -> pd.DataFrame:
        """The requests as a Mooncake trace (ms timestamps), hetsim's ``trace:`` format."""
        r = self.requests
        arrival = r["arrival_s"].fillna(0.0)
        return pd.DataFrame(
            {
                "timestamp": np.round(arrival.to_numpy() * 1e3, 3),
                "input_length": r["input_tokens"].to_numpy(),
                "output_length": r["output_tokens"].to_numpy(),
            }
        )

    def latency_stats(self) -> dict[str, LatencyStats]:
        """Mean and percentiles of each measured latency (TTFT, TPOT, end to end), over the
        requests that define it."""
        return {col: percentiles(self.requests[col]) for col in ("ttft_s", "tpot_s", "e2e_s")}

    def write_trace(self, path: str | Path) -> None:
        """:meth:`trace_frame` as the JSON-lines file :meth:`workload` replays."""
        with Path(path).open("w") as f:
            for rec in self.trace_frame().to_dict(orient="records"):
                f.write(json.dumps(rec, default=_plain) + "\n")

    def workload(self, trace_path: str) -> dict[str, Any]:
        """The scenario ``workload:`` block that replays this run from ``trace_path``."""
        if self.arrivals is Arrivals.CLOSED_LOOP:
            # the k-th request issued gets the run's k-th lengths: the client sends in file order
            lengths = {
                "dist": "empirical",
                "trace": {"path": trace_path, "format": "mooncake"},
                "order": "trace",
            }
            return {
                "closed_loop": {
                    "concurrency": self.concurrency,
                    "requests": len(self.requests),
                    "input_tokens": lengths,
                    "output_tokens": lengths,
                }
            }
        return {"trace": {"path": trace_path, "format": "mooncake"}}


def read_bench(path: str | Path) -> BenchRun:
    """Read a benchmark result file (or an LLMServingSim run folder), its format guessed from
    its content; an unknown or malformed file is an :class:`InputError` naming the field."""
    path = Path(path)
    if path.is_dir() or path.name in ("requests.jsonl", "meta.json"):
        folder = path if path.is_dir() else path.parent
        if (folder / "requests.jsonl").is_file():
            return _read_llmservingsim(folder)
    if not path.is_file():
        raise InputError("benchmark result file not found", file=path)
    text = path.read_text(encoding="utf-8", errors="replace")
    docs = _json_docs(path, text)
    first = docs[0]
    if "experiments" in first:
        return _read_genai_perf(path, first)
    if "ttfts" not in first and ("mean_ttft_ms" in first or "median_ttft_ms" in first):
        flag = "--output-details" if "sharegpt_output_len" in first else "--save-detailed"
        raise InputError(
            "the file holds only summary statistics, not one row per request",
            file=path,
            field="ttfts",
            allowed=f"a result saved with {flag}",
        )
    if "ttfts" not in first:
        raise InputError(
            "not a benchmark result hetsim reads",
            file=path,
            field="ttfts",
            allowed="vllm bench serve --save-result --save-detailed JSON, SGLang bench_serving "
            "--output-details JSONL, genai-perf profile_export.json, LLMServingSim "
            "meta.json + requests.jsonl",
        )
    if len(docs) > 1:
        raise InputError(
            f"the file holds {len(docs)} runs (appended results); hetsim compares one at a time",
            file=path,
            allowed="one run per file: split the lines into files",
        )
    sglang = "sharegpt_output_len" in first or "random_range_ratio" in first
    return _read_client_lists(path, first, BenchFormat.SGLANG if sglang else BenchFormat.VLLM)


def _json_docs(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        docs = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not JSON ({exc.msg})", file=path, line=i, allowed="JSON or JSON lines"
                ) from None
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise InputError("a benchmark result is a JSON object", file=path, allowed="JSON object")
    return docs


def _data_files(path: Path, fmt: BenchFormat) -> list[Path]:
    if fmt is BenchFormat.LLMSERVINGSIM:
        return [path / "meta.json", path / "requests.jsonl"]
    return [path]


def _per_request(path: Path, doc: dict[str, Any], key: str, n: int | None) -> list[Any]:
    values = doc.get(key)
    if not isinstance(values, list):
        raise InputError("a per-request list is missing", file=path, field=key, allowed="a list")
    if n is not None and len(values) != n:
        raise InputError(
            f"{len(values)} entries, but input_lens has {n}",
            file=path,
            field=key,
            allowed=f"{n} entries, one per request",
        )
    return values


def _read_client_lists(path: Path, doc: dict[str, Any], fmt: BenchFormat) -> BenchRun:
    """vLLM and SGLang: parallel per-request lists, failed requests flagged in ``errors``."""
    inputs = _counts(path, "input_lens", _per_request(path, doc, "input_lens", None))
    n = len(inputs)
    outputs = _counts(path, "output_lens", _per_request(path, doc, "output_lens", n))
    ttfts = _per_request(path, doc, "ttfts", n)
    itls = _per_request(path, doc, "itls", n)
    # optional lists: absent (or null) is allowed, one of the wrong length or kind is not
    errors = _per_request(path, doc, "errors", n) if doc.get("errors") else [""] * n
    ok = np.array([not e for e in errors], dtype=bool)
    for i, g in enumerate(itls):
        if not isinstance(g, list):
            raise InputError(
                "not a list of gaps", file=path, field=f"itls[{i}]", value=g, allowed="a list"
            )
    gaps = [_numbers(path, f"itls[{i}]", g) for i, g in enumerate(itls)]
    ttft = np.array(_numbers(path, "ttfts", ttfts))
    e2e = ttft + np.array([sum(g) for g in gaps])
    if doc.get("latencies") is not None:
        e2e = np.array(_numbers(path, "latencies", _per_request(path, doc, "latencies", n)))
    arrival = None
    if doc.get("start_times") is not None:
        arrival = np.array(_numbers(path, "start_times", _per_request(path, doc, "start_times", n)))
    frame = _frame(inputs, outputs, ttft, e2e, [np.mean(g) if g else np.nan for g in gaps])
    rate = _rate(path, doc.get("request_rate"))
    concurrency = _concurrency(path, doc.get("max_concurrency"))
    return _run(path, fmt, frame, ok, arrival, concurrency, rate, doc.get("model_id"), doc)


def _counts(path: Path, where: str, values: list[Any]) -> list[int]:
    """Token counts: whole numbers >= 0 (a failed request may have produced none)."""
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(
                "not a token count",
                file=path,
                field=f"{where}[{i}]",
                value=v,
                allowed="integers >= 0",
            )
    return values


def _numbers(path: Path, where: str, values: list[Any]) -> list[float]:
    """Times: finite numbers >= 0 (JSON's strings and booleans are not numbers)."""
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
            raise InputError(
                "not a time", file=path, field=f"{where}[{i}]", value=v, allowed="numbers >= 0"
            )
    return [float(v) for v in values]


def _frame(
    inputs: list, outputs: list, ttft: np.ndarray, e2e: np.ndarray, itl: list
) -> pd.DataFrame:
    out_tokens = np.asarray(outputs, dtype=np.int64)
    gaps = np.where(out_tokens > 1, out_tokens - 1, np.nan)
    return pd.DataFrame(
        {
            "input_tokens": np.asarray(inputs, dtype=np.int64),
            "output_tokens": out_tokens,
            "ttft_s": ttft,
            "tpot_s": (e2e - ttft) / gaps,
            "itl_s": np.asarray(itl, dtype=float),
            "e2e_s": e2e,
        }
    )


def _rate(path: Path, value: Any) -> float | None:
    if value is None:
        return None
    if value in ("inf", float("inf")):
        return math.inf
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InputError(
            "not a rate", file=path, field="request_rate", value=value, allowed="req/s or 'inf'"
        ) from None
    if not rate > 0:
        raise InputError("not a rate", file=path, field="request_rate", value=value, allowed="> 0")
    return rate


def _concurrency(path: Path, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            "not a client count", file=path, field="max_concurrency", value=value, allowed=">= 1"
        )
    return value


def _run(
    path: Path,
    fmt: BenchFormat,
    frame: pd.DataFrame,
    ok: np.ndarray,
    arrival: np.ndarray | None,
    concurrency: int | None,
    rate: float | None,
    model: Any,
    meta: dict[str, Any],
) -> BenchRun:
    """Keep the successful requests, number them and give them arrivals."""
    if arrival is not None:
        arrivals = Arrivals.TIMED
        frame["arrival_s"] = arrival - arrival[ok].min() if ok.any() else arrival
    elif concurrency is not None:
        arrivals = Arrivals.CLOSED_LOOP
        frame["arrival_s"] = np.nan
    elif rate is None or math.isinf(rate):
        arrivals = Arrivals.BURST
        frame["arrival_s"] = 0.0
    else:
        raise InputError(
            f"a run at {rate:g} req/s without each request's send time: its arrivals are unknown",
            file=path,
            field="start_times",
            allowed="a result with start_times (vllm bench serve --save-detailed), or a "
            "--max-concurrency run",
        )
    kept = frame[ok].reset_index(drop=True)
    if kept.empty:
        raise InputError("no request succeeded", file=path, field="errors")
    _check_measured(path, kept)
    if arrivals is Arrivals.TIMED:
        kept = kept.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    kept.insert(0, "request_id", np.arange(len(kept), dtype=np.int64))
    small = {k: v for k, v in meta.items() if not isinstance(v, (list, dict))}
    return BenchRun(
        path=path,
        format=fmt,
        requests=kept[list(MEASURED_COLUMNS)],
        arrivals=arrivals,
        concurrency=concurrency,
        request_rate=rate,
        model=str(model) if model else None,
        failed=int((~ok).sum()),
        meta=small,
    )


#: what a successful request's measurements must be: (column, what it is, allowed)
_MEASURED_RULES = (
    ("input_tokens", "prompt tokens", "whole numbers >= 1 (a prompt has a token)"),
    ("output_tokens", "output tokens", "whole numbers >= 0"),
    ("ttft_s", "time to first token", "a finite time >= 0: the first token after the send"),
    ("e2e_s", "end-to-end latency", "a finite time, no shorter than the time to first token"),
    ("itl_s", "inter-token latency", "a time >= 0: tokens arrive in order"),
)


def _check_measured(path: Path, kept: pd.DataFrame) -> None:
    """A successful request's measurements are latencies: a prompt of at least one token, its
    first token no sooner than its send, its last no sooner than its first. A file that says
    otherwise (clocks mixed up, lists out of step) would be compared silently wrong."""
    good = {
        "input_tokens": kept["input_tokens"] >= 1,
        "output_tokens": kept["output_tokens"] >= 0,
        "ttft_s": np.isfinite(kept["ttft_s"]) & (kept["ttft_s"] >= 0),
        "e2e_s": np.isfinite(kept["e2e_s"]) & (kept["e2e_s"] >= kept["ttft_s"]),
        "itl_s": ~(kept["itl_s"] < 0),
    }
    for column, what, allowed in _MEASURED_RULES:
        bad = np.flatnonzero(~good[column].to_numpy())
        if bad.size:
            row = kept.iloc[int(bad[0])]
            more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
            raise InputError(
                f"a request ({int(row['input_tokens'])} prompt, {int(row['output_tokens'])} "
                f"output tokens) has an impossible {what}{more}",
                file=path,
                field=what,
                value=float(row[column]),
                allowed=allowed,
            )


def _read_genai_perf(path: Path, doc: dict[str, Any]) -> BenchRun:
    experiments = doc.get("experiments")
    if not isinstance(experiments, list) or len(experiments) != 1:
        raise InputError(
            "hetsim compares one load level at a time",
            file=path,
            field="experiments",
            value=len(experiments) if isinstance(experiments, list) else experiments,
            allowed="a profile export with one experiment",
        )
    experiment = experiments[0]
    if not isinstance(experiment, dict):
        raise InputError(
            "not an object", file=path, field="experiments[0]", allowed="a JSON object"
        )
    load = experiment.get("experiment") or {}
    if not isinstance(load, dict):
        raise InputError(
            "not an object", file=path, field="experiments[0].experiment", allowed="a JSON object"
        )
    mode, value = load.get("mode"), load.get("value")
    if mode not in ("concurrency", "request_rate"):
        raise InputError(
            "unknown load mode",
            file=path,
            field="experiments[0].experiment.mode",
            value=mode,
            allowed="concurrency, request_rate",
        )
    if mode == "concurrency" and value is None:
        raise InputError(
            "a concurrency run without its client count",
            file=path,
            field="experiments[0].experiment.value",
            allowed="the run's --concurrency",
        )
    requests = experiment.get("requests") or []
    if not isinstance(requests, list):
        raise InputError(
            "not a list", file=path, field="experiments[0].requests", allowed="a list of requests"
        )
    rows = [_genai_request(path, i, r) for i, r in enumerate(requests)]
    if not rows:
        raise InputError("no requests", file=path, field="experiments[0].requests")
    # a closed loop's replay gives its k-th request the k-th lengths: issue order is send order
    rows.sort(key=lambda row: row[0])
    sent, first, last, n_in, n_out, itl = (
        np.array(c, dtype=float) for c in zip(*rows, strict=True)
    )
    frame = _frame(
        list(n_in.astype(int)), list(n_out.astype(int)), first - sent, last - sent, list(itl)
    )
    ok = np.ones(len(frame), dtype=bool)
    concurrency = _concurrency(path, value) if mode == "concurrency" else None
    rate = _rate(path, value) if mode == "request_rate" else None
    # genai-perf's request_rate mode sends at those times; its concurrency mode is a closed loop
    arrival = sent if mode == "request_rate" else None
    return _run(path, BenchFormat.GENAI_PERF, frame, ok, arrival, concurrency, rate, None, load)


def _genai_request(path: Path, i: int, req: dict[str, Any]) -> tuple[float, ...]:
    """(sent, first token, last token, input tokens, output tokens, mean ITL), seconds."""
    where = f"experiments[0].requests[{i}]"
    if not isinstance(req, dict):
        raise InputError("not an object", file=path, field=where, allowed="a JSON object")
    stamps = req.get("response_timestamps")
    sent = req.get("timestamp")
    if isinstance(sent, bool) or not isinstance(sent, int | float) or not isinstance(stamps, list):
        raise InputError("needs timestamp and response_timestamps (ns)", file=path, field=where)
    if not stamps:
        raise InputError(
            "no response: a successful request has at least one response timestamp",
            file=path,
            field=f"{where}.response_timestamps",
            allowed="a non-empty list (ns)",
        )
    outputs = req.get("response_outputs") or []
    if not isinstance(outputs, list):
        raise InputError(
            "not a list", file=path, field=f"{where}.response_outputs", allowed="a list"
        )
    usage = _usage(outputs)
    if usage is None or not usage[1]:
        raise InputError(
            "no token counts: the stream carried no `usage` with prompt_tokens and "
            "completion_tokens (streamed chunks may carry several tokens each, so they are "
            "not counted instead)",
            file=path,
            field=f"{where}.response_outputs",
            allowed="a run with usage in the stream (genai-perf --extra-inputs "
            'stream_options:{"include_usage":true})',
        )
    content = [t for t, o in zip(stamps, outputs, strict=False) if _has_text(o)] or stamps
    t = np.array(_numbers(path, f"{where}.response_timestamps", content)) * 1e-9
    if np.any(np.diff(t) < 0):
        raise InputError(
            "responses out of order",
            file=path,
            field=f"{where}.response_timestamps",
            allowed="times in the order the responses came",
        )
    sent = float(sent) * 1e-9
    itl = float(np.diff(t).mean()) if len(t) > 1 else math.nan
    return sent, float(t[0]), float(t[-1]), usage[0], usage[1], itl


def _usage(outputs: list[Any]) -> tuple[int, int] | None:
    for o in reversed(outputs):
        body = _chunk(o)
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            completion = usage.get("completion_tokens")
            return usage["prompt_tokens"], completion if isinstance(completion, int) else 0
    return None


def _chunk(output: Any) -> Any:
    text = output.get("response") if isinstance(output, dict) else None
    if not isinstance(text, str):
        return None
    text = text.strip().removeprefix("data:").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _has_text(output: Any) -> bool:
    body = _chunk(output)
    if not isinstance(body, dict):
        return False
    choices = body.get("choices") or []
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        delta = delta if isinstance(delta, dict) else {}
        if choice.get("text") or delta.get("content"):
            return True
    return False


_LSS_FIELDS = ("input_toks", "output_toks", "queued_ts", "first_token_ts", "last_token_ts")


def _read_llmservingsim(folder: Path) -> BenchRun:
    """LLMServingSim's recorder. Its ``arrival_time`` is on the wall clock and the other stamps
    on the engine's monotonic clock, so arrivals and TTFT both start at ``queued_ts`` (the
    engine's arrival), as LLMServingSim's own validation does."""
    meta_path, req_path = folder / "meta.json", folder / "requests.jsonl"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg})", file=meta_path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text (is it a binary file?)", file=meta_path) from None
    if not isinstance(meta, dict):
        raise InputError("not a JSON object", file=meta_path, allowed="an object of run metadata")
    rows = _json_docs(req_path, req_path.read_text(encoding="utf-8", errors="replace"))
    cols: dict[str, list[float]] = {k: [] for k in _LSS_FIELDS}
    for i, row in enumerate(rows, 1):
        for k in _LSS_FIELDS:
            v = row.get(k)
            count = k.endswith("_toks")
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or (count and (v < 0 or v != int(v)))
            ):
                allowed = "a whole number >= 0" if count else "a finite number (s)"
                raise InputError(
                    "missing or not a number", file=req_path, line=i, field=k, value=v,
                    allowed=allowed,
                )  # fmt: skip
            cols[k].append(float(v))
    queued = np.array(cols["queued_ts"])
    first, last = np.array(cols["first_token_ts"]), np.array(cols["last_token_ts"])
    out = np.array(cols["output_toks"], dtype=np.int64)
    itl = np.where(out > 1, (last - first) / np.maximum(out - 1, 1), np.nan)
    inputs = [int(v) for v in cols["input_toks"]]
    frame = _frame(inputs, list(out), first - queued, last - queued, list(itl))
    ok = np.ones(len(frame), dtype=bool)
    kwargs = meta.get("engine_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise InputError(
            "not an object", file=meta_path, field="engine_kwargs", allowed="a JSON object"
        )
    small = {k: v for k, v in meta.items() if k in ("vllm_version", "dataset_path", "started_at")}
    small.update({k: v for k, v in kwargs.items() if not isinstance(v, (list, dict))})
    return _run(
        folder, BenchFormat.LLMSERVINGSIM, frame, ok, queued, None, None, meta.get("model"), small
    )


def write_import(run: BenchRun, out: str | Path) -> list[Path]:
    """``trace.jsonl`` (Mooncake format), ``measured.csv`` (one row per request) and
    ``run.json`` (format, arrivals, load, model, the workload block that replays it)."""
    from hetsim.outputs import staged

    with staged(out) as stage:
        trace = stage.dir / "trace.jsonl"
        run.write_trace(trace)
        measured = stage.dir / "measured.csv"
        run.requests.to_csv(measured, index=False)
        info = stage.dir / "run.json"
        info.write_text(json.dumps(describe(run), indent=2) + "\n")
    return stage.final([trace, measured, info])


def describe(run: BenchRun) -> dict[str, Any]:
    """What a run is, as JSON: where it came from and how to replay it."""
    return {
        "source": str(run.path),
        "sha256": run.sha256,
        "format": run.format.value,
        "arrivals": run.arrivals.value,
        "concurrency": run.concurrency,
        "request_rate": None if run.request_rate is None else str(run.request_rate),
        "model": run.model,
        "requests": len(run.requests),
        "failed": run.failed,
        "workload": run.workload("trace.jsonl"),
        "meta": run.meta,
    }


def _plain(v: Any) -> Any:
    """A numpy scalar as JSON takes it (pandas may hand them out of ``to_dict``)."""
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")
