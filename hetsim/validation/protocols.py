"""How a row of the silicon sample was measured: the benchmark client's protocol.

A row's TTFT and TPOT are what a benchmark client measured, and they depend on how the client
drove the server as much as on the server: which lengths it drew around the nominal ISL and OSL,
how many requests each client sent, and which requests it averaged. With every length equal, a
closed loop whose clients start together moves in lock-step waves (every prompt of a wave queues
behind the others); lengths drawn from a range dephase the clients within a few requests. So the
protocol is part of what a row means, and posing a row with the wrong one is a wrong scenario.

The sample does not name its client. Its ``silicon_data_source`` says where a row comes from, and
:func:`protocol_of` reads the protocol from that (a judgement, justified per source below):

- **InferenceX** (SemiAnalysis, formerly InferenceMAX, Apache-2.0): the dated dumps
  (``source_file=2026-03-25.csv``, ``source_file=2026-04-06.csv``, ``db-dump/2026-04-27``) and
  the ``*-gap-analysis.csv`` extracts. They carry InferenceX's model line-up (DeepSeek-R1,
  gpt-oss-120b, Llama-3.1-70B, Kimi-K2.5, GLM-5, MiniMax-M2.5, Qwen3.5), only its fixed-length
  scenarios (ISL/OSL 1024/1024, 1024/8192, 8192/1024), its concurrency grids, and GitHub-workflow
  run ids. InferenceX's client is vLLM's ``benchmark_serving.py`` as its
  ``benchmarks/benchmark_lib.sh`` (``run_benchmark_serving``) calls it: ``--dataset-name random
  --random-range-ratio 0.8`` (the workflow default, ``.github/workflows/benchmark-tmpl.yml``),
  which draws every prompt length and every output length uniformly from the integers in
  [⌊0.8·L⌋, L] (``utils/bench_serving/benchmark_serving.py``, ``sample_random_requests``);
  ``--num-prompts CONC*10 --max-concurrency CONC --request-rate inf --ignore-eos``: ten requests
  per client, every client starting at once, each output exactly its drawn length; the reported
  mean is over every request of the run (warm-up requests, where used, are a separate phase
  before it).
- **unrecorded**: every other source (aiconfigurator's own collection, paths under
  ``aic-auto-gap-analysis/data/``) names no client. It is posed as every common client runs a
  fixed-length concurrency test (``vllm bench serve``, SGLang's ``bench_serving``, AIPerf): the
  row's ISL and OSL exactly, every client starting at once, the mean over every request. How many
  requests each client sent is not known: ten, as InferenceX sends (an assumption).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hetsim.validation.silicon import SiliconRow

__all__ = ["BenchmarkProtocol", "INFERENCEX", "UNRECORDED", "protocol_of"]


@dataclass(frozen=True, slots=True)
class BenchmarkProtocol:
    """A benchmark client's concurrency test.

    ``length_ratio``: each prompt and output length is drawn uniformly from the integers in
    [⌊ratio·L⌋, L] around the nominal L; None: every length is exactly L."""

    name: str
    length_ratio: float | None
    requests_per_client: int

    def workload(self, concurrency: int, isl: int, osl: int) -> dict[str, Any]:
        """The scenario ``workload`` this client makes of a row: a closed loop at its
        concurrency, every client at once, every request measured."""
        return {
            "closed_loop": {
                "concurrency": concurrency,
                "requests": concurrency * self.requests_per_client,
                "think_time": "0 s",
                "ramp_up": {"strategy": "none"},
                "input_tokens": self._lengths(isl),
                "output_tokens": self._lengths(osl),
            },
            "warmup_requests": 0,
        }

    def _lengths(self, nominal: int) -> dict[str, Any]:
        if self.length_ratio is None:
            return {"dist": "fixed", "value": nominal}
        return {"dist": "uniform", "min": int(nominal * self.length_ratio), "max": nominal}


#: InferenceX's benchmark_serving call: --random-range-ratio 0.8 --num-prompts CONC*10
INFERENCEX = BenchmarkProtocol(
    name="inferencex",
    length_ratio=0.8,
    requests_per_client=10,
)
#: no client recorded: exact lengths; ten requests per client is an assumption
UNRECORDED = BenchmarkProtocol(
    name="unrecorded",
    length_ratio=None,
    requests_per_client=10,
)

#: data sources whose rows are InferenceX runs (see the module docstring for the evidence)
_INFERENCEX_SOURCES = re.compile(
    r"^(source_file=\d{4}-\d{2}-\d{2}\.csv|db-dump/|source_file=[\w.+-]+-gap-analysis\.csv)"
)


def protocol_of(row: SiliconRow) -> BenchmarkProtocol:
    """The client protocol a row was measured with, read from its data source."""
    return INFERENCEX if _INFERENCEX_SOURCES.match(row.source) else UNRECORDED
