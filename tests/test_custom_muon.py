"""A user-written optimizer that is Muon for some param groups and Adam for others (one object, a
`use_ortho` flag per group, as in Muon-with-auxiliary-Adam setups) is judged by the updates it makes:
the µP setup is clean, and each way of breaking it is named at the optimizer's line."""

import json

import pytest
from conftest import MODELS

pytestmark = pytest.mark.slow  # measured updates of a model in a worker

SOURCE = (MODELS / "ortho_aux_adam.py").read_text()
VARIANTS = {
    "mup": SOURCE,
    # SP readout: default-scale init, no 1/width output multiplier, Adam at one lr.
    "sp_readout": SOURCE.replace(
        "nn.init.zeros_(self.head.weight)", "nn.init.normal_(self.head.weight, std=0.02)"
    ).replace("return self.head(self.norm(x)) * self.mult", "return self.head(self.norm(x))"),
    # Adam's 1/width rule copied to the orthogonalised hidden groups.
    "adam_rule": SOURCE.replace(
        "dict(params=hidden, use_ortho=True, lr=0.02)", "dict(params=hidden, use_ortho=True, lr=0.02 * model.mult)"
    ),
    # The embedding table orthogonalised too.
    "ortho_embed": SOURCE.replace(
        "dict(params=[model.embed.weight], use_ortho=False, lr=3e-3)",
        "dict(params=[model.embed.weight], use_ortho=True, lr=3e-3)",
    ),
}


def test_each_setup_gets_its_verdict(mulint, tmp_path):
    for name, text in VARIANTS.items():
        assert name == "mup" or text != SOURCE, f"variant {name} did not change the model"
        (tmp_path / f"{name}.py").write_text(text)
    code, out, err = mulint("check", str(tmp_path), "--format", "json", "--no-cache", "--jobs", "2")
    assert code == 1, err
    report = json.loads(out)
    assert report["summary"]["models_analysed"] == len(VARIANTS)
    found = {}
    for f in report["findings"]:
        found.setdefault(f["path"].rsplit("/", 1)[-1][:-3], set()).add((f["code"], f["parameter"]))
    hidden = (
        "layers.*.wq.weight, layers.*.wk.weight, layers.*.wv.weight, layers.*.wo.weight, layers.*.up.weight, "
        "layers.*.down.weight"
    )
    assert found == {
        "sp_readout": {("MU102", "head.weight"), ("MU311", "head.weight")},
        "adam_rule": {("MU312", hidden)},
        "ortho_embed": {("MU312", "embed.weight")},
    }, found
    line = next(i for i, text in enumerate(SOURCE.splitlines(), 1) if "return OrthoWithAdam(" in text)
    assert {f["line"] for f in report["findings"] if f["code"].startswith("MU31")} == {line}
    notes = [n for t in report["targets"] for n in t.get("notes") or []]
    assert not [n for n in notes if "a key torch ignores" in n], notes  # `lr` with empty defaults is still the lr
    messages = {f["code"]: f["message"] for f in report["findings"] if f["path"].endswith("sp_readout.py")}
    assert "∝ width^+1.00" in messages["MU311"] and "need lr ∝ width^-1.00 with OrthoWithAdam" in messages["MU311"]
