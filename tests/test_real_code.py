"""Patterns from public µP and unit-scaled code bases, each in a correct and a broken version:
findings must be right in both directions."""

from __future__ import annotations

import pytest

from conftest import MODELS


def analyse(spec: str, **options):
    from mulint.analysis.model import analyse_model
    from mulint.load.targets import parse_target, resolve
    from mulint.rules import MODEL_RULES

    [target] = resolve(parse_target(spec), allow_exec=True)
    facts = analyse_model(target, **options).facts
    findings = [f for rule in MODEL_RULES for f in rule().check(facts)]
    return facts, findings


def codes(findings) -> dict[str, set[str]]:
    """code -> the parameter patterns it names."""
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f.code, set()).update((f.parameter or "").split(", "))
    return out


UNIT = MODELS / "unit_scaled.py"


def test_a_factor_on_a_fused_qkv_output_is_the_projections_multiplier():
    facts, findings = analyse(f"{UNIT}:make_scaled")
    qkv = facts.param("blocks.0.qkv.weight")
    assert [round(u.multiplier_exponent, 2) for u in qkv.uses] == [-0.5]
    # The factor is the projection's, so the logits are scaled by 1/head_dim alone.
    assert [round(s.scale_exponent, 2) for s in facts.attention] == [-1.0, -1.0]
    assert findings == []


def test_a_fused_qkv_without_its_factor_is_a_constant_init():
    facts, findings = analyse(f"{UNIT}:make_unscaled")
    assert codes(findings) == {"MU101": {"blocks.*.qkv.weight"}, "MU301": {"blocks.*.qkv.weight"}}
