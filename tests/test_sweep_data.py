"""The sweep's data: the synthetic tasks have structure to learn, the same for every seed's order, and
the user's batches are taken as documented."""

import pytest
import torch

from mulint.sweep.data import MarkovLanguage, UserData, synthetic_task


def test_the_markov_language_follows_its_table_and_seeds_fix_only_the_order():
    lang = MarkovLanguage(50)
    a = lang.sample(4, 20, torch.Generator().manual_seed(0))
    b = lang.sample(4, 20, torch.Generator().manual_seed(0))
    c = lang.sample(4, 20, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for row in a:
        for prev, nxt in zip(row[:-1], row[1:]):
            assert nxt in lang.successors[prev]
    assert torch.equal(MarkovLanguage(50).successors, lang.successors)  # the task is the same every time
    assert 0 < lang.entropy() < torch.log(torch.tensor(4.0))


def test_a_language_model_gets_next_token_batches_and_others_a_teacher():
    ids = torch.zeros(3, 7, dtype=torch.long)
    task = synthetic_task(((ids,), {}), torch.zeros(3, 7, 50))
    batch = next(task.batches(seed=0))
    (new,), _ = batch.inputs
    assert new.shape == (3, 7) and new.dtype == torch.long and int(new.max()) < 50
    logits = torch.zeros(3, 7, 50, requires_grad=True)
    assert batch.loss(logits).item() == pytest.approx(torch.log(torch.tensor(50.0)).item(), rel=1e-5)

    x = torch.zeros(5, 12)
    classify = synthetic_task(((x,), {}), torch.zeros(5, 10))
    b1, b2 = next(classify.batches(0)), next(classify.batches(0))
    assert torch.equal(b1.inputs[0][0], b2.inputs[0][0])
    assert "class labels" in classify.description
    regress = synthetic_task(((x,), {}), torch.zeros(5, 1))
    assert regress.teacher is not None and next(regress.batches(1)).loss(torch.zeros(5, 1)).item() > 0


def test_user_batches_are_checked_and_their_targets_pick_the_loss():
    def batches(seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            yield torch.randn(2, 3, generator=g), torch.tensor([1, 0])

    data = UserData(batches, "data.py:batches")
    batch = next(data.batches(0))
    assert batch.loss(torch.tensor([[0.0, 9.0], [9.0, 0.0]])).item() < 1e-3

    bad = UserData(lambda seed: iter([torch.zeros(2)]), "data.py:bad")
    with pytest.raises(TypeError, match="data.py:bad must yield"):
        next(bad.batches(0))


def test_a_model_that_computes_its_own_loss_from_targets_gets_next_tokens():
    """nanoGPT's forward(idx, targets): without targets it returns the last position's logits only."""
    import torch.nn.functional as F
    from torch import nn

    class TinyGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(40, 8), nn.Linear(8, 40)

        def forward(self, idx, targets=None):
            logits = self.head(self.emb(idx))
            if targets is None:
                return logits[:, [-1], :], None
            return logits, F.cross_entropy(logits.reshape(-1, 40), targets.reshape(-1))

    model = TinyGPT()
    ids = torch.zeros(3, 7, dtype=torch.long)
    task = synthetic_task(((ids,), {}), model(ids)[0], "targets")
    assert "next tokens passed as `targets`" in task.description
    batch = next(task.batches(seed=0))
    (x,), kwargs = batch.inputs
    y = kwargs["targets"]
    assert x.shape == y.shape == (3, 7) and torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    loss = batch.loss(model(x, **kwargs))
    logits = model.head(model.emb(x))
    assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 40), y.reshape(-1)).item(), rel=1e-6)
    with pytest.raises(ValueError):  # nothing per position and no targets argument: no task
        synthetic_task(((ids,), {}), model(ids)[0])
