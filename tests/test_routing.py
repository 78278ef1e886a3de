"""One router per role across its pools: length rules, cache_aware's cost, decode KV room, and
the scenario checks that refuse a router that cannot apply."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import hetsim
from hetsim.errors import InputError
from hetsim.kv.blocks import BlockPool
from hetsim.sim.router import RoleRouter, Router
from hetsim.sim.state import Req
from hetsim.spec.loader import read_yaml
from hetsim.spec.scenario import RoleRouting, parse_token_bounds

ROOT = Path(__file__).resolve().parent.parent
TIERED = ROOT / "scenarios" / "tiered-gpu.yaml"
MOONCAKE = ROOT / "scenarios" / "trace-mooncake-conversation.yaml"


def request(input_tokens: int, output_tokens: int = 16, hashes: list[int] | None = None) -> Req:
    h = None if hashes is None else np.array(hashes, dtype=np.int64)
    return Req(0, 0.0, input_tokens, output_tokens, h)


class FakeCache:
    """Finds a fixed number of leading blocks, and records how it was asked."""

    def __init__(self, found: int) -> None:
        self.found = found
        self.touched: list[bool] = []

    def match(self, blocks: list[int], touch: bool = True) -> int:
        self.touched.append(touch)
        return min(self.found, len(blocks))


def prefill(gid: int, pool: str = "p", outstanding: int = 0, found: int = 0) -> Any:
    return SimpleNamespace(
        gid=gid,
        pool=SimpleNamespace(name=pool),
        outstanding_tokens=outstanding,
        prefix_cache=FakeCache(found),
    )


def tiered(change=None) -> hetsim.Scenario:
    data = read_yaml(TIERED, "scenario file")
    if change is not None:
        change(data)
    return hetsim.scenario_from_dict(data, path=TIERED)


# ---- the scenario language ------------------------------------------------------------------


def test_length_conditions_are_half_open_intervals_of_prompt_lengths():
    assert parse_token_bounds(">8192") == (8193, None)
    assert parse_token_bounds(">= 8192") == (8192, None)
    assert parse_token_bounds("<2048") == (0, 2048)
    assert parse_token_bounds("<=2048") == (0, 2049)
    assert parse_token_bounds(">=2048 <8192") == (2048, 8192)
    assert parse_token_bounds(">1024, <=4096") == (1025, 4097)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (8192, "a comparison is needed"),
        ("=> 8192", "cannot read '=> 8192'"),
        (">1 >2", "two lower bounds"),
        ("<100 >=100", "admits no prompt length"),
        ("8k", "cannot read"),
    ],
)
def test_a_bad_length_condition_names_its_field_value_and_the_forms(text, says):
    def change(d):
        d["routing"]["prefill"]["rules"][0]["when"]["input_tokens"] = text

    with pytest.raises(InputError) as err:
        tiered(change)
    message = str(err.value)
    assert "routing.prefill.rules[0].when.input_tokens" in message
    assert says in message and "'>=2048 <8192'" in message


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (lambda r: r["prefill"]["rules"].pop(), "routing.prefill.rules", "catch-all"),
        (lambda r: r["prefill"]["rules"].reverse(), "routing.prefill.rules[0]", "never match"),
        (
            lambda r: r["prefill"]["rules"][0].update(to="prefill-h100"),
            "routing.prefill.rules[0].to",
            "allowed: prefill-a100, prefill-4090",
        ),
        (
            lambda r: r["prefill"]["rules"][1].update(to=["prefill-a100"]),
            "routing.prefill.rules",
            "prefill-4090: they would stay idle",
        ),
        (
            lambda r: r["decode"].update(rules=[{"to": "decode-a40"}]),
            "routing.decode.rules",
            "no rules under routing.decode",
        ),
        (
            lambda r: r["decode"].update(policy="cache_aware"),
            "routing.decode.policy",
            "least_kv_load",
        ),
        (
            lambda r: r["prefill"].update(overlap_weight=2),
            "routing.prefill.overlap_weight",
            "policy cache_aware",
        ),
        (lambda r: r.update(colocated={}), "routing.colocated", "allowed: prefill, decode"),
    ],
)
def test_a_routing_entry_that_cannot_apply_is_an_input_error(change, field, says):
    with pytest.raises(InputError) as err:
        tiered(lambda d: change(d["routing"]))
    assert f"{field}:" in str(err.value) and says in str(err.value)


def test_pools_of_one_role_naming_different_routers_must_use_routing():
    def change(d):
        del d["routing"]
        d["pools"][0]["router"] = "round_robin"
        d["pools"][1]["router"] = "least_outstanding_tokens"

    with pytest.raises(InputError) as err:
        tiered(change)
    assert "pools[1].router:" in str(err.value) and "`routing:" in str(err.value)


def test_a_pool_router_that_contradicts_routing_is_an_error_and_one_that_agrees_is_not():
    with pytest.raises(InputError, match=r"pools\[0\].router: routing.prefill.policy is"):
        tiered(lambda d: d["pools"][0].update(router="round_robin"))
    agreeing = tiered(lambda d: d["pools"][0].update(router="least_outstanding_tokens"))
    assert agreeing.spec.role_routing("prefill").policy == "least_outstanding_tokens"


def test_pools_that_name_no_router_follow_the_one_that_does():
    def change(d):
        del d["routing"]
        d["pools"][1]["router"] = "least_outstanding_tokens"

    assert tiered(change).spec.role_routing("prefill").policy == "least_outstanding_tokens"


@pytest.mark.parametrize("policy", ["cache_aware", "prefix_aware"])
def test_a_cache_aware_router_without_prompt_hashes_is_an_input_error(policy):
    with pytest.raises(InputError) as err:
        tiered(lambda d: d["routing"]["prefill"].update(policy=policy))
    assert "routing.prefill.policy:" in str(err.value) and "carry none" in str(err.value)


def test_a_scenario_with_routing_survives_goodputs_dump_and_reload():
    """with_rate re-validates a dump: a default must not come back as a contradiction."""
    from hetsim.planner.goodput import with_rate

    again = with_rate(tiered(), 5.0)
    assert again.spec.routing == tiered().spec.routing


# ---- the routers ----------------------------------------------------------------------------


def test_the_first_rule_that_admits_the_prompt_length_names_the_pools():
    routing = RoleRouting.model_validate(
        {
            "policy": "round_robin",
            "rules": [
                {"when": {"input_tokens": ">4096"}, "to": "big"},
                {"when": {"input_tokens": ">1024"}, "to": ["mid", "big"]},
                {"to": "small"},
            ],
        }
    )
    big, mid, small = prefill(0, "big"), prefill(1, "mid"), prefill(2, "small")
    router = RoleRouter(routing, [big, mid, small])
    # 5000 also passes rule 1's ">1024": the first match wins
    assert router.candidates(request(5000)) == (0, [big])
    assert router.candidates(request(4097)) == (0, [big])
    assert router.candidates(request(4096)) == (1, [mid, big])
    assert router.candidates(request(1025)) == (1, [mid, big])
    assert router.candidates(request(1024)) == (2, [small])
    # each rule's round robin turns on its own: mid, big, mid
    picks = [router.pick(request(2000), lambda x: x).gid for _ in range(3)]
    assert picks == [1, 0, 1]
    assert router.pick(request(100), lambda x: x) is small


def test_a_request_whose_tier_is_all_down_waits_instead_of_moving_to_another_tier():
    routing = RoleRouting.model_validate(
        {"rules": [{"when": {"input_tokens": ">4096"}, "to": "big"}, {"to": "small"}]}
    )
    big, small = prefill(0, "big"), prefill(1, "small")
    router = RoleRouter(routing, [big, small])
    only_small_alive = lambda insts: [i for i in insts if i is small]  # noqa: E731
    assert router.pick(request(5000), only_small_alive) is None  # the dispatcher parks it


def test_cache_aware_prefers_the_longest_hit_until_its_queue_outweighs_it():
    # a 4096-token prompt = 8 blocks of 512; A holds 6 of them (3072 tokens), B none
    req = request(4096, hashes=list(range(8)))
    a, b = prefill(0, found=6, outstanding=2048), prefill(1, found=0, outstanding=0)
    router = Router("cache_aware", block_tokens=512, overlap_weight=1.0)
    # A: (1 × (4096 − 3072) + 2048) / 512 = 6; B: (4096 + 0) / 512 = 8
    assert router.cost(a, req) == 6.0 and router.cost(b, req) == 8.0
    assert router.pick([a, b], req) is a
    # A's queue grows to 4096 tokens: (1024 + 4096) / 512 = 10 > 8, the idle B wins
    a.outstanding_tokens = 4096
    assert router.cost(a, req) == 10.0 and router.pick([a, b], req) is b
    # weighing the blocks to compute twice: A (2048 + 4096) / 512 = 12, B 8192 / 512 = 16
    heavy = Router("cache_aware", block_tokens=512, overlap_weight=2.0)
    assert heavy.cost(a, req) == 12.0 and heavy.pick([a, b], req) is a
    # scoring never refreshes a cache's recency
    assert a.prefix_cache.touched and not any(a.prefix_cache.touched)


def test_cache_aware_counts_the_last_prompt_token_as_computed():
    req = request(1024, hashes=[1, 2])  # fully cached, but the last token is always computed
    assert Router("cache_aware", block_tokens=512).cost(prefill(0, found=2), req) == 1 / 512


def decode(gid: int, capacity: int, allocated: int, queued: int = 0) -> Any:
    blocks = BlockPool(capacity, 16)
    blocks.allocated = allocated  # the router reads only the counts
    inst = SimpleNamespace(gid=gid, blocks=blocks, queued_blocks=queued)
    inst.load = lambda: (blocks.allocated + inst.queued_blocks) / capacity
    return inst


def test_decode_prefers_the_least_loaded_instance_with_kv_room_for_prompt_and_output():
    small = decode(0, capacity=100, allocated=10)  # load 0.1, 90 blocks free
    large = decode(1, capacity=1000, allocated=200)  # load 0.2, 800 blocks free
    router = Router("least_kv_load")
    # 1504 + 16 = 1520 tokens = 95 blocks of 16: only the more loaded instance has room now
    assert router.pick([small, large], request(1504, 16)) is large
    # 50 blocks fit both: the least loaded
    assert router.pick([small, large], request(784, 16)) is small
    # blocks promised to its queue count against the room: 90 − 50 = 40 < 50
    small.queued_blocks = 50  # load 0.6 now
    assert router.pick([small, large], request(784, 16)) is large
    # 900 blocks fit nowhere now: the least loaded waits for room
    small.queued_blocks = 0
    assert router.pick([small, large], request(14384, 16)) is small


# ---- whole runs -----------------------------------------------------------------------------


def test_the_tiered_scenario_sends_long_prompts_to_the_a100_and_short_ones_to_the_4090s():
    run = hetsim.simulate(TIERED, max_requests=200, sample_interval=None)
    rows = run.requests
    assert run.summary.completed == 200
    a100 = rows["prefill_instance"] == 0  # the first pool's one instance
    assert (a100 == (rows["input_tokens"] > 8192)).all()
    assert a100.any() and (~a100).any()


def test_cache_aware_hits_more_of_the_mooncake_prefixes_than_least_outstanding_tokens():
    """First 300 rows: 8.1% of their prompt tokens are a leading prefix seen in an earlier
    row (hand-counted from the hash_ids, one infinite cache): the ceiling of any router."""
    base = read_yaml(MOONCAKE, "scenario file")

    def share(policy: str) -> float:
        data = copy.deepcopy(base)
        del data["pools"][0]["router"]
        data["routing"] = {"prefill": {"policy": policy}}
        scenario = hetsim.scenario_from_dict(data, path=MOONCAKE)
        run = hetsim.simulate(scenario, max_requests=300, sample_interval=None)
        return run.summary.prefix_cached_share

    spread, aware = share("least_outstanding_tokens"), share("cache_aware")
    assert spread < aware <= 0.081


def test_check_describes_each_roles_router_and_its_rules_in_order():
    from hetsim.checks.scenario import routing_summary

    prefill, decode = routing_summary(tiered().spec)
    assert prefill == {
        "role": "prefill",
        "policy": "least_outstanding_tokens",
        "set_by": "routing",
        "parameters": {},
        "rules": [
            {"when": ">8192", "to": ["prefill-a100"]},
            {"when": None, "to": ["prefill-4090"]},
        ],
    }
    assert decode["policy"] == "least_kv_load" and decode["rules"] == [
        {"when": None, "to": ["decode-a40"]}
    ]

    def unnamed(d):
        del d["routing"]

    default = routing_summary(tiered(unnamed).spec)[0]
    assert (default["policy"], default["set_by"]) == ("round_robin", "default")
    assert default["rules"] == [{"when": None, "to": ["prefill-a100", "prefill-4090"]}]
