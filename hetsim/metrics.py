"""From request rows to the figures people compare: percentiles, attainment, throughput, cost.

Definitions (those of DistServe, vLLM and SGLang benchmarks):

* TTFT = first output token − arrival; TPOT = (finish − first token) / (output tokens − 1), for
  requests with more than one output token; E2E = finish − arrival.
* attainment = share of *all* requests (failed ones count as misses) that completed with TTFT and
  TPOT within the SLA bounds (a one-token answer has no TPOT and meets that bound trivially).
* throughput = output tokens of completed requests per second, from the first arrival to the
  last finish; cost per million tokens = cost per hour × that span / (output tokens / 10⁶).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hetsim.spec.scenario import SLASpec

__all__ = ["add_latency_columns", "percentiles", "attainment", "meets_sla", "summarise"]

PERCENTILES = (50, 90, 99)


def add_latency_columns(requests: pd.DataFrame) -> pd.DataFrame:
    """ttft_s, tpot_s and e2e_s from the timestamps (NaN where undefined)."""
    r = requests
    r["ttft_s"] = r["first_token_s"] - r["arrival_s"]
    gaps = (r["output_tokens"] - 1).where(r["output_tokens"] > 1)
    r["tpot_s"] = (r["finish_s"] - r["first_token_s"]) / gaps
    r["e2e_s"] = r["finish_s"] - r["arrival_s"]
    return r


def percentiles(values: pd.Series) -> dict[str, float | None]:
    v = values.dropna().to_numpy()
    if v.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    out: dict[str, float | None] = {"mean": float(v.mean())}
    for p, q in zip(PERCENTILES, np.percentile(v, PERCENTILES), strict=True):
        out[f"p{p}"] = float(q)
    return out


def meets_sla(requests: pd.DataFrame, sla: SLASpec) -> pd.Series:
    ok_ttft = requests["ttft_s"] <= sla.ttft
    ok_tpot = requests["tpot_s"].isna() | (requests["tpot_s"] <= sla.tpot)
    return (requests["status"] == "completed") & ok_ttft & ok_tpot


def attainment(requests: pd.DataFrame, sla: SLASpec) -> float:
    if len(requests) == 0:
        return math.nan
    return float(meets_sla(requests, sla).mean())


def summarise(
    requests: pd.DataFrame, sla: SLASpec, cost_per_hour: float, facts: dict[str, Any]
) -> dict[str, Any]:
    """The summary.json of a run."""
    done = requests[requests["status"] == "completed"]
    failed = requests[requests["status"] == "failed"]
    first = float(requests["arrival_s"].min()) if len(requests) else 0.0
    last = float(done["finish_s"].max()) if len(done) else first
    span = max(last - first, 1e-12)
    out_tokens = float(done["output_tokens"].sum())
    att = attainment(requests, sla)
    reasons = failed["failure_reason"].value_counts().to_dict() if len(failed) else {}
    return {
        "requests": int(len(requests)),
        "completed": int(len(done)),
        "failed": int(len(failed)),
        "failure_reasons": {str(k): int(v) for k, v in reasons.items()},
        "ttft_s": percentiles(done["ttft_s"]),
        "tpot_s": percentiles(done["tpot_s"]),
        "e2e_s": percentiles(done["e2e_s"]),
        "sla": {
            "ttft_s": sla.ttft,
            "tpot_s": sla.tpot,
            "percentile": sla.percentile,
            "attainment_target": sla.attainment,
        },
        "ttft_at_sla_percentile_s": _pct(done["ttft_s"], sla.percentile),
        "tpot_at_sla_percentile_s": _pct(done["tpot_s"], sla.percentile),
        "attainment": att,
        "sla_met": bool(att >= sla.attainment) if not math.isnan(att) else False,
        "span_s": span,
        "request_rate": len(requests) / span if len(requests) > 1 else math.nan,
        "throughput_tokens_per_s": out_tokens / span,
        "input_tokens_per_s": float(done["input_tokens"].sum()) / span,
        "prefix_cached_share": float(
            requests["cached_tokens"].sum() / max(requests["input_tokens"].sum(), 1)
        ),
        "preemptions": int(requests["preemptions"].sum()),
        "kv_blocks_leaked": int(facts.get("kv_blocks_leaked", 0)),
        "cost_per_hour": cost_per_hour,
        "cost_per_million_tokens": (cost_per_hour * span / 3600) / (out_tokens / 1e6)
        if out_tokens
        else None,
    }


def _pct(values: pd.Series, p: float) -> float | None:
    v = values.dropna().to_numpy()
    return float(np.percentile(v, p)) if v.size else None
