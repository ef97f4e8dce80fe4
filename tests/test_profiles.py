"""Profiles as data: the mup profile holds exactly the exponents the rules judge by, the others
change entries on purpose, and unknown or malformed profiles are clear errors."""

import json

import pytest

from mulint.errors import MulintError
from mulint.profiles import Profile, accepts, load_profile, profile_names


def test_the_three_profiles_ship_with_the_package():
    assert {"mup", "u-mup", "spectral"} <= set(profile_names())
    for name in profile_names():
        profile = load_profile(name)
        assert isinstance(profile, Profile) and profile.name == name
        assert set(profile.spectral) == set(profile.init) == {"input", "vector", "hidden", "output"}


def test_mup_profile_equals_the_tables_the_rules_judge_by():
    from mulint.rules.init import TARGETS
    from mulint.rules.optimizer import UPDATE_TARGETS

    mup = load_profile("mup")
    assert {role: low for role, (low, high) in mup.init.items() if low == high} == TARGETS
    for family, table in UPDATE_TARGETS.items():
        assert {role: mup.target("update", role, family) for role in table} == {
            role: (value, value) for role, value in table.items()}
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


def test_graphcore_unit_scaled_decoder_fits_u_mup_and_only_u_mup():
    """unit-scaling's TransformerDecoder with its AdamW: µP's exact tables call only the embedding's
    lr ∝ width^-½ too small; u-µP's accept every parameter."""
    pytest.importorskip("unit_scaling")
    from conftest import MODELS
    from mulint.analysis.model import analyse_model
    from mulint.load.targets import parse_target, resolve
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
