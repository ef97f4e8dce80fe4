"""One way to train the user's model (mulint.analysis.training): the measured updates of `check` and
`coord` build their optimizers through ``Training.of`` and step through ``Training.step``, so they train
the same param groups at the same learning rates; a sweep scales every group's lr together."""

from __future__ import annotations

import pytest
import torch
from conftest import MODELS

GROUPS = MODELS / "lr_scale_groups.py"
BASE_WIDTH = 32  # lr_scale_groups.py's
LR = 1e-3  # its configure_optimizers' default learning rate


def _two_groups():
    hidden, other = torch.nn.Parameter(torch.ones(4, 4)), torch.nn.Parameter(torch.ones(4))
    model = torch.nn.Module()
    model.hidden, model.other = hidden, other
    return model


def _scheduled(model):
    opt = torch.optim.AdamW(
        [{"params": [model.hidden], "lr_scale": 0.25, "weight_decay": 0.1}, {"params": [model.other], "wd": 0.5}],
        lr=1e-3,
    )
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 4))


def test_the_lr_multiplier_scales_every_group_and_its_schedule_together():
    from mulint.analysis.lr_reads import LrPolicy
    from mulint.analysis.training import Training

    applied = LrPolicy(mode="applied")
    plain = Training.of(_two_groups(), _scheduled, applied)
    swept = Training.of(_two_groups(), _scheduled, applied, lr_multiplier=8.0)
    assert [lr for _, lr in plain.group_lrs()] == pytest.approx([0.25e-3, 1e-3])  # lr_scale applied, warm-up's base
    assert [lr for _, lr in swept.group_lrs()] == pytest.approx([2e-3, 8e-3])
    assert swept.schedulers[0].base_lrs == pytest.approx([2e-3, 8e-3])
    assert [names for names, _ in swept.group_lrs()] == [("hidden",), ("other",)]


def test_weight_decay_is_kept_unless_the_update_is_measured_alone():
    from mulint.analysis.training import Training

    kept = Training.of(_two_groups(), _scheduled).optimizers[0].param_groups
    zeroed = Training.of(_two_groups(), _scheduled, weight_decay=False).optimizers[0].param_groups
    assert (kept[0]["weight_decay"], kept[1]["wd"]) == (0.1, 0.5)
    assert (zeroed[0]["weight_decay"], zeroed[1]["wd"]) == (0.0, 0.0)


def test_a_step_holds_the_schedule_unless_told_to_step_it():
    from mulint.analysis.training import Training

    def sum_loss(output):
        return output.sum()

    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    sgd = lambda m: _with_warmup(torch.optim.SGD(m.parameters(), lr=0.1))  # noqa: E731
    held = Training.of(model, sgd, loss=sum_loss)
    stepped = Training.of(model, sgd, loss=sum_loss, step_schedulers=True)
    x = torch.randn(2, 3)
    for _ in range(2):
        held.step((x,), {})
        stepped.step((x,), {})
    assert held.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1)
    assert stepped.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 3 / 10)


def _with_warmup(opt):
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / 10)


def test_dropout_follows_the_choice_and_gradients_are_read_before_the_step():
    from mulint.analysis.training import Training

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    x = torch.ones(4, 3)
    Training.of(model).step((x,), {})
    assert model.training
    measured = Training.of(model, dropout=False)
    grads = measured.step((x,), {}, grads=True)
    assert not model.training
    assert set(grads) == {id(p) for p in model.parameters()} and all(g > 0 for g in grads.values())
    assert Training.of(model).step((x,), {}) == {}


def test_a_failing_step_is_the_optimizers_fault_only_when_blamed():
    from mulint.analysis.training import Training
    from mulint.errors import MulintError

    class Broken(torch.optim.SGD):
        def step(self, closure=None):
            raise ValueError("no step today")

    model = torch.nn.Linear(2, 2)
    x = torch.ones(1, 2)
    with pytest.raises(ValueError, match="no step today"):
        Training.of(model, lambda m: Broken(m.parameters(), lr=0.1)).step((x,), {})
    with pytest.raises(MulintError) as raised:
        Training.of(model, lambda m: Broken(m.parameters(), lr=0.1), blame_optimizer=True).step((x,), {})
    assert raised.value.step == "optimizer" and "Broken.step() raised ValueError" in str(raised.value)


def test_the_default_optimizer_is_adam_over_every_parameter_at_one_lr():
    from mulint.analysis.training import Training, default_label

    model = torch.nn.Linear(2, 3)
    training = Training.of(model)
    [opt] = training.optimizers
    assert type(opt) is torch.optim.Adam and training.group_lrs() == [(("weight", "bias"), 1e-3)]
    assert default_label(3e-4) == "Adam(lr=0.0003)"


@pytest.mark.slow  # the analysis and a coordinate check at three widths: ~5-10 s
def test_check_and_coord_train_the_same_groups_at_the_same_lrs(monkeypatch):
    """nanoGPT-mup-style lr_scale groups, applied by the file's training loop: every optimizer the
    measured updates of `check` build and every one `coord` trains holds the same groups at the same
    lrs at a width, the hidden group at LR × base width / width (computed here by hand)."""
    from test_coord import run
    from test_real_code import analyse

    from mulint.analysis import training

    built: dict[str, dict[int, set]] = {"check": {}, "coord": {}}
    command = ["check"]
    make = training.Training.of.__func__

    def recording(cls, model, *args, **kwargs):
        made = make(cls, model, *args, **kwargs)
        built[command[0]].setdefault(model.config.width, set()).add(tuple(made.group_lrs()))
        return made

    monkeypatch.setattr(training.Training, "of", classmethod(recording))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # depth=False: the depth numbers build the model (and its optimizer) at other depths, whose groups
        # hold other blocks; the same groups at the same lrs is a claim about the widths.
        facts, _ = analyse(f"{GROUPS}:RawMixer", widths=[32, 64, 128], profile="spectral", depth=False)
        command[0] = "coord"
        run(f"{GROUPS}:RawMixer", widths=[32, 64, 128], steps=1)
    finally:
        torch.set_num_threads(threads)
    # the updates were measured: the optimizers recorded for check are theirs
    assert any(u.update_exponent is not None for p in facts.params for u in p.uses)
    common = set(built["check"]) & set(built["coord"])
    assert len(common) >= 2, built
    hidden = ("ins.0", "ins.1", "outs.0", "outs.1")
    for width in common:
        assert built["check"][width] == built["coord"][width]  # one setup per command and width, the same
        [groups] = built["check"][width]
        assert [names for names, _ in groups][0] == hidden
        assert [lr for _, lr in groups] == pytest.approx([LR * BASE_WIDTH / width, LR])
