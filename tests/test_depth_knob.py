"""The depth knob: found among the fields the width knob builds from, and building any depth."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch.nn as nn

from mulint.construct import build_at
from mulint.construct.depth import find_depth_knob
from mulint.construct.width import find_knob
from mulint.errors import MulintError


class Tower(nn.Module):
    def __init__(self, width: int = 32, n_blocks: int = 3, n_heads: int = 4):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(n_blocks))


@dataclass
class Config:
    hidden_size: int = 64
    num_hidden_layers: int = 4
    layer_norm_eps: float = 1e-5
    num_attention_heads: int = 4


class Decoder(nn.Module):
    def __init__(self, config: Config = Config()):  # noqa: B008
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(config.hidden_size, config.hidden_size) for _ in range(config.num_hidden_layers)
        )


class Flat(nn.Module):
    def __init__(self, width: int = 32, n_heads: int = 4):
        super().__init__()
        self.fc = nn.Linear(width, width)


def test_a_constructor_argument_sets_the_depth():
    knob = find_depth_knob(find_knob(Tower, "t.py:Tower"))
    assert (knob.name, knob.base) == ("n_blocks", 3)
    for depth in (2, 6):
        assert len(build_at(knob.at(depth), 64, target="t").blocks) == depth
    assert build_at(knob.at(6), 64, target="t").blocks[0].in_features == 64


def test_a_config_field_sets_the_depth_and_the_width_still_scales():
    knob = find_depth_knob(find_knob(Decoder, "d.py:Decoder"))
    assert (knob.name, knob.base) == ("config.num_hidden_layers", 4)
    model = build_at(knob.at(8), 128, target="d")
    assert len(model.layers) == 8 and model.layers[0].in_features == 128


def test_no_depth_field_means_no_knob_and_a_wrong_name_is_a_usage_error():
    assert find_depth_knob(find_knob(Flat, "f.py:Flat")) is None
    with pytest.raises(MulintError, match="--depth-arg n_layers"):
        find_depth_knob(find_knob(Flat, "f.py:Flat"), "n_layers", target="f")
    named = find_depth_knob(find_knob(Tower, "t.py:Tower"), "n_heads")
    assert named.named_by_user and named.field == "n_heads"


@dataclass
class TypedConfig:
    hidden_size: int = 32
    num_hidden_layers: int = 2
    layer_types: tuple = ("sliding", "full")

    def __post_init__(self):
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError("one layer type per layer")


class Typed(nn.Module):
    def __init__(self, config: TypedConfig = TypedConfig()):  # noqa: B008
        super().__init__()
        self.kinds = config.layer_types
        self.layers = nn.ModuleList(nn.Linear(config.hidden_size, config.hidden_size) for _ in config.layer_types)


def test_per_layer_config_lists_follow_the_depth_in_their_own_pattern():
    depth = find_depth_knob(find_knob(Typed, "Typed"))
    model = build_at(depth.at(6), 32, target="Typed")
    assert len(model.layers) == 6
    assert model.kinds == ("sliding", "full") * 3
