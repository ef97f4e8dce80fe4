"""Learning rates as the training sets them: an lr-scale key applied only where the code applies it
(and not twice), a scheduler's base lr rather than a warm-up's 0, factories returning schedulers, and
one decision shared by `check`, the measured updates and `coord`."""

from __future__ import annotations

import pytest
from conftest import MODELS
from test_real_code import analyse, codes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FACTORY = MODELS / "lr_scale_factory.py"
LOOP = MODELS / "lr_loop" / "token_mixer.py"
UNREAD = MODELS / "lr_scale_unread.py"
SCHEDULES = MODELS / "lr_schedules.py"
BASE_WIDTH = 32  # the test models' base width


def _line_of(path, text: str) -> int:
    """The 1-based line of ``text`` in a file, found independently of mulint."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# --- where the code applies the key (libcst, no execution) ------------------------------------------


def _reads(source: str, keys=("lr_scale",)):
    from mulint.reading.lr_scale_reads import scale_reads_in

    return [(r.key, r.line, r.compounds) for r in scale_reads_in(source.encode(), keys, "train.py")]


def test_a_write_from_an_outside_base_replaces_the_factorys_lr():
    source = "for g in opt.param_groups:\n    g['lr'] = lr * g.get('lr_scale', 1.0)\n"
    assert _reads(source) == [("lr_scale", 2, False)]


def test_a_write_that_reads_the_groups_own_lr_compounds_on_it():
    assert _reads("for g in groups:\n    g['lr'] *= g['lr_scale']\n") == [("lr_scale", 2, True)]
    assert _reads("g['lr'] = g['initial_lr'] * g['lr_scale'] * f\n") == [("lr_scale", 1, True)]


def test_a_key_read_through_a_local_name_or_update_is_applied():
    source = "for group in optimizer.param_groups:\n    s = group.get('lr_mult', 1)\n    group.update(lr=base_lr * s)\n"
    assert _reads(source, ("lr_scale", "lr_mult")) == [("lr_mult", 3, False)]


def test_reading_the_key_without_writing_an_lr_applies_nothing():
    source = (
        "for g in opt.param_groups:\n    print(g['lr_scale'])\n    g['weight_decay'] = wd * g['lr_scale']\n"
        "    g['lr'] = lr\n"
    )
    assert _reads(source) == []


def test_the_files_read_are_the_models_its_local_imports_and_training_scripts_beside_it(tmp_path, monkeypatch):
    import importlib
    import sys

    from mulint.analysis.lr_reads import LrPolicy

    (tmp_path / "schedule_utils.py").write_text(
        "def set_lrs(opt, lr):\n    for g in opt.param_groups:\n        g['lr'] = lr * g['lr_mult']\n"
    )
    (tmp_path / "net.py").write_text("from schedule_utils import set_lrs\n")
    (tmp_path / "train_big.py").write_text(
        "import net\nfor g in opt.param_groups:\n    g['lr'] *= g.get('lr_scale', 1)\n"
    )
    # A training script of another model beside it: not this model's training.
    (tmp_path / "train_other.py").write_text(
        "from other import Other\nfor g in opt.param_groups:\n    g['lr'] = 1e-3\n"
    )
    (tmp_path / "unrelated.py").write_text("for g in opt.param_groups:\n    g['lr'] = g['lr_multiplier']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("net", "schedule_utils"):  # another test's module of the same name is not this one
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        net = importlib.import_module("net")
        policy = LrPolicy.for_module(net)
        assert LrPolicy.for_module(net, mode="ignored").reads == []
    finally:
        for name in ("net", "schedule_utils"):
            sys.modules.pop(name, None)
    assert sorted(policy.searched) == ["net.py", "schedule_utils.py", "train_big.py"]
    assert policy.overwrites == []  # every write scales the group's own lr or reads a scale key
    assert sorted((r.key, r.where, r.compounds) for r in policy.reads) == [
        ("lr_mult", "schedule_utils.py:3", False),
        ("lr_scale", "train_big.py:3", True),
    ]


def test_a_training_script_writing_one_lr_into_every_group_is_noted(tmp_path, monkeypatch):
    """The factory's per-group lrs do not survive a loop that writes one absolute lr into each group."""
    import importlib
    import sys

    from mulint.analysis.lr_reads import LrPolicy

    (tmp_path / "mlp_groups.py").write_text("def make_optimizer(model):\n    return None\n")
    (tmp_path / "train.py").write_text(
        "from mlp_groups import make_optimizer\nfor step in range(10):\n    for g in opt.param_groups:\n"
        "        g['lr'] = get_lr(step)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        policy = LrPolicy.for_module(importlib.import_module("mlp_groups"))
    finally:
        sys.modules.pop("mlp_groups", None)
    [note] = policy.overwrite_note("mlp_groups.py:make_optimizer")
    assert "train.py:4 writes one absolute lr into every param group" in note


# --- the three ways a project treats the key, each with a µP and an SP twin --------------------------


@pytest.mark.slow
def test_a_factory_that_already_multiplied_the_lr_by_its_scale_is_not_scaled_again():
    facts, findings = analyse(f"{FACTORY}:ResidualMLP")
    assert findings == []  # before: MU301 (hidden ∝ width^-2) and MU304, the key applied a second time
    hidden = facts.param("blocks.0.1.weight")
    # by hand: configure_optimizers' learning_rate 3e-3 times lr_scale = base width / width
    assert hidden.lr == pytest.approx({w: 3e-3 * BASE_WIDTH / w for w in facts.numeric_widths})
    assert hidden.lr_scale_key is None and "lr already includes lr_scale" in hidden.lr_source
    assert any("lr already includes lr_scale" in note for note in facts.notes)


@pytest.mark.slow
def test_a_factory_applying_a_scale_of_one_keeps_one_lr_for_the_hidden_matrices():
    facts, findings = analyse(f"{FACTORY}:ResidualMLP", optimizer=f"{FACTORY}:sp_optimizer")
    assert codes(findings) == {"MU301": {"blocks.*.*.weight"}}
    assert facts.param("blocks.0.1.weight").lr == pytest.approx({w: 3e-3 for w in facts.numeric_widths})


@pytest.mark.slow
def test_a_scale_the_training_script_beside_the_model_applies_is_judged_applied():
    facts, findings = analyse(f"{LOOP}:TokenMixer")
    assert findings == []
    line = _line_of(LOOP.parent / "train.py", 'param_group["lr"] = lr * param_group.get(')
    hidden = facts.param("layers.0.up.weight")
    assert f"lr_scale applied by train.py:{line}" in hidden.lr_source and hidden.lr_scale_key == "lr_scale"
    # by hand: the model's configure_optimizers gets learning_rate 1e-3; lr_scale = base / width
    assert hidden.lr == pytest.approx({w: 1e-3 * BASE_WIDTH / w for w in facts.numeric_widths})
    assert facts.param("embed.weight").lr == pytest.approx({w: 1e-3 for w in facts.numeric_widths})


@pytest.mark.slow
def test_a_factory_in_another_file_still_finds_the_loop_beside_the_models_class(tmp_path):
    """`build.py:make` builds the class of mixer_net.py: train_mixer.py beside it, importing mixer_net,
    trains what the factory builds, and its loop applies lr_scale (as when checking the class itself)."""
    net = LOOP.read_text()
    script = (LOOP.parent / "train.py").read_text().replace("from token_mixer import", "from mixer_net import")
    (tmp_path / "mixer_net.py").write_text(net)
    (tmp_path / "train_mixer.py").write_text(script)
    (tmp_path / "build.py").write_text(
        "from mixer_net import TokenMixer\n\n\ndef make(d_model: int = 64):\n    return TokenMixer(d_model=d_model)\n"
    )
    facts, findings = analyse(f"{tmp_path / 'build.py'}:make")
    assert findings == []
    line = _line_of(tmp_path / "train_mixer.py", 'param_group["lr"] = lr * param_group.get(')
    assert f"lr_scale applied by train_mixer.py:{line}" in facts.param("layers.0.up.weight").lr_source
    (tmp_path / "train_mixer.py").unlink()  # no loop applies it: the one lr the groups hold is judged
    facts, findings = analyse(f"{tmp_path / 'build.py'}:make")
    assert "MU301" in codes(findings) and "not read anywhere" in facts.param("layers.0.up.weight").lr_source


@pytest.mark.slow
def test_the_same_training_script_with_every_scale_at_one_is_one_lr_for_all():
    facts, findings = analyse(f"{LOOP}:TokenMixer", optimizer=f"{LOOP}:sp_optimizer")
    assert codes(findings) == {"MU301": {"layers.*.up.weight", "layers.*.gate.weight", "layers.*.down.weight"}}


@pytest.mark.slow
def test_a_scale_no_code_reads_is_not_applied():
    facts, findings = analyse(f"{UNREAD}:RawMLP", optimizer=f"{UNREAD}:sp_optimizer")
    # before: judged as if applied, the setup looked µP and the real one-lr MU301 was missed
    assert codes(findings) == {"MU301": {"w_hidden"}}
    hidden = facts.param("w_hidden")
    assert hidden.lr == pytest.approx({w: 1e-3 for w in facts.numeric_widths})
    assert "lr_scale not read anywhere" in hidden.lr_source and "not applied" in hidden.lr_source
    assert "not read anywhere" in next(f for f in findings if f.code == "MU301").message


@pytest.mark.slow
def test_per_group_lrs_with_an_unread_scale_kept_for_logging_are_clean():
    facts, findings = analyse(f"{UNREAD}:RawMLP", optimizer=f"{UNREAD}:mup_optimizer")
    assert findings == []
    assert facts.param("w_hidden").lr == pytest.approx({w: 1e-3 * BASE_WIDTH / w for w in facts.numeric_widths})


@pytest.mark.slow
def test_the_config_overrides_the_decision_both_ways():
    facts, findings = analyse(f"{LOOP}:TokenMixer", lr_scale="ignored")
    assert set(codes(findings)) == {"MU301", "MU304"}  # lr constant, lr·wd grows with the width
    assert 'lr-scale = "ignored"' in facts.param("layers.0.up.weight").lr_source
    assert analyse(f"{UNREAD}:RawMLP", optimizer=f"{UNREAD}:sp_optimizer", lr_scale="applied")[1] == []


def test_lr_scale_in_pyproject_is_read_and_checked(tmp_path):
    from mulint.engine.config import load_config
    from mulint.errors import MulintError

    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.mulint]\nlr-scale = "ignored"\n')
    assert load_config(path).lr_scale == "ignored"
    path.write_text('[tool.mulint]\nlr-scale = "sometimes"\n')
    with pytest.raises(MulintError, match="lr-scale"):
        load_config(path)


# --- schedulers built with the optimizer --------------------------------------------------------------


def _schedule(name):
    return analyse(f"{SCHEDULES}:make_model", optimizer=f"{SCHEDULES}:{name}")


@pytest.mark.slow
def test_a_warm_up_with_one_lr_is_one_lr_for_everything_not_a_zero_lr():
    facts, findings = _schedule("warmup_one_lr")
    assert codes(findings) == {"MU301": {"2.weight"}}  # no MU306: the warm-up's 0 is not the lr
    assert facts.param("2.weight").lr == pytest.approx({w: 1e-3 for w in facts.numeric_widths})
    assert facts.param("2.weight").lr_source == "scheduler base lr (LambdaLR)"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["warmup_mup", "lightning_dict", "lightning_lists", "one_cycle_per_group"])
def test_per_group_mup_lrs_under_a_schedule_are_clean(name):
    facts, findings = _schedule(name)
    assert findings == []
    ratio = {w: facts.param("2.weight").lr[w] / facts.param("0.weight").lr[w] for w in facts.numeric_widths}
    assert ratio == pytest.approx({w: BASE_WIDTH / w for w in facts.numeric_widths})


@pytest.mark.slow
def test_one_cycle_with_one_peak_erases_the_groups_lrs():
    facts, findings = _schedule("one_cycle_one_peak")
    assert codes(findings) == {"MU301": {"2.weight"}}
    assert "OneCycleLR" in facts.param("2.weight").lr_source


@pytest.mark.slow
def test_a_schedule_moving_groups_by_different_factors_is_noted():
    facts, findings = _schedule("warmups_per_group")
    assert findings == []
    note = next(n for n in facts.notes if "different factors" in n)
    assert "LambdaLR" in note and "0.01, 0.1" in note  # step 1: 1/100 and 1/10 of each base lr


def test_factories_returning_schedulers_in_every_form_are_split():
    import torch

    from mulint.analysis.lr_reads import split_made
    from mulint.errors import MulintError

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    for made in (
        opt,
        (opt, sched),
        ([opt], [sched]),
        {"optimizer": opt, "lr_scheduler": sched},
        {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}},
    ):
        optimizers, schedulers = split_made(made)
        assert optimizers == [opt] and schedulers == ([] if made is opt else [sched])
    for bad in ((sched,), [opt, "adam"], {"adam": opt, "steps": 3}):
        with pytest.raises(MulintError, match="not a torch.optim.Optimizer"):
            split_made(bad)


# --- one decision for check and coord ------------------------------------------------------------------


def test_coord_trains_at_the_lrs_check_judges():
    """coord's optimizer for the nanoGPT-mup-style project: the hidden lr × lr_scale that train.py applies
    (before, coord ignored the key and trained every group at the base lr)."""
    from mulint.analysis.lr_reads import LrPolicy
    from mulint.analysis.optimizer import find_factory
    from mulint.coordcheck.run import training_of
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{LOOP}:TokenMixer"), allow_exec=True)
    factory = find_factory(target.module, target.obj, None)
    model = target.obj(d_model=128)
    [optimizer] = training_of(model, factory, LrPolicy.for_module(target.module), target.label).optimizers
    hidden = next(g for g in optimizer.param_groups if any(p is model.layers[0].up.weight for p in g["params"]))
    assert hidden["lr"] == pytest.approx(1e-3 * BASE_WIDTH / 128)
    assert [g["lr"] for g in optimizer.param_groups if g is not hidden] == [pytest.approx(1e-3)]


def test_a_scheduler_stepped_after_the_lrs_are_set_keeps_them():
    """The measured updates step the user's scheduler: its base lrs follow the applied lr-scale key."""
    import torch

    from mulint.analysis.lr_reads import LrPolicy, apply_effective_lrs

    hidden, other = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [hidden], "lr_scale": 0.25}, {"params": [other]}], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 4))
    apply_effective_lrs([opt], [sched], LrPolicy(mode="applied"))
    for _ in range(6):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.25e-3, 1e-3])


@pytest.mark.slow  # two coordinate checks: about 10-20 s on a shared machine
def test_coord_and_check_agree_on_the_nanogpt_mup_style_project():
    """check finds the lrs right (above); coord, training at the same lrs, passes. Told the key is
    ignored, both see one lr for every group: check reports MU301 and coord the hidden blow-up."""
    import torch
    from test_coord import failing, run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threads only add synchronisation
    try:
        assert failing(run(f"{LOOP}:TokenMixer")) == set()
        ignored = run(f"{LOOP}:TokenMixer", lr_scale="ignored")
    finally:
        torch.set_num_threads(threads)
    blown = {layer.name for layer in ignored.layers if layer.status == "blow-up"}
    assert {"layers.0.up", "layers.0.gate", "layers.1.down"} <= blown
