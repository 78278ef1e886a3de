"""The accuracy check CI runs: a fixed, seeded subset of NVIDIA's measured silicon sample, replayed
through hetsim with the measured kernel tables (needs the ``nvidia`` extra, which CI installs).

The sample is the validation set: nothing in hetsim is fitted to it. The bounds below are
regression guards around the figures hetsim reaches today (closing note of issue #13), not the
issue's targets (TTFT median |error| <= 20 %, TPOT <= 10 %), which it does not meet yet; a change
that makes predictions markedly worse fails here, and the printed table says where.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from hetsim.validation import (
    Outcome,
    collapse_duplicates,
    read_silicon,
    select_rows,
    validate_silicon,
)

aiconfigurator_core = pytest.importorskip("aiconfigurator_core")

SAMPLE = Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"
ROWS, SEED = 60, 13
#: (median |error|, p90 |error|) that today's model stays within on this subset (it measures
#: TTFT 32 % / 80 %, TPOT 11 % / 31 % on its 38 predicted rows, each row posed with the client
#: protocol that measured it and, for InferenceX rows, its launch settings, SGLang pools with
#: prompt-only steps, fp8 GEMMs priced as their checkpoint scales them and MLA attention from its
#: measured kernel table; 31 % / 80 % and 13 % / 29 % before those two, 35 % / 84 % without
#: launch settings, 66 % / 129 % and 16 % / 31 % with every row at fixed lengths)
GUARDS = {"ttft": (0.40, 0.95), "tpot": (0.16, 0.38)}


@pytest.fixture(scope="module")
def validation():
    rows = select_rows(collapse_duplicates(read_silicon(SAMPLE)), limit=ROWS, seed=SEED)
    return validate_silicon(rows)


def test_every_row_is_predicted_or_says_why_not(validation):
    for r in validation.results:
        if r.outcome is Outcome.PREDICTED:
            assert r.predicted_ttft_s > 0 and r.predicted_tpot_s > 0
            assert math.isfinite(r.predicted_ttft_s) and math.isfinite(r.predicted_tpot_s)
            assert r.provenance.startswith("measured:")
        else:
            assert r.reason and r.detail
    assert sum(r.outcome is Outcome.PREDICTED for r in validation.results) >= ROWS // 3


@pytest.mark.parametrize("metric", sorted(GUARDS))
def test_errors_stay_within_todays_guards(validation, metric):
    table = validation.error_table()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(1).to_string(index=False))
    overall = table[table["by"] == "all"].iloc[0]
    median, p90 = GUARDS[metric]
    assert overall[f"{metric}_median_abs_pct"] <= 100 * median
    assert overall[f"{metric}_p90_abs_pct"] <= 100 * p90
