"""What a transfer sweep trains on: the user's batches (``--data``), or a synthetic task with real
structure to learn, the same task at every width, lr and seed.

- A language model (integer token ids in, logits over the vocabulary at every position out) learns a
  random sparse Markov language: each token is followed by one of ``BRANCHING`` tokens with fixed
  random probabilities, so the loss can fall from log(vocab) to the language's entropy, and how fast
  it falls depends on the learning rate as on real text. Uniform random tokens have nothing to learn.
- Any other model learns a fixed random teacher: a small random tanh network of its (flattened) input
  gives a target of the model's output shape (a class label where the output looks like logits).

Seed ``s`` fixes the order of the data (common random numbers: every width and lr of seed ``s`` sees
the same batches); the task itself (transition table, teacher) is fixed by ``TASK_SEED`` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mulint.construct.inputs import Inputs

TASK_SEED = 1234
BRANCHING = 4
TEACHER_HIDDEN = 64


@dataclass
class Batch:
    inputs: Inputs  # (args, kwargs) for the model
    loss: Callable[[Any], torch.Tensor]  # the model's output -> scalar loss


class MarkovLanguage:
    """Token sequences from a fixed sparse random transition table over ``vocab`` tokens."""

    def __init__(self, vocab: int, branching: int = BRANCHING) -> None:
        g = torch.Generator().manual_seed(TASK_SEED)
        self.vocab = vocab
        self.successors = torch.stack([torch.randperm(vocab, generator=g)[:branching] for _ in range(vocab)])
        weights = torch.rand(vocab, branching, generator=g) + 0.1
        self.probs = weights / weights.sum(-1, keepdim=True)

    def sample(self, batch: int, seq: int, generator: torch.Generator) -> torch.Tensor:
        ids = torch.empty(batch, seq, dtype=torch.long)
        ids[:, 0] = torch.randint(0, self.vocab, (batch,), generator=generator)
        for t in range(1, seq):
            pick = torch.multinomial(self.probs[ids[:, t - 1]], 1, generator=generator).squeeze(-1)
            ids[:, t] = self.successors[ids[:, t - 1], pick]
        return ids

    def entropy(self) -> float:
        """The loss a perfect model reaches (nats per token, averaged over tokens uniformly)."""
        return float(-(self.probs * self.probs.log()).sum(-1).mean())


def next_token_loss(ids: torch.Tensor) -> Callable[[Any], torch.Tensor]:
    def loss(output: Any) -> torch.Tensor:
        logits = _first_tensor(output)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))

    return loss


def _first_tensor(value: Any) -> torch.Tensor:
    from mulint.analysis.training import first_tensor

    found = first_tensor(value)
    if found is None:
        raise TypeError("the model's output holds no tensor to train on")
    return found


def _token_slot(inputs: Inputs) -> tuple[str | int, torch.Tensor] | None:
    """Where the token ids sit in the example inputs: the first integer tensor of rank 2."""
    args, kwargs = inputs
    slots: list[tuple[str | int, Any]] = [*enumerate(args), *kwargs.items()]
    for key, value in slots:
        if isinstance(value, torch.Tensor) and not value.is_floating_point() and value.dim() == 2:
            return key, value
    return None


def _with(inputs: Inputs, key: str | int, value: torch.Tensor) -> Inputs:
    args, kwargs = inputs
    if isinstance(key, int):
        return tuple(value if i == key else a for i, a in enumerate(args)), dict(kwargs)
    return tuple(args), {**kwargs, key: value}


class Teacher:
    """A fixed random tanh network from a flattened input to a target of the model's output shape."""

    def __init__(self, in_features: int, out_features: int) -> None:
        g = torch.Generator().manual_seed(TASK_SEED)
        self.w1 = torch.randn(in_features, TEACHER_HIDDEN, generator=g) / in_features**0.5
        self.w2 = torch.randn(TEACHER_HIDDEN, out_features, generator=g) / TEACHER_HIDDEN**0.5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.reshape(x.shape[0], -1).float() @ self.w1) @ self.w2 * 2.0


@dataclass
class SyntheticTask:
    """Batches of the synthetic task fitted to a model's example inputs and output (see module doc)."""

    example: Inputs
    output_shape: tuple[int, ...]
    description: str
    language: MarkovLanguage | None = None
    teacher: Teacher | None = None
    # A language model that computes its own loss from next tokens passed as this argument (nanoGPT's
    # `forward(idx, targets)`: without them it returns the last position's logits only).
    targets_arg: str | None = None

    def batches(self, seed: int, device: str = "cpu") -> Iterator[Batch]:
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self._batch(g, device)

    def _batch(self, g: torch.Generator, device: str) -> Batch:
        if self.language is not None:
            key, ids = _token_slot(self.example)  # type: ignore[misc]
            if self.targets_arg is not None:
                tokens = self.language.sample(ids.shape[0], ids.shape[1] + 1, g).to(device)
                x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()  # models view() them
                inputs = _with(_with(self.example, key, x), self.targets_arg, y)
                return Batch(_to(inputs, device), own_loss)
            new = self.language.sample(ids.shape[0], ids.shape[1], g).to(device)
            return Batch(_to(_with(self.example, key, new), device), next_token_loss(new))
        assert self.teacher is not None
        args, kwargs = self.example
        slots: list[tuple[str | int, Any]] = [*enumerate(args), *kwargs.items()]
        first = next((k, v) for k, v in slots if isinstance(v, torch.Tensor) and v.is_floating_point())
        x = torch.randn(tuple(first[1].shape), generator=g)
        target = self.teacher(x)
        inputs = _to(_with(self.example, first[0], x), device)
        if len(self.output_shape) >= 2 and self.output_shape[-1] >= 2:
            labels = target.reshape(-1, self.output_shape[-1]).argmax(-1).to(device)

            def loss(output: Any) -> torch.Tensor:
                logits = _first_tensor(output)
                return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels)

            return Batch(inputs, loss)
        wanted = target.reshape(self.output_shape).to(device)
        return Batch(inputs, lambda output: (_first_tensor(output).float() - wanted).pow(2).mean())


def _to(inputs: Inputs, device: str) -> Inputs:
    from mulint.construct.inputs import to_device

    return to_device(inputs, device)


def own_loss(output: Any) -> torch.Tensor:
    """The loss a model returned beside its logits: its first scalar tensor."""
    items = (
        list(output.values()) if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else [output]
    )
    found = next((v for v in items if isinstance(v, torch.Tensor) and v.dim() == 0), None)
    if found is None:
        raise TypeError("the model was given next tokens as targets but returned no scalar loss")
    return found


def synthetic_task(example: Inputs, output: torch.Tensor, targets_arg: str | None = None) -> SyntheticTask:
    """The task for a model that maps ``example`` to ``output`` (one forward at the base width);
    ``targets_arg``: the forward's argument for next tokens, when it has one (see SyntheticTask)."""
    slot = _token_slot(example)
    shape = tuple(output.shape)
    per_position = slot is not None and output.dim() == 3 and tuple(output.shape[:2]) == tuple(slot[1].shape)
    if slot is not None and output.dim() == 3 and not per_position and targets_arg is not None:
        vocab = int(output.shape[-1])
        language = MarkovLanguage(vocab)
        return SyntheticTask(
            example,
            shape,
            f"a random sparse Markov language over {vocab} tokens ({BRANCHING} successors each, "
            f"entropy {language.entropy():.2f} nats/token), next tokens passed as `{targets_arg}`",
            language=language,
            targets_arg=targets_arg,
        )
    if per_position:
        vocab = int(output.shape[-1])
        language = MarkovLanguage(vocab)
        return SyntheticTask(
            example,
            shape,
            f"a random sparse Markov language over {vocab} tokens ({BRANCHING} successors each, "
            f"entropy {language.entropy():.2f} nats/token)",
            language=language,
        )
    floats = [v for v in [*example[0], *example[1].values()] if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not floats:
        raise ValueError("no float input to drive a teacher and no token ids with per-position logits")
    in_features = floats[0][0].numel()
    out_features = int(output[0].numel()) if output.dim() >= 1 else 1
    teacher = Teacher(in_features, out_features * (1 if output.dim() >= 1 else 1))
    kind = "class labels" if len(shape) >= 2 and shape[-1] >= 2 else "targets"
    return SyntheticTask(example, shape, f"{kind} from a fixed random teacher network of the input", teacher=teacher)


@dataclass
class UserData:
    """The user's batches (``--data FILE:FN``): ``FN(seed)`` returns an iterator of ``(inputs, targets)``
    pairs, ``inputs`` as the model takes them (a tensor, a tuple of args, a dict of kwargs) and
    ``targets`` aligned with the output: integer class ids (cross-entropy over the output's last
    dimension, e.g. next tokens already shifted) or floats (mean squared error)."""

    make: Callable[[int], Any]
    description: str

    def batches(self, seed: int, device: str = "cpu") -> Iterator[Batch]:
        from mulint.construct.inputs import normalise

        for item in self.make(seed):
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], torch.Tensor)):
                raise TypeError(
                    f"{self.description} must yield (inputs, targets) pairs with a tensor of targets, "
                    f"not {type(item).__name__}"
                )
            inputs, targets = _to(normalise(item[0]), device), item[1].to(device)
            yield Batch(inputs, _loss_against(targets))


def _loss_against(targets: torch.Tensor) -> Callable[[Any], torch.Tensor]:
    def loss(output: Any) -> torch.Tensor:
        out = _first_tensor(output)
        if not targets.is_floating_point():
            return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), targets.reshape(-1))
        return (out.float() - targets.float().reshape(out.shape)).pow(2).mean()

    return loss
