"""Optimizer knowledge and coordinate-check thresholds as data: mulint/profile_data/optimizers.toml read
once (mulint.optimizers) and used by the optimizer reads, the measured updates and the profiles; the
coordinate check's thresholds all in a profile's [coord] table, each one changing the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch

import mulint

DATA = Path(mulint.__file__).parent / "profile_data"


def test_the_data_file_is_what_every_reader_uses():
    from mulint.analysis.lr_reads import LrPolicy
    from mulint.optimizers import OPTIMIZERS
    from mulint.profiles import FAMILIES

    raw = tomllib.loads((DATA / "optimizers.toml").read_text(encoding="utf-8"))
    assert OPTIMIZERS.factory_names == tuple(raw["factories"]["names"])
    assert OPTIMIZERS.argument_defaults["betas"] == (0.9, 0.95)  # a pair, as the factory expects
    assert FAMILIES == tuple(raw["families"]) == ("adam", "sgd")
    assert LrPolicy().keys == tuple(raw["param_groups"]["lr_scale_keys"])


def test_families_are_read_from_the_class_and_its_bases():
    from mulint.analysis.optimizer import family_of

    class MyAdamW(torch.optim.AdamW):
        pass

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert family_of(MyAdamW(p)) == "adam" and family_of(torch.optim.SGD(p, lr=0.1)) == "sgd"
    assert family_of(torch.optim.Adafactor(p)) == "unknown"  # relative to the parameter's RMS: measured


def test_muon_is_told_by_its_name_in_any_case():
    from mulint.optimizers import OPTIMIZERS

    assert OPTIMIZERS.is_muon("MuonWithAuxAdam") and OPTIMIZERS.is_muon("SingleDeviceMuon")
    assert not OPTIMIZERS.is_muon("AdamW")


def test_the_data_file_beside_the_profiles_is_not_a_profile():
    from mulint.errors import MulintError
    from mulint.profiles import load_profile, profile_names

    assert "optimizers" not in profile_names()
    with pytest.raises(MulintError, match="unknown profile 'optimizers'"):
        load_profile("optimizers")


def _curve(change: dict[int, float]):
    from mulint.coordcheck import LayerCurve
    from mulint.exponents import fit_exponent

    c = LayerCurve(name="h.0.mlp", module_type="Linear", judged=True, shapes={w: (2, 8, w) for w in change})
    c.change, c.size = {3: change}, {3: {w: 1.0 for w in change}}
    c.slopes = {3: fit_exponent(change)}
    return c


def _profile(tmp_path, **changes) -> dict[str, float]:
    from mulint.profiles import load_profile

    text = (DATA / "mup.toml").read_text(encoding="utf-8")
    for key, value in changes.items():
        text = text.replace(f"\n{key} = {load_profile().coord[key]:g}\n", f"\n{key} = {value}\n")
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    coord = load_profile(str(path)).coord
    assert all(coord[k] == v for k, v in changes.items())
    return coord


def test_a_failure_must_hold_over_the_widest_widths_the_profile_names(tmp_path):
    from mulint.coordcheck.run import judge
    from mulint.profiles import load_profile

    # grows like width^+0.9 from 32 to 128, flat from 128 to 512: the narrow widths' finite-width effect
    fading = _curve({32: 1.0, 64: 1.9, 128: 3.6, 256: 3.6, 512: 3.6})
    assert load_profile().coord["widest"] == 3
    assert judge(fading, load_profile().coord) == "ok"  # flat over the widest three
    assert judge(fading, _profile(tmp_path, widest=5)) == "blow-up"  # over all five: it grows


def test_a_layer_is_judged_downstream_only_past_the_profiles_multiplier(tmp_path):
    from types import SimpleNamespace

    from mulint.coordcheck.run import _judged
    from mulint.profiles import load_profile

    def structure(exponent):
        use = SimpleNamespace(multiplier_exponent=exponent, module="head")
        return SimpleNamespace(facts=SimpleNamespace(params=[SimpleNamespace(uses=[use])]))

    mup = load_profile().coord
    assert mup["multiplier"] == 0.25
    assert "head" in _judged(structure(-0.5), mup) and "head" not in _judged(structure(-0.25), mup)
    assert "head" in _judged(structure(-0.25), _profile(tmp_path, multiplier=0.2))


def test_the_results_default_limits_are_the_default_profiles():
    from mulint.coordcheck import CoordResult
    from mulint.profiles import load_profile

    coord = load_profile().coord
    assert CoordResult("t", [1], 1, 1, "SGD", []).limits == (coord["collapse"], coord["blow_up"]) == (-0.5, 0.3)
