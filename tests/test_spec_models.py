"""Model configs hetsim would cost wrongly are refused: sliding-window attention (KV is sized
for the full context) in each HF spelling, while full-attention configs still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetsim.errors import InputError
from hetsim.spec.model import ModelConfig, bundled_models, load_model

TINY = json.loads(
    (Path(__file__).resolve().parents[1] / "hetsim/model_configs/tiny-llama.json").read_text()
)


def config(**changes: object) -> dict:
    return {**TINY, **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # Mistral/Mixtral slide whenever sliding_window is set
        ({"model_type": "mistral", "sliding_window": 4096}, "sliding_window"),
        # Qwen only with use_sliding_window
        ({"model_type": "qwen3", "sliding_window": 4096, "use_sliding_window": True},
         "sliding_window"),
        # transformers' per-layer attention types
        ({"layer_types": ["full_attention", "sliding_attention"] * 2}, "layer_types"),
        # Gemma-2/3 style: every n-th layer global, the rest windowed
        ({"sliding_window": 1024, "sliding_window_pattern": 6}, "sliding_window_pattern"),
    ],
)  # fmt: skip
def test_sliding_window_attention_is_refused(changes: dict, field: str) -> None:
    with pytest.raises(InputError, match="sliding-window attention is not modelled") as info:
        ModelConfig.from_hf_config(config(**changes), "m", source="m/config.json")
    assert info.value.field == field and info.value.file == "m/config.json"


@pytest.mark.parametrize(
    "changes",
    [
        {"model_type": "qwen3", "sliding_window": 4096, "use_sliding_window": False},
        {"model_type": "qwen3", "sliding_window": 4096},  # Qwen's flag defaults to off
        {"model_type": "mistral", "sliding_window": None},
        # a window as long as the context never slides
        {"model_type": "mistral", "sliding_window": 8192, "max_position_embeddings": 8192},
        {"layer_types": ["full_attention"] * 4},
    ],
)
def test_full_attention_configs_load(changes: dict) -> None:
    assert ModelConfig.from_hf_config(config(**changes), "m").max_context == (
        changes.get("max_position_embeddings", 8192)
    )


def test_every_bundled_config_loads() -> None:
    for name in bundled_models():
        assert load_model(name).max_context > 0, name
