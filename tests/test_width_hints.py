"""When no width knob is found, the error names the real cause and the hint shows a factory filled in
with the model's own names; it never suggests the option the user just passed."""

import re
import textwrap

import pytest

from mulint.construct import build_at
from mulint.construct.width import find_knob
from mulint.construct.width_hints import NEEDS_ARGUMENTS, NO_WIDTH_KNOB, UNKNOWN_WIDTH_ARG
from mulint.errors import MulintError
from mulint.reading.targets import parse_target, resolve

ZOO = """
from dataclasses import dataclass

import torch.nn as nn


@dataclass
class TokenSettings:
    vocab_size: int                 # no default: TokenSettings() raises
    n_embd: int = 48
    n_layer: int = 3


class NeedsTokens(nn.Module):
    def __init__(self, config: TokenSettings):
        super().__init__()
        self.read = nn.Linear(config.n_embd, config.vocab_size)


@dataclass
class OpenSettings:
    d_model: int = None
    n_heads: int = 4
    max_seq_len: int = None


class OpenEnded(nn.Module):
    def __init__(self, cfg: OpenSettings = None):
        super().__init__()
        cfg = cfg or OpenSettings()
        self.mix = nn.Linear(cfg.d_model, cfg.d_model)


class Flexible(nn.Module):
    def __init__(self, **options):
        super().__init__()
        size = options.get("hidden_dim", 32)
        self.mix = nn.Linear(options["in_features"], size)


class Gate(nn.Module):
    def __init__(self, in_features, out_features, groups):
        super().__init__()
        self.mix = nn.Linear(in_features, out_features)


class Mixer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        return self.mix(x)


@dataclass
class Shape:
    n_embd: int = 40
    n_out: int = 3


class Readout(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.mix = nn.Linear(shape.n_embd, shape.n_embd)
        self.out = nn.Linear(shape.n_embd, shape.n_out)

    def forward(self, x):
        return self.out(self.mix(x))


class Counted(nn.Module):
    def __init__(self, n_units=24, n_classes=5):
        super().__init__()
        self.mix = nn.Linear(n_units, n_units)


class Picky(nn.Module):
    def __init__(self, width=24):
        super().__init__()
        assert width % 24 == 0, "width must be a multiple of 24"
        self.mix = nn.Linear(width, width)


def from_checkpoint():
    raise FileNotFoundError("weights.pt")


class Scaled(nn.Module):
    def __init__(self, wm=1.0, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, int(16 * wm), 3)
        self.body = nn.Conv2d(int(16 * wm), int(32 * wm), 3)
        self.head = nn.Linear(int(32 * wm), num_classes)


class Fixed(nn.Module):
    def __init__(self, scale=0.5):
        super().__init__()
        self.mix = nn.Linear(8, 8)
"""


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("hints") / "zoo.py"
    path.write_text(textwrap.dedent(ZOO))
    return path


def _target(zoo, name):
    [target] = resolve(parse_target(f"{zoo}:{name}"), allow_exec=True)
    return target


def _failure(zoo, name, width_arg=None) -> MulintError:
    target = _target(zoo, name)
    with pytest.raises(MulintError) as caught:
        find_knob(target.obj, target.label, width_arg)
    assert caught.value.step == "width"
    return caught.value


def _factory(hint: str) -> str:
    """The factory's source as the hint shows it, dedented."""
    return textwrap.dedent("\n".join(line for line in hint.splitlines()[1:]))


def test_a_config_that_cannot_be_built_shows_its_error_and_a_filled_factory(zoo):
    exc = _failure(zoo, "NeedsTokens")
    assert "TokenSettings() raised TypeError" in exc.message and "vocab_size" in exc.message
    assert exc.kind == NEEDS_ARGUMENTS
    assert f"check {zoo}:make" in exc.hint
    assert "def make(width=48):" in exc.hint  # the config's own width is the default
    assert "return NeedsTokens(TokenSettings(vocab_size=..., n_embd=width))" in exc.hint
    assert "--width-arg" not in exc.hint


def test_a_width_that_defaults_to_none_is_named(zoo):
    exc = _failure(zoo, "OpenEnded")
    assert "d_model = None" in exc.message and "max_seq_len" in exc.message
    assert exc.kind == NEEDS_ARGUMENTS
    assert "OpenEnded(OpenSettings(d_model=width, max_seq_len=...))" in exc.hint


def test_the_user_naming_a_none_field_is_not_told_to_name_it(zoo):
    exc = _failure(zoo, "OpenEnded", width_arg="cfg.d_model")
    assert "d_model = None" in exc.message
    assert "--width-arg" not in exc.hint


def test_arguments_behind_kwargs_are_read_from_the_code(zoo):
    exc = _failure(zoo, "Flexible")
    assert "Flexible(**options) hides its arguments" in exc.message
    assert "hidden_dim" in exc.message and "in_features" in exc.message
    assert exc.kind == NO_WIDTH_KNOB
    assert "return Flexible(hidden_dim=width)" in exc.hint


def test_a_component_with_required_arguments_names_them(zoo):
    exc = _failure(zoo, "Gate")
    assert "(in_features, out_features, groups)" in exc.message and "component" in exc.message
    assert exc.kind == NEEDS_ARGUMENTS
    assert "Gate(in_features=..., out_features=..., groups=...)" in exc.hint


def test_a_required_width_alone_is_given_by_widths(zoo):
    exc = _failure(zoo, "Mixer")
    assert "'dim' has no default" in exc.message and exc.kind == NEEDS_ARGUMENTS
    assert "--widths" in exc.hint and "return Mixer(dim=width)" in exc.hint
    target = _target(zoo, "Mixer")
    assert find_knob(target.obj, target.label, base_override=32).base == 32


def test_a_float_multiplier_gets_a_factory_from_width_to_multiplier(zoo):
    exc = _failure(zoo, "Scaled", width_arg="wm")
    assert "'wm' has the default 1.0: a width multiplier" in exc.message and exc.kind == NEEDS_ARGUMENTS
    source = _factory(exc.hint)
    assert "def make(width=16):" in source and "return Scaled(wm=width / 16)" in source
    namespace = dict(vars(_target(zoo, "Scaled").module))
    exec(source, namespace)
    knob = find_knob(namespace["make"], f"{zoo}:make")
    assert knob.base == 16  # the factory's width is the model's own at wm=1.0
    assert knob.build(64).body.weight.shape[:2] == (128, 64)


def test_a_multiplier_that_scales_nothing_leaves_the_base_to_the_user(zoo):
    exc = _failure(zoo, "Fixed", width_arg="scale")
    assert "return Fixed(scale=width * 0.5 / BASE)" in exc.hint
    assert "BASE: the model's width at scale=0.5" in exc.hint


def test_a_width_arg_naming_nothing_lists_the_int_fields_and_guesses(zoo):
    exc = _failure(zoo, "Counted", width_arg="n_unit")
    assert "--width-arg n_unit names no argument" in exc.message
    assert "n_classes" in exc.message and "n_units" in exc.message
    assert exc.kind == UNKNOWN_WIDTH_ARG
    assert "did you mean --width-arg n_units?" in exc.hint
    assert "--width-arg n_unit " not in exc.hint and "--width-arg NAME" not in exc.hint


def test_a_config_field_guess_keeps_the_users_form(zoo):
    exc = _failure(zoo, "NeedsTokens", width_arg="config.n_emb")
    assert "did you mean --width-arg config.n_embd?" in exc.hint
    assert "TokenSettings(vocab_size=..., n_embd=width)" in exc.hint  # the factory still fixes the config


def test_without_a_width_like_name_the_option_is_offered_once(zoo):
    exc = _failure(zoo, "Counted")
    assert exc.kind == NO_WIDTH_KNOB and "n_units" in exc.message
    assert "pass --width-arg n_units" in exc.hint and "return Counted(n_units=width)" in exc.hint


def test_a_factory_that_raises_is_a_crash_not_a_missing_knob(zoo):
    exc = _failure(zoo, "from_checkpoint")
    assert "from_checkpoint() raised FileNotFoundError: weights.pt" in exc.message
    assert not getattr(exc, "kind", "")  # a crash: reported as an error, not as "not a model"


def test_the_suggested_factory_runs(zoo):
    exc = _failure(zoo, "Readout")
    assert exc.kind == NEEDS_ARGUMENTS and "(shape)" in exc.message
    source = _factory(exc.hint)
    assert "return Readout(Shape(n_embd=width))" in source
    target = _target(zoo, "Readout")
    namespace = dict(vars(target.module))
    exec(source, namespace)
    knob = find_knob(namespace["make"], f"{zoo}:make")
    assert knob.base == 40 and knob.name == "width"
    assert knob.build(80).mix.weight.shape == (80, 80)


def test_a_build_failure_suggests_the_width_arg_only_when_it_was_not_passed(zoo):
    target = _target(zoo, "Picky")
    hints = []
    for width_arg in (None, "width"):
        knob = find_knob(target.obj, target.label, width_arg)
        with pytest.raises(MulintError) as caught:
            build_at(knob, 36, target=target.label)
        assert caught.value.step == "build" and "--widths" in caught.value.hint
        hints.append(caught.value.hint)
    assert "--width-arg" in hints[0] and "--width-arg" not in hints[1]


@pytest.mark.slow
def test_cli_shows_the_cause_and_never_loops(zoo, mulint):
    code, _, err = mulint("check", "--no-cache", f"{zoo}:NeedsTokens")
    assert code == 2 and "raised TypeError" in err and "def make(width=48):" in err
    code, _, err = mulint("check", "--no-cache", f"{zoo}:Counted", "--width-arg", "units")
    assert code == 2 and "did you mean --width-arg n_units?" in err
    assert not re.search(r"--width-arg units\b", err.split("hint:", 1)[1])
