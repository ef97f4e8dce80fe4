"""--depth-arg and --no-depth: through the one settings merge (flags, [tool.mulint], the API) into the
job options, the cache key and the analysis."""

from __future__ import annotations

import json

import pytest

import mulint
from mulint.engine.config import load_config
from mulint.engine.options import JobOptions
from mulint.engine.settings import build_settings
from mulint.errors import MulintError, in_api_words
from tests.models.depth_styles import BlockForward


def _config(tmp_path, body: str):
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[tool.mulint]\n{body}\n", encoding="utf-8")
    return load_config(path)


def test_depth_is_on_by_default_and_the_knob_found():
    settings = build_settings(None)
    assert (settings.depth, settings.depth_arg) == (True, None)
    assert (JobOptions().depth, JobOptions().depth_arg) == (True, None)


def test_config_sets_depth_and_the_flags_win(tmp_path):
    config = _config(tmp_path, 'depth = false\ndepth-arg = "n_layer"')
    settings = build_settings(config)
    assert (settings.depth, settings.depth_arg) == (False, "n_layer")
    flagged = build_settings(config, depth_arg="num_layers")
    assert flagged.depth_arg == "num_layers" and flagged.depth is False
    assert build_settings(config, depth=True).depth is True  # the API's depth=True over the config


@pytest.mark.parametrize(
    ("body", "named"),
    [("depth = 'no'", "[tool.mulint] depth"), ("depth-arg = ''", "[tool.mulint] depth-arg")],
)
def test_bad_depth_config_values_are_usage_errors(tmp_path, body, named):
    with pytest.raises(MulintError) as caught:
        build_settings(_config(tmp_path, body))
    assert named in caught.value.message


def test_check_and_inspect_jobs_carry_depth_and_it_keys_the_cache():
    settings = build_settings(None, depth_arg="n_layer", depth=False)
    for options in (JobOptions.for_check(settings), JobOptions.for_inspect(settings)):
        assert (options.depth_arg, options.depth) == ("n_layer", False)
    key = json.dumps(JobOptions().as_key(), sort_keys=True)
    for changed in (JobOptions(depth=False), JobOptions(depth_arg="n_layer")):
        assert json.dumps(changed.as_key(), sort_keys=True) != key


def test_the_api_turns_depth_off():
    assert mulint.inspect(BlockForward, depth=False).facts.depth is None  # the model has a depth knob


@pytest.mark.slow  # a second whole inspect with its measured updates: ~10 s on a loaded machine
def test_the_api_names_the_depth_knob():
    depth = mulint.inspect(BlockForward, depth_arg="n_layer").facts.depth
    assert depth.named_by_user and depth.knob == "n_layer"
    assert [b.alpha for b in depth.main_branches] == pytest.approx([0.5, 0.5], abs=0.05)


def test_a_depth_arg_naming_nothing_is_an_error_in_the_callers_words():
    with pytest.raises(MulintError) as caught:
        mulint.inspect(BlockForward, depth_arg="nope")
    assert 'depth_arg="nope"' in caught.value.message and "n_layer" in (caught.value.hint or "")
    assert in_api_words("--no-depth or --depth-arg n_layer") == 'depth=False or depth_arg="n_layer"'


@pytest.mark.slow  # two inspects in workers: ~30 s on a loaded machine
def test_inspect_shows_depth_and_no_depth_leaves_it_out(mulint):
    code, out, err = mulint("inspect", "examples/completep_gpt.py:GPT", "--format", "json")
    assert code == 0, err
    depth = json.loads(out)["depth"]
    assert (depth["knob"], depth["base_depth"], depth["depths"]) == ("config.n_layer", 4, [4, 8, 16])
    assert {(b["name"], b["alpha"], b["source"]) for b in depth["branches"]} == {
        ("transformer.h.*.attn", 1.0, "depth"),
        ("transformer.h.*.mlp", 1.0, "depth"),
    }
    assert depth["branches"][0]["loc"]["path"] == "examples/completep_gpt.py"
    assert sum(p["block"] for p in depth["params"]) == 48
    code, out, err = mulint("inspect", "examples/completep_gpt.py:GPT", "--no-depth")
    assert code == 0, err
    assert "depth:" not in out and "transformer.h.0.attn.c_proj.weight" in out
