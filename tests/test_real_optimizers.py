"""Muon setups from public repositories, checked through the CLI in one run (tests/models/real/optimizers/,
each file naming the repository and path it comes from):

- modded-nanogpt's 2024-10-14 record: AdamW on the tied head at one lr, its Muon scaling the orthogonalised
  update by sqrt(max(fan_out, fan_in)) at one lr. Not µP: the head's Adam update is too large (MU301, AdamW
  has an exact table) and the hidden updates grow like width^+½ (MU311).
- KellerJordan/Muon's SingleDeviceMuonWithAuxAdam on the same GPT: hidden matrices in a `use_muon=True`
  group scaled by sqrt(max(1, fan_out/fan_in)) at one lr, which is µP for them (no finding); the tied head
  in a `use_muon=False` group, stepped by Adam at one lr: MU311 through its Adam path, never MU313.
- Moonlight's Muon on its Qwen2 toy model: 0.2·sqrt(max(A, B)) (match-RMS-AdamW) at one lr, +½ on the
  hidden weights (MU311); its `adamw_params` (the tied embedding and head, the vectors) carry
  `use_muon=False` in their state and are stepped by AdamW, so the head is MU311 through its Adam path
  (+1), never MU313; the MLP's gate and up projections map width to a fixed 4864 (readout role) and are
  orthogonalised: MU313.
- a u-µP MLP language model (unit-scaling's modules, scales in the ops) with torch.optim.Muon on the hidden
  matrices: "original" Muon at one lr updates W width-stably, so the effective weight (W / sqrt(fan_in))
  moves ∝ width^-½: MU312, which torch's default weight_decay=0.1 used to hide (the decay, sized like the
  weight, was measured as part of the update). Muon's match_rms_adamw scale (∝ width^½) makes up for it.
"""

import json

import pytest

from tests.conftest import MODELS

pytestmark = pytest.mark.slow  # measured updates of models in workers

DIR = MODELS / "real" / "optimizers"
MODDED = "modded_nanogpt_modernarch.py:make_model"
KELLER = "keller_muon_aux_adam.py:make_model"
MOON = "moonlight_muon_qwen2.py:make_model"
UMUP = "umup_muon.py:make_model"

_RUN: dict = {}


@pytest.fixture
def run(mulint):
    """The one CLI run: the directory, its files' own make_model/make_optimizer pairs (the Keller file's
    make_model returns its neighbour's make_model(...): found by discovery too)."""
    if not _RUN:
        code, out, err = mulint("check", str(DIR), "--jobs", "2", "--format", "json")
        _RUN.update(code=code, report=json.loads(out), err=err)
    return _RUN


def findings(run, target: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in run["report"]["findings"]:
        if f["target"].endswith(target):
            out.setdefault(f["code"], []).append(f)
    return out


def params(found: list[dict]) -> str:
    return " ".join(f["parameter"] or "" for f in found)


def test_every_setup_is_analysed(run):
    assert run["code"] == 1, run["err"]
    summary = run["report"]["summary"]
    assert summary["errors"] == 0 and summary["models_analysed"] == 4, summary
    for target in (MODDED, KELLER, MOON):
        entry = next(t for t in run["report"]["targets"] if t["target"].endswith(target))
        assert entry["optimizer"].endswith(target.replace("make_model", "make_optimizer"))


def test_modded_nanogpt_sqrt_max_muon_at_one_lr_is_not_mup(run):
    found = findings(run, MODDED)
    assert "width^+0.50" in found["MU311"][0]["message"] and "c_fc" in params(found["MU311"])
    assert "need lr ∝ width^-0.50 with Muon" in found["MU311"][0]["message"]
    assert params(found["MU301"]) == "transformer.wte.weight"  # the tied head, AdamW at one lr
    assert "MU313" not in found and "MU312" not in found


def test_keller_aux_adam_hidden_is_mup_and_its_adam_group_is_not_muon(run):
    found = findings(run, KELLER)
    assert "MU313" not in found, found.get("MU313")  # the head is in a use_muon=False group
    assert "MU312" not in found
    [head] = found["MU311"]  # nothing on the hidden matrices: Keller's scale at one lr is µP
    assert head["parameter"] == "transformer.wte.weight"
    assert "its Adam-style path" in head["message"] and "width^+1.00" in head["message"]


def test_moonlight_adamw_backup_is_judged_as_adam_and_match_rms_muon_needs_lr_scaling(run):
    found = findings(run, MOON)
    by_param = {f["parameter"]: f for f in found["MU311"]}
    head = by_param["model.embed_tokens.weight"]
    assert "its Adam-style path" in head["message"] and "width^+1.00" in head["message"]
    hidden = next(f for p, f in by_param.items() if "q_proj" in p)
    assert "width^+0.50" in hidden["message"] and "Adam-style" not in hidden["message"]
    # Muon orthogonalises only muon_params: the embedding is not "Muon on an embedding table"
    assert "embed_tokens" not in params(found.get("MU313", []))
    [ortho] = found["MU313"]
    assert "gate_proj" in ortho["parameter"] and "a size that stays fixed as width grows" in ortho["message"]


def test_umup_with_torch_muon_at_one_lr_is_too_small_despite_weight_decay(mulint):
    code, out, err = mulint("check", str(DIR / UMUP), "--profile", "u-mup", "--format", "json")
    found = [(f["code"], f["parameter"], f["message"]) for f in json.loads(out)["findings"]]
    assert code == 1 and len(found) == 1, (found, err)
    [(rule, names, message)] = found
    assert rule == "MU312" and "up.*.weight" in names and "down.*.weight" in names
    assert "width^-0.50" in message and "need lr ∝ width^+0.50 with Muon" in message


def test_umup_with_match_rms_muon_passes(mulint):
    optimizer = str(DIR / UMUP).replace("make_model", "match_rms_muon")
    code, out, err = mulint("check", str(DIR / UMUP), "--optimizer", optimizer, "--profile", "u-mup")
    assert code == 0 and "All checks passed!" in out, out + err
