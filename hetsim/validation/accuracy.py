"""Predicted vs measured on the silicon sample: simulate each posed row, compare, tabulate.

The sample does not name the statistic behind ``silicon_ttft_ms`` / ``silicon_tpot_ms``; the
tools that produced it (AIPerf / genai-perf, ``vllm bench serve``, SGLang's bench) headline the
mean over requests, and aiconfigurator compares its estimates against these as means. hetsim's
side is therefore the MEAN TTFT and MEAN TPOT of the measured (post-warm-up) requests.

Error is relative and signed: ``predicted / measured - 1`` (positive: hetsim predicts slower).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from hetsim.errors import InputError
from hetsim.validation.pose import Posed, Unposed, family, pose
from hetsim.validation.protocols import protocol_of
from hetsim.validation.silicon import Runtime, SiliconRow

__all__ = [
    "Outcome",
    "RowResult",
    "SiliconValidation",
    "select_rows",
    "validate_silicon",
    "GROUPINGS",
]

#: the dimensions of the error table, each tabulated on its own; ``family`` groups the HF ids
#: by the architecture they are posed on (:func:`hetsim.validation.pose.family`), ``protocol``
#: the rows by the benchmark client that measured them (:mod:`hetsim.validation.protocols`)
GROUPINGS = ("system", "runtime", "model", "family", "mode", "protocol")


class Outcome(enum.Enum):
    PREDICTED = "predicted"
    UNPOSED = "unposed"  # hetsim cannot pose the row (see ``reason``)
    FAILED = "failed"  # posed, but the scenario did not validate or simulate (``detail``)


@dataclass(frozen=True, slots=True)
class RowResult:
    """One measurement and hetsim's prediction of it (seconds; NaN where not predicted)."""

    id: str
    line: int
    system: str
    runtime: str
    model: str
    mode: str
    protocol: str
    isl: int
    osl: int
    concurrency: int | None
    repeats: int
    measured_ttft_s: float
    measured_tpot_s: float
    predicted_ttft_s: float
    predicted_tpot_s: float
    outcome: Outcome
    reason: str
    detail: str
    provenance: str
    launch: str = ""  # where the server's scheduler settings come from (posed rows)

    @property
    def ttft_error(self) -> float:
        return self.predicted_ttft_s / self.measured_ttft_s - 1

    @property
    def tpot_error(self) -> float:
        return self.predicted_tpot_s / self.measured_tpot_s - 1


def select_rows(
    rows: Iterable[SiliconRow],
    systems: Sequence[str] | None = None,
    runtimes: Sequence[Runtime] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[SiliconRow]:
    """The rows on the given systems and runtimes; with ``limit``, a seeded random subset of
    that many (in file order), so a short run is a fair sample and repeatable."""
    chosen = [
        r
        for r in rows
        if (not systems or r.system in systems) and (not runtimes or r.runtime in runtimes)
    ]
    if limit is None or limit >= len(chosen):
        return chosen
    picks = np.random.default_rng(seed).choice(len(chosen), size=limit, replace=False)
    return [chosen[i] for i in sorted(picks)]


def validate_silicon(
    rows: Iterable[SiliconRow],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SiliconValidation:
    """Pose, simulate and compare every row; ``progress(done, total)`` after each row."""
    rows = list(rows)
    results = []
    for done, row in enumerate(rows, start=1):
        results.append(_one(row))
        if progress is not None:
            progress(done, len(rows))
    return SiliconValidation(tuple(results))


def _one(row: SiliconRow) -> RowResult:
    posed = pose(row)
    if isinstance(posed, Unposed):
        return _result(row, Outcome.UNPOSED, posed.reason.value, posed.detail)
    try:
        ttft, tpot, provenance = _simulate(posed)
    except InputError as exc:  # a scenario hetsim's schema or checks refuse: reported, not fatal
        return _result(row, Outcome.FAILED, "scenario_rejected", exc.render())
    detail = "" if posed.model_note == "bundled" else f"{posed.model}: {posed.model_note}"
    return _result(
        row, Outcome.PREDICTED, "", detail, ttft, tpot, provenance, posed.launch.description
    )


def _simulate(posed: Posed) -> tuple[float, float, str]:
    from hetsim.checks.scenario import scenario_from_dict
    from hetsim.simulation import simulate

    result = simulate(scenario_from_dict(posed.scenario), sample_interval=None)
    summary = result.summary
    labels = sorted(set(summary.provenance.values()))
    nan = float("nan")
    ttft = summary.ttft_s.mean if summary.ttft_s.mean is not None else nan
    tpot = summary.tpot_s.mean if summary.tpot_s.mean is not None else nan
    return ttft, tpot, "+".join(labels)


def _result(
    row: SiliconRow,
    outcome: Outcome,
    reason: str,
    detail: str,
    ttft: float = math.nan,
    tpot: float = math.nan,
    provenance: str = "",
    launch: str = "",
) -> RowResult:
    return RowResult(
        id=row.id,
        line=row.line,
        system=row.system,
        runtime=row.runtime.value,
        model=row.model,
        mode=row.mode.value,
        protocol=protocol_of(row).name,
        isl=row.isl,
        osl=row.osl,
        concurrency=row.concurrency,
        repeats=row.repeats,
        measured_ttft_s=row.ttft_s,
        measured_tpot_s=row.tpot_s,
        predicted_ttft_s=ttft,
        predicted_tpot_s=tpot,
        outcome=outcome,
        reason=reason,
        detail=detail,
        provenance=provenance,
        launch=launch,
    )


@dataclass(frozen=True)
class SiliconValidation:
    """Every row's outcome, with the error table and the coverage derived from them."""

    results: tuple[RowResult, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per measurement: measured and predicted in ms, signed errors in %."""
        frame = pd.DataFrame([asdict(r) for r in self.results], columns=_COLUMNS)
        frame.insert(frame.columns.get_loc("model") + 1, "family", frame["model"].map(family))
        frame["outcome"] = [r.outcome.value for r in self.results]
        for what in ("ttft", "tpot"):
            for side in ("measured", "predicted"):
                frame[f"{side}_{what}_ms"] = frame.pop(f"{side}_{what}_s") * 1e3
            frame[f"{what}_error_pct"] = (
                frame[f"predicted_{what}_ms"] / frame[f"measured_{what}_ms"] - 1
            ) * 100
        return frame

    def predicted(self) -> pd.DataFrame:
        frame = self.to_frame()
        return frame[frame["outcome"] == Outcome.PREDICTED.value]

    def error_table(self) -> pd.DataFrame:
        """Median |error|, p90 |error| and signed median (%) of TTFT and TPOT over the predicted
        rows: all together, then by each of :data:`GROUPINGS`."""
        frame = self.predicted()
        parts = [_errors(frame, "all", pd.Series("all", index=frame.index))]
        parts += [_errors(frame, by, frame[by]) for by in GROUPINGS]
        return pd.concat(parts, ignore_index=True)

    def coverage(self, by: str = "model") -> pd.DataFrame:
        """Per ``by`` value: rows, rows posed, rows predicted, and the rows left out per reason
        (last line: all rows)."""
        frame = self.to_frame()
        frame["why"] = frame["reason"].where(frame["reason"] != "", "posed")
        counts = pd.crosstab(frame[by], frame["why"], margins=True, margins_name="all")
        counts = counts.rename(columns={"all": "rows"})
        counts.insert(0, "predicted", (frame["outcome"] == "predicted").groupby(frame[by]).sum())
        counts.loc["all", "predicted"] = int((frame["outcome"] == "predicted").sum())
        counts["predicted"] = counts["predicted"].astype(int)
        ordered = [
            "rows",
            "predicted",
            *[c for c in counts.columns if c not in ("rows", "predicted")],
        ]
        return counts[ordered].rename_axis(by).reset_index()


_COLUMNS = [f.name for f in RowResult.__dataclass_fields__.values()]  # type: ignore[attr-defined]


def _errors(frame: pd.DataFrame, by: str, keys: pd.Series) -> pd.DataFrame:
    rows = []
    for key, part in frame.groupby(keys, sort=True):
        row: dict[str, object] = {"by": by, "group": key, "rows": len(part)}
        for what in ("ttft", "tpot"):
            err = part[f"{what}_error_pct"].dropna()
            row[f"{what}_median_abs_pct"] = err.abs().median() if len(err) else math.nan
            row[f"{what}_p90_abs_pct"] = err.abs().quantile(0.9) if len(err) else math.nan
            row[f"{what}_signed_median_pct"] = err.median() if len(err) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=_TABLE_COLUMNS)


_TABLE_COLUMNS = ["by", "group", "rows"] + [
    f"{what}_{stat}_pct"
    for what in ("ttft", "tpot")
    for stat in ("median_abs", "p90_abs", "signed_median")
]
