"""Branches of forward chosen by its arguments: nanoGPT-style models compute the logits one way when
``targets`` are given (training) and another way without (inference), some only in train mode.

The default trace (default arguments, eval mode) is the inference branch. When forward tests a
targets-like argument or ``self.training``, the training branch is traced too: targets given (ids
shaped like the input's, or one label per example), the model in train mode.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn as nn

from mulint.construct.inputs import Inputs

_Variant = TypeVar("_Variant")  # one model's inputs, or a pair for two widths


TARGET_ARGS = ("targets", "target", "labels", "label", "y")


@dataclass(frozen=True)
class Branch:
    name: str  # "training", "inference"
    description: str  # for messages: "the inference branch, `targets=None`"
    trains: bool  # the branch a training step runs: the one learning-rate findings are judged on


def _forward_tests(model: nn.Module) -> set[str]:
    """Names forward's own `if`s test (its arguments, and `training` for ``self.training``) where a
    branch computes more than a loss: calls a layer or scales a value. HF's ``if labels is not None:
    loss = self.loss_function(...)`` does not, and is not traced twice."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(model).forward)))
    except (OSError, TypeError, SyntaxError):
        return set()
    tested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp)) and _computes(node):
            for part in ast.walk(node.test):
                if isinstance(part, ast.Name):
                    tested.add(part.id)
                elif isinstance(part, ast.Attribute) and part.attr == "training":
                    tested.add("training")
    return tested


def _computes(branch: ast.If | ast.IfExp) -> bool:
    bodies = [branch.body, branch.orelse]
    nodes = [n for body in bodies for stmt in (body if isinstance(body, list) else [body]) for n in ast.walk(stmt)]
    for node in nodes:
        if isinstance(node, ast.Call) and _self_call(node.func) and "loss" not in _last_name(node.func).lower():
            return True
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, (ast.Mult, ast.Div, ast.Pow)):
            return True
    return False


def _self_call(func: ast.expr) -> bool:
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id == "self"


def _last_name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _targets_arg(model: nn.Module, inputs: Inputs) -> str | None:
    try:
        params = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return None
    args, kwargs = inputs
    free = [p for p in params[len(args) :] if p not in kwargs]
    return next((p for p in TARGET_ARGS if p in free), None)


def _target_values(inputs: Inputs) -> list[torch.Tensor]:
    """Candidate targets: ids shaped like the token input (next-token targets), else one label each."""
    args, kwargs = inputs
    first = next((t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)), None)
    if first is None:
        return []
    shapes = [tuple(first.shape)] if not first.is_floating_point() else []
    shapes.append(tuple(first.shape[:1]))
    return [torch.zeros(s, dtype=torch.long, device=first.device) for s in dict.fromkeys(shapes)]


def training_variants(model: nn.Module, inputs: Inputs) -> tuple[Branch, Branch, list[Inputs]] | None:
    """(the default branch, the training branch, inputs for it to try) when forward has both."""
    tested = _forward_tests(model)
    arg = _targets_arg(model, inputs)
    if arg is not None and arg in tested:
        args, kwargs = inputs
        variants = [(args, {**kwargs, arg: value}) for value in _target_values(inputs)]
        mode = ", train mode" if "training" in tested else ""
        return (
            Branch("inference", f"the inference branch, `{arg}=None`", trains=False),
            Branch("training", f"the training branch, `{arg}` given{mode}", trains=True),
            variants,
        )
    if "training" in tested:
        return (
            Branch("eval", "the eval-mode branch, `model.eval()`", trains=False),
            Branch("train", "the train-mode branch, `model.train()`", trains=True),
            [inputs],
        )
    return None


@contextlib.contextmanager
def train_mode(*models: nn.Module):
    """Train mode while the training branch is traced (dropout is a layout op to the analysis)."""
    for model in models:
        model.train()
    try:
        yield
    finally:
        for model in models:
            model.eval()


def first_tracing(variants: list[_Variant], trace: Callable[[_Variant], Any]) -> Any | None:
    """The first variant that traces; None when none does (the branch is then not analysed)."""
    from mulint.errors import MulintError

    for inputs in variants:
        try:
            return trace(inputs)
        except MulintError:
            continue
    return None
