"""YAML that users write and other tools produce loads as YAML means it: merge keys (pool
templates) and a UTF-8 byte-order mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetsim.errors import InputError
from hetsim.spec.loader import read_yaml
from hetsim.spec.resolve import load_scenario

REPO = Path(__file__).resolve().parents[1]
BASE = (REPO / "scenarios" / "qwen3-32b-6p2d.yaml").read_text(encoding="utf-8")

# the decode pool written as the prefill pool's template with its own values on top
TEMPLATED_POOLS = """pools:
  - &pool
    name: prefill
    role: prefill
    accelerator: nvidia-h100-sxm
    instances: 6
    precision: {weights: bf16, activations: bf16, kv: bf16}
    batching: {max_num_seqs: 16, max_batched_tokens: 8192}
  - <<: *pool
    name: decode
    role: decode
    instances: 2
    batching: {max_num_seqs: 128, max_batched_tokens: 512}

interconnect:"""


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "scenario.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_merge_key_fills_a_pool_from_a_template_and_its_own_keys_win(tmp_path: Path) -> None:
    head, _, rest = BASE.partition("pools:")
    _, _, tail = rest.partition("interconnect:")
    scenario = load_scenario(_write(tmp_path, head + TEMPLATED_POOLS + tail))
    prefill, decode = scenario.spec.pools
    assert (decode.name, decode.role, decode.instances) == ("decode", "decode", 2)
    assert decode.accelerator == "nvidia-h100-sxm"  # from the template
    assert decode.batching.max_num_seqs == 128  # its own, over the template's 16
    assert prefill.batching.max_num_seqs == 16


def test_merge_key_semantics_follow_yaml(tmp_path: Path) -> None:
    text = "a: &a {x: 1, y: 2}\nb: {<<: [*a, {y: 9, w: 3}], x: 5}\n"
    # own keys override merged ones; of several merged maps the first wins
    assert read_yaml(_write(tmp_path, text))["b"] == {"x": 5, "y": 2, "w": 3}


def test_a_key_written_twice_beside_a_merge_key_is_still_a_duplicate(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="duplicate key 'x'"):
        read_yaml(_write(tmp_path, "a: &a {x: 1}\nb: {<<: *a, x: 2, x: 3}\n"))


def test_a_byte_order_mark_is_not_part_of_the_scenario(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, b"\xef\xbb\xbf" + BASE.encode("utf-8")))
    assert scenario.spec.name == "qwen3-32b-6p2d"
    assert [p.name for p in scenario.spec.pools] == ["prefill", "decode"]
