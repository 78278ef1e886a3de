"""Runtime scheduler behaviours that decide when prompts run on colocated pools, each as its
runtime implements it: TensorRT-LLM's batch waiting (``batch_wait_timeout_iters``,
``batch_wait_max_tokens_ratio``: ``PyExecutor._waiting_requests``) and attention-DP balancing,
SGLang's ``--scheduler-recv-interval`` (``SchedulerRecvSkipper``) and its prompt-only steps
(``mixed_chunk`` false: ``Scheduler.get_next_batch_to_run``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hetsim
from hetsim.errors import InputError
from hetsim.perf.runtimes import mixes_prompts
from hetsim.perf.step import step_model_for_pool
from hetsim.simulation import simulate

LONG, SHORT = 0, 1  # request ids: one decoding, one arriving while it decodes
COLUMNS = {"arrival": "arrival_s", "input_tokens": "input_tokens", "output_tokens": "output_tokens"}


def scenario(
    tmp_path, wait: dict | None = None, role: str = "colocated", arrival_s=0.004, prompt=64
):
    trace = tmp_path / "two.csv"
    trace.write_text(
        f"arrival_s,input_tokens,output_tokens\n0,64,400\n{arrival_s},{prompt},8\n",
        encoding="utf-8",
    )
    batching = {"max_num_seqs": 16, "max_batched_tokens": 1024, **(wait or {})}
    data = {
        "name": "batch-wait",
        "model": "tiny-llama",
        "pools": [
            {"name": "serve", "role": role, "accelerator": "nvidia-h100-sxm", "batching": batching}
        ],
        "workload": {"trace": {"path": str(trace), "format": "csv", "columns": COLUMNS}},
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": 1,
    }
    return hetsim.scenario_from_dict(data)


def rows(sc, fast_forward: bool = True):
    out = simulate(sc, sample_interval=None, fast_forward=fast_forward).requests
    return out.set_index("request_id")


def _step_model(sc):
    pool = sc.spec.pools[0]
    return step_model_for_pool(sc.model, sc.profiles[pool.name], pool)


def _walk(sm, t: float, context: int, *, until: float = math.inf, steps: int | None = None,
          batch: int = 1) -> tuple[float, int, int]:  # fmt: skip
    """Decode steps of ``batch`` sequences at one context each from ``t``, until a step ends
    at or after ``until`` or for ``steps`` steps: (that end, the context then, steps taken)."""
    n = 0
    while n < steps if steps is not None else t < until * (1 - 1e-12):
        t += sm.decode_time_from_sum(batch, batch * context)
        context += 1
        n += 1
    return t, context, n


@pytest.mark.parametrize("timeout", [1, 5, 20])
def test_a_prompt_beside_decodes_waits_the_timeout_in_decode_steps(tmp_path, timeout):
    """The short request arrives while the long one decodes alone: without waiting it starts
    at the next step; with waiting (a token threshold it cannot reach) it starts ``timeout``
    decode-only steps of the long request later, each priced by the step model."""
    plain = rows(scenario(tmp_path))
    held_sc = scenario(tmp_path, {"batch_wait_timeout_iters": timeout,
                                  "batch_wait_max_tokens_ratio": 1.0})  # fmt: skip
    held = rows(held_sc)
    start = plain.loc[SHORT, "prefill_start_s"]
    # walk the long request's decode steps from its first token to that step boundary ...
    sm = _step_model(held_sc)
    t, context, _ = _walk(sm, plain.loc[LONG, "first_token_s"], 64, until=start)
    assert t == pytest.approx(start, rel=1e-12)
    # ... then the held steps, the long request still alone
    t, _, _ = _walk(sm, t, context, steps=timeout)
    assert held.loc[SHORT, "prefill_start_s"] == pytest.approx(t, rel=1e-12)
    assert held.loc[LONG, "first_token_s"] == plain.loc[LONG, "first_token_s"]


def test_enough_tokens_start_the_prompt_at_once(tmp_path):
    """A threshold the step reaches (64 prompt tokens + 1 decode >= 0.05 x 1024) never holds:
    the same run as without batch waiting."""
    plain = rows(scenario(tmp_path))
    held = rows(scenario(tmp_path, {"batch_wait_timeout_iters": 50,
                                    "batch_wait_max_tokens_ratio": 0.05}))  # fmt: skip
    assert held.equals(plain)


def test_a_chunked_prompt_counts_whole_toward_the_threshold(tmp_path):
    """TensorRT-LLM counts a prompt's whole length (``len(get_tokens(0))``), not the chunk it
    computes: a 2,000-token prompt in 128-token chunks reaches 0.5 x 1024 and never waits."""
    wait = {"chunk_size": 128}
    plain = rows(scenario(tmp_path, wait, prompt=2000))
    held = rows(
        scenario(
            tmp_path,
            {**wait, "batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.5},
            prompt=2000,
        )
    )
    assert held.equals(plain)


def test_a_prompt_with_nothing_decoding_never_waits(tmp_path):
    """The first request finds no decodes: TensorRT-LLM does not wait then (it would wait for
    nothing); its prefill starts on arrival either way."""
    held = rows(scenario(tmp_path, {"batch_wait_timeout_iters": 50,
                                    "batch_wait_max_tokens_ratio": 1.0}))  # fmt: skip
    assert held.loc[LONG, "prefill_start_s"] == 0.0


def test_fast_forward_gives_the_same_rows_while_prompts_are_held(tmp_path):
    sc = scenario(tmp_path, {"batch_wait_timeout_iters": 7, "batch_wait_max_tokens_ratio": 0.9})
    assert rows(sc, fast_forward=True).equals(rows(sc, fast_forward=False))


@pytest.mark.parametrize(
    "wait",
    [{"batch_wait_timeout_iters": 20}, {"batch_wait_max_tokens_ratio": 0.5}],
)
def test_one_batch_waiting_setting_alone_is_refused(tmp_path, wait):
    with pytest.raises(InputError, match="set both, or neither"):
        scenario(tmp_path, wait)


def test_batch_waiting_on_a_decode_pool_is_refused(tmp_path):
    wait = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.5}
    with pytest.raises(InputError, match="allowed on colocated pools only"):
        scenario(tmp_path, wait, role="decode")


# ---- SGLang's scheduler_recv_interval ------------------------------------------------------


@pytest.mark.parametrize("interval", [2, 7, 30])
def test_an_arrival_is_taken_in_at_the_next_multiple_of_the_interval(tmp_path, interval):
    """The long request's prompt step is the last before the short one arrives, so its decode
    steps count from there: the short one is taken in at the end of the first decode step whose
    number is a multiple of the interval at or after its arrival (not at the next step)."""
    plain = rows(scenario(tmp_path))
    sc = scenario(tmp_path, {"scheduler_recv_interval": interval})
    sm = _step_model(sc)
    t, context, steps = _walk(sm, plain.loc[LONG, "first_token_s"], 64, until=0.004)
    assert t == pytest.approx(plain.loc[SHORT, "prefill_start_s"], rel=1e-12)
    t, _, _ = _walk(sm, t, context, steps=-steps % interval)
    assert rows(sc).loc[SHORT, "prefill_start_s"] == pytest.approx(t, rel=1e-12)


def test_an_engine_going_idle_takes_in_what_waits(tmp_path):
    """The long request ends before the interval comes round: the idle engine takes the new one
    in at once, at the long one's last step, instead of leaving it waiting."""
    sc = scenario(tmp_path, {"scheduler_recv_interval": 1000})
    out = rows(sc)
    assert out.loc[SHORT, "prefill_start_s"] == out.loc[LONG, "finish_s"]
    assert out.loc[SHORT, "status"] == "completed"


def test_fast_forward_gives_the_same_rows_with_a_recv_interval(tmp_path):
    for arrival in (0.004, 0.0101, 0.02):
        sc = scenario(tmp_path, {"scheduler_recv_interval": 30}, arrival_s=arrival)
        assert rows(sc, fast_forward=True).equals(rows(sc, fast_forward=False))


def test_a_recv_interval_with_attention_dp_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not run with DP attention"):
        dp_scenario(tmp_path, {"scheduler_recv_interval": 30})


def test_a_recv_interval_on_a_decode_pool_is_refused(tmp_path):
    with pytest.raises(InputError, match="modelled on colocated pools only"):
        scenario(tmp_path, {"scheduler_recv_interval": 30}, role="decode")


# ---- SGLang's prompt-only steps (mixed_chunk false) -----------------------------------------


def _prompt_steps(sm, chunks: list[int]) -> float:
    """Seconds of a prompt's prompt-only steps, one chunk each, after the chunks before it."""
    before = np.cumsum([0, *chunks[:-1]])
    steps = zip(chunks, before, strict=True)
    return sum(sm.step_time(np.array([c]), np.array([b])) for c, b in steps)


@pytest.mark.parametrize(("prompt", "chunks"), [(64, [64]), (2500, [1024, 1024, 452])])
def test_without_mixed_chunks_a_prompt_runs_alone_while_the_decodes_wait(tmp_path, prompt, chunks):
    """SHORT arrives while LONG decodes: the next step computes SHORT's prompt alone, in chunks
    of the whole 1024-token budget back to back, and LONG emits nothing until it is done; then
    both decode, SHORT's 7 tokens left, then LONG alone to its 400th token."""
    sc = scenario(tmp_path, {"mixed_chunk": False}, prompt=prompt)
    sm = _step_model(sc)
    got = rows(sc)
    t = _prompt_steps(sm, [64])  # LONG's prompt, nothing decoding
    t, long_context, decoded = _walk(sm, t, 64, until=0.004)  # the step under way at arrival
    assert got.loc[SHORT, "prefill_start_s"] == pytest.approx(t, rel=1e-12)
    t += _prompt_steps(sm, chunks)
    assert got.loc[SHORT, "first_token_s"] == pytest.approx(t, rel=1e-12)
    for short_context in range(prompt, prompt + 7):
        t += sm.decode_time_from_sum(2, long_context + short_context)
        long_context += 1
    assert got.loc[SHORT, "finish_s"] == pytest.approx(t, rel=1e-12)
    t, _, _ = _walk(sm, t, long_context, steps=399 - decoded - 7)
    assert got.loc[LONG, "finish_s"] == pytest.approx(t, rel=1e-12)
    assert rows(sc, fast_forward=False).equals(got)


def test_mixed_chunks_put_the_prompt_beside_the_decode(tmp_path):
    """The same arrival with mixed chunks (no runtime: vLLM's rule): LONG's decode shares
    SHORT's prompt step, which the prompt-only walk above would not give."""
    mixed = rows(scenario(tmp_path))
    assert rows(scenario(tmp_path, {"mixed_chunk": True})).equals(mixed)
    sc = scenario(tmp_path, {"mixed_chunk": False})
    assert mixed.loc[LONG, "finish_s"] < rows(sc).loc[LONG, "finish_s"]


def test_check_says_how_a_colocated_pool_schedules_prompts(tmp_path):
    from hetsim.report.describe import describe

    assert describe(scenario(tmp_path, {"mixed_chunk": False}))["pools"][0]["mixed_chunk"] is False
    assert describe(scenario(tmp_path))["pools"][0]["mixed_chunk"] is True


def test_the_report_pools_table_says_how_prompts_were_stepped(tmp_path):
    from hetsim.report.html import _pools_table

    table = _pools_table(scenario(tmp_path, {"mixed_chunk": False}))
    assert table.loc[0, "prompt steps"] == "prompt-only"
    assert _pools_table(scenario(tmp_path)).loc[0, "prompt steps"] == "beside decodes"


def test_launch_scripts_follow_how_the_pool_was_simulated(tmp_path):
    from hetsim.report.launch import launch_roles

    (mixed,) = launch_roles(scenario(tmp_path))
    assert "--enable-mixed-chunk" in mixed.sglang and not mixed.notes
    (alone,) = launch_roles(scenario(tmp_path, {"mixed_chunk": False}))
    assert "--enable-mixed-chunk" not in alone.sglang
    assert any("prompt-only steps" in note and "vLLM" in note for note in alone.notes)


def test_each_runtime_mixes_prompts_as_it_does_by_default():
    assert mixes_prompts(None, None, dp=1)
    assert mixes_prompts("vllm", None, dp=1) and mixes_prompts("trtllm", None, dp=1)
    assert not mixes_prompts("sglang", None, dp=1)
    # under attention DP the ranks with no prompt decode in the same iteration
    assert mixes_prompts("sglang", None, dp=8)
    assert mixes_prompts("sglang", True, dp=1) and not mixes_prompts("vllm", False, dp=1)


@pytest.mark.parametrize(
    ("setting", "role", "match"),
    [
        ({"mixed_chunk": False}, "decode", "allowed here: null"),
        ({"mixed_chunk": True}, "prefill", "allowed here: null"),
        (
            {
                "mixed_chunk": False,
                "batch_wait_timeout_iters": 5,
                "batch_wait_max_tokens_ratio": 0.5,
            },
            "colocated",
            "with mixed_chunk false no step",
        ),
    ],  # fmt: skip
)
def test_mixed_chunk_where_it_cannot_hold_is_refused(tmp_path, setting, role, match):
    with pytest.raises(InputError, match=match):
        scenario(tmp_path, setting, role=role)


def test_prompt_only_steps_under_attention_dp_are_refused(tmp_path):
    with pytest.raises(InputError, match="which hetsim models as mixed"):
        dp_scenario(tmp_path, {"mixed_chunk": False})


def test_batch_waiting_on_an_sglang_pool_is_refused_unless_it_mixes(tmp_path):
    pytest.importorskip("aiconfigurator_core")  # runtime: sglang prices with its tables
    wait = {"batch_wait_timeout_iters": 5, "batch_wait_max_tokens_ratio": 0.5}
    data = _runtime_scenario(wait)
    with pytest.raises(InputError) as e:
        hetsim.scenario_from_dict(data)
    assert "pools[0].batching" in e.value.render() and "prompt-only steps" in e.value.render()
    data["pools"][0]["batching"]["mixed_chunk"] = True
    hetsim.scenario_from_dict(data)


def _runtime_scenario(batching: dict) -> dict:
    return {
        "name": "sglang", "model": "Llama-3.1-8B",
        "pools": [{"name": "serve", "role": "colocated", "accelerator": "nvidia-h200-sxm",
                   "runtime": "sglang", "batching": {"max_num_seqs": 16, **batching}}],
        "workload": {"synthetic": {"rate": "1 req/s", "requests": 2,
                                   "input_tokens": {"dist": "fixed", "value": 100},
                                   "output_tokens": {"dist": "fixed", "value": 4}}},
        "sla": {"ttft": "1 s", "tpot": "50 ms"}, "seed": 0,
    }  # fmt: skip


# ---- TensorRT-LLM's attention-DP balancing -------------------------------------------------


def dp_scenario(tmp_path, balance: dict | None = None, rows_csv: str | None = None):
    trace = tmp_path / "dp.csv"
    trace.write_text(rows_csv or "arrival_s,input_tokens,output_tokens\n0,64,400\n0,64,400\n"
                     "0.004,64,8\n", encoding="utf-8")  # fmt: skip
    batching = {"max_num_seqs": 16, "max_batched_tokens": 1024, **(balance or {})}
    data = {
        "name": "adp",
        "model": "tiny-llama",
        "pools": [
            {
                "name": "serve",
                "role": "colocated",
                "accelerator": "nvidia-h100-sxm",
                "dp": 2,
                "batching": batching,
            }
        ],  # fmt: skip
        "workload": {"trace": {"path": str(trace), "format": "csv", "columns": COLUMNS}},
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": 1,
    }
    return hetsim.scenario_from_dict(data)


BALANCE = {"attention_dp_balance_timeout_iters": 60, "attention_dp_batching_wait_iters": 0}


def test_a_lone_prompt_waits_for_the_timeout_count_when_every_rank_decodes(tmp_path):
    """Two sequences decode (one per rank of two); a third prompt alone leaves one rank without
    a prompt: it waits until the count, running since the two started, reaches 60 steps."""
    plain = rows(dp_scenario(tmp_path))
    held = rows(dp_scenario(tmp_path, BALANCE))
    first = plain.loc[0, "first_token_s"]  # both long prompts start together, at once
    assert held.loc[0, "first_token_s"] == first and held.loc[1, "first_token_s"] == first
    # the count ticks at every step from the first with both ranks decoding (the top right
    # after the prompts' step), with no prompt to start at first: its 60th tick, the one that
    # times out and lets the third prompt go, comes after 59 decode-only steps
    assert held.loc[2, "prefill_start_s"] > plain.loc[2, "prefill_start_s"]
    start = held.loc[2, "prefill_start_s"]
    t, _, steps = _walk(_step_model(dp_scenario(tmp_path)), first, 64, until=start, batch=2)
    assert t == pytest.approx(start, rel=1e-12)
    assert steps == 59


def test_prompts_for_every_rank_start_at_once(tmp_path):
    """Two prompts arriving together while both ranks decode: every rank has one, no wait."""
    rows_csv = "arrival_s,input_tokens,output_tokens\n0,64,400\n0,64,400\n0.004,64,8\n0.004,64,8\n"
    plain = rows(dp_scenario(tmp_path, rows_csv=rows_csv))
    held = rows(dp_scenario(tmp_path, BALANCE, rows_csv=rows_csv))
    assert held.equals(plain)


def test_attention_dp_balancing_needs_several_ranks_and_batch_waiting_none(tmp_path):
    with pytest.raises(InputError, match="this pool has dp 1"):
        scenario(tmp_path, BALANCE)
    wait = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.5}
    with pytest.raises(InputError, match="skips batch waiting under attention DP"):
        dp_scenario(tmp_path, wait)


# ---- fast-forward agrees with step-by-step under every setting -----------------------------


def _drawn(setting: str, value: int, rate: float, output: int, seed: int) -> dict:
    batching: dict = {"max_num_seqs": 16, "max_batched_tokens": 1024}
    dp = 1
    if setting == "recv":
        batching["scheduler_recv_interval"] = value
    elif setting == "separate":  # prompt-only steps, with or without a receive interval
        batching |= {"mixed_chunk": False, "scheduler_recv_interval": 1 + value % 2 * value}
    elif setting == "wait":
        batching |= {"batch_wait_timeout_iters": value, "batch_wait_max_tokens_ratio": 0.6}
    else:
        dp = 2
        batching |= {"attention_dp_balance_timeout_iters": value,
                     "attention_dp_batching_wait_iters": value % 3}  # fmt: skip
    return {
        "name": "drawn",
        "model": "tiny-llama",
        "pools": [{"name": "serve", "role": "colocated", "accelerator": "nvidia-h100-sxm",
                   "dp": dp, "batching": batching}],  # fmt: skip
        "workload": {"synthetic": {"rate": f"{rate} req/s", "requests": 40,
                                   "input_tokens": {"dist": "uniform", "min": 32, "max": 600},
                                   "output_tokens": {"dist": "uniform", "min": 1, "max": output}}},
        "sla": {"ttft": "1 s", "tpot": "50 ms"},
        "seed": seed,
    }  # fmt: skip


@settings(max_examples=32, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    setting=st.sampled_from(["recv", "wait", "balance", "separate"]),
    value=st.integers(2, 40),
    rate=st.sampled_from([5.0, 50.0, 400.0]),
    output=st.sampled_from([8, 300]),
    seed=st.integers(0, 5),
)
def test_fast_forward_gives_step_by_step_results_under_each_setting(
    setting, value, rate, output, seed
):
    sc = hetsim.scenario_from_dict(_drawn(setting, value, rate, output, seed))
    fast = simulate(sc, sample_interval=1.0)
    slow = simulate(sc, sample_interval=1.0, fast_forward=False)
    assert fast.requests.equals(slow.requests)
    assert fast.lifecycle.equals(slow.lifecycle)
    assert fast.timeseries.equals(slow.timeseries)
    skip = {"wall_s", "events"}
    a, b = fast.summary.to_dict(), slow.summary.to_dict()
    assert {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }
    assert (slow.requests["status"] == "completed").all()
