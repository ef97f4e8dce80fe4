"""Profiles as data: the mup profile holds exactly the exponents the rules judge by, the others
change entries on purpose, and unknown or malformed profiles are clear errors."""

import json
import re
from pathlib import Path

import pytest

from mulint.errors import MulintError
from mulint.profiles import Profile, accepts, load_profile, profile_names

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_three_profiles_ship_with_the_package():
    assert {"mup", "u-mup", "spectral"} <= set(profile_names())
    for name in profile_names():
        profile = load_profile(name)
        assert isinstance(profile, Profile) and profile.name == name
        assert set(profile.spectral) == set(profile.init) == {"input", "vector", "hidden", "output"}


def test_mup_profile_holds_tensor_programs_v_exponents():
    mup = load_profile("mup")
    assert mup.init == {"input": (0.0, 0.0), "vector": (0.0, 0.0), "hidden": (-0.5, -0.5), "output": (-1.0, -1.0)}
    assert mup.target("update", "hidden", "adam") == (-1.0, -1.0) and mup.target("update", "hidden", "sgd") == (0, 0)
    assert mup.target("update", "input", "sgd") == (1.0, 1.0) and mup.multiplier == {}
    assert mup.exact == ("adam", "sgd") and set(mup.spectral.values()) == {(0.0, 0.0)}


def test_u_mup_accepts_the_embedding_lr_that_mup_calls_too_small():
    embedding_adam = -0.5  # Adam lr ∝ width^-½ on the embedding, no multiplier
    assert accepts(load_profile("mup").target("update", "input", "adam"), embedding_adam, 0.25) == -1
    assert accepts(load_profile("u-mup").target("update", "input", "adam"), embedding_adam, 0.25) == 0
    assert load_profile("u-mup").multiplier["hidden"] == (-0.5, -0.5)  # its scale sits in forward


def test_spectral_profile_judges_every_optimizer_by_its_measured_update():
    assert load_profile("spectral").exact == ()
    assert not load_profile("spectral").judged_exactly("adam")


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(MulintError) as info:
        load_profile("mu-p")
    assert "mu-p" in str(info.value) and "u-mup" in info.value.hint and info.value.step == "config"


def test_malformed_profile_is_an_error(tmp_path, monkeypatch):
    import mulint.profiles as profiles

    (tmp_path / "bad.toml").write_text('name = "bad"\n[init]\nhiden = 0.0\n[spectral]\n', encoding="utf-8")
    monkeypatch.setattr(profiles, "_data", lambda: tmp_path)
    profiles.load_profile.cache_clear()
    try:
        with pytest.raises(MulintError, match="unknown role 'hiden'"):
            profiles.load_profile("bad")
    finally:
        profiles.load_profile.cache_clear()


@pytest.mark.slow
def test_graphcore_unit_scaled_decoder_fits_u_mup_and_only_u_mup():
    """unit-scaling's TransformerDecoder with its AdamW: µP's exact tables call only the embedding's
    lr ∝ width^-½ too small; u-µP's accept every parameter."""
    pytest.importorskip("unit_scaling")
    from conftest import MODELS

    from mulint.analysis.model import analyse_model
    from mulint.reading.targets import parse_target, resolve
    from mulint.rules.optimizer import update_exponent

    [target] = resolve(parse_target(f"{MODELS / 'unit_scaling_decoder.py'}:make_model"), allow_exec=True)
    facts = analyse_model(target).facts

    def off(profile):
        out = set()
        for p in facts.params:
            for use in p.uses:
                accepted = profile.target("update", use.role, p.optimizer_family)
                if accepted and p.lr_exponent is not None:
                    eff = update_exponent(p.optimizer_family, use.multiplier_exponent, p.lr_exponent)
                    if accepts(accepted, eff, 0.25):
                        out.add((p.name, use.role))
        return out

    assert off(load_profile("mup")) == {("embedding.weight", "input")}
    assert off(load_profile("u-mup")) == set()


@pytest.mark.slow
def test_unit_scaled_decoder_through_the_cli(mulint):
    """The same decoder through `mulint check`: the embedding's lr ∝ width^-½ is MU301 under mup,
    and nothing is reported under u-mup."""
    pytest.importorskip("unit_scaling")
    from conftest import MODELS

    target = f"{MODELS / 'unit_scaling_decoder.py'}:make_model"
    code, out, err = mulint("check", target, "--format", "json", "--no-cache", "--select", "MU3")
    assert code == 1, err
    assert {(f["code"], f["parameter"]) for f in json.loads(out)["findings"]} == {("MU301", "embedding.weight")}
    code, out, err = mulint("check", target, "--profile", "u-mup", "--no-cache", "--select", "MU3")
    assert code == 0, out + err


TABLE3_MLP = """
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.inp = nn.Linear(8, width, bias=False)
        self.hidden = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, 4, bias=False)
        nn.init.normal_(self.hidden.weight, std=width ** -0.5)
        nn.init.normal_(self.out.weight, std=1.0 / width)

    def forward(self, x):
        return self.out(self.hidden(self.inp(x).relu()).relu())
"""


def _codes(out):
    return sorted({(f["code"], f["parameter"]) for f in json.loads(out)["findings"]})


@pytest.mark.slow
def test_init_rules_read_the_profile_file_they_are_given(mulint, tmp_path):
    """A profile that wants hidden inits ∝ 1/fan_in makes the µP init (fan_in^-½) too large, and the
    message quotes that profile; editing the file is seen through the cache."""
    model = tmp_path / "mlp.py"
    model.write_text(TABLE3_MLP)
    custom = tmp_path / "narrow.toml"
    text = Path(load_profile("mup").source).read_text(encoding="utf-8")
    custom.write_text(text.replace('name = "mup"', 'name = "narrow"').replace("hidden = -0.5", "hidden = -1.0"))
    code, out, err = mulint("check", str(model), "--format", "json", "--profile", str(custom))
    assert code == 1, err
    [finding] = json.loads(out)["findings"]
    assert finding["code"] == "MU101" and finding["parameter"] == "hidden.weight"
    assert "the narrow profile needs std ∝ 1/fan_in (width^-1.00)" in finding["message"]

    custom.write_text(text)  # back to µP's exponents: the cached verdict must not survive the edit
    code, out, err = mulint("check", str(model), "--format", "json", "--profile", str(custom))
    assert (code, _codes(out)) == (0, []), out + err


def test_a_missing_profile_file_is_a_usage_error(mulint, tmp_path):
    model = tmp_path / "mlp.py"
    model.write_text(TABLE3_MLP)
    code, out, err = mulint("check", str(model), "--profile", str(tmp_path / "nope.toml"))
    assert code == 2 and "nope.toml" in err and "not found" in err


@pytest.mark.slow
def test_table3_mup_is_clean_under_mup_and_warned_under_u_mup(mulint, tmp_path):
    """The same µP model, its scale in the init: µP holds, but u-µP puts the scale in the forward op."""
    model = tmp_path / "mlp.py"
    model.write_text(TABLE3_MLP)
    code, out, err = mulint("check", str(model), "--format", "json")
    assert (code, _codes(out)) == (0, []), out + err
    code, out, err = mulint("check", str(model), "--format", "json", "--profile", "u-mup")
    assert code == 1, err
    assert _codes(out) == [("MU105", "hidden.weight"), ("MU105", "out.weight")]
    assert {f["severity"] for f in json.loads(out)["findings"]} == {"warning"}


@pytest.mark.slow
def test_graphcore_decoder_has_its_scales_where_u_mup_wants_them(mulint):
    pytest.importorskip("unit_scaling")
    from conftest import MODELS

    target = f"{MODELS / 'unit_scaling_decoder.py'}:make_model"
    code, out, err = mulint("check", target, "--profile", "u-mup", "--format", "json", "--no-cache")
    assert (code, _codes(out)) == (0, []), out + err


def test_depth_profiles_are_mup_requiring_their_alpha():
    mup, half, complete = load_profile("mup"), load_profile("depth-mup"), load_profile("completep")
    assert (mup.depth.alpha, mup.depth.required) == ((0.5, 1.0), False)
    assert (half.depth.alpha, half.depth.required) == ((0.5, 0.5), True)
    assert (complete.depth.alpha, complete.depth.required) == ((1.0, 1.0), True)
    assert half.init == mup.init and complete.update == mup.update and half.coord == mup.coord
    assert complete.coord == {**mup.coord, "depth_lazy_warning": 1.0}  # lazy blocks are MU953 under CompleteP
    # MUP_REFERENCE §8: block Adam lr L^(α-1), SGD L^(2α-1), ε L^-α; nothing on non-block parameters
    assert half.depth.expected("block", "adam", "lr", 0.5) == -0.5
    assert complete.depth.expected("block", "sgd", "lr", 1.0) == 1.0
    assert complete.depth.expected("block", "adam", "eps", 1.0) == -1.0
    assert mup.depth.expected("non-block", "adam", "lr", 0.7) == 0.0
    assert load_profile("u-mup").depth == mup.depth  # a profile without [depth] takes the default's


def test_a_profile_file_extends_a_shipped_one_and_its_depth_table_is_checked(tmp_path):
    good = tmp_path / "deep.toml"
    good.write_text('extends = "completep"\nname = "deep"\n[depth.block.adam]\nlr = -0.25\n', encoding="utf-8")
    deep = load_profile(str(good))
    assert deep.depth.alpha == (1.0, 1.0) and deep.depth.expected("block", "adam", "lr", 1.0) == -0.25
    assert deep.depth.expected("block", "adam", "eps", 1.0) == -1.0  # the rest is completep's
    for text, says in (
        ('extends = "mu-p"\nname = "x"\n', "'extends' must name a shipped profile"),
        ('extends = "mup"\nname = "x"\n[depth]\nalpha = [1.0, 0.5]\n', "is empty"),
        ('extends = "mup"\nname = "x"\n[depth.block.adam]\nlr = "a-1"\n', "a number or {alpha = k"),
        ('extends = "mup"\nname = "x"\n[depth.block.adma]\nlr = 0\n', "did you mean adam"),
    ):
        bad = tmp_path / f"bad{len(says)}.toml"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(MulintError, match=re.escape(says)):
            load_profile(str(bad))
