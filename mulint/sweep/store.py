"""Finished trials of transfer sweeps, kept so that an interrupted sweep resumes and a repeat is free.

One JSON line per trial, appended and flushed as each finishes, keyed like the result cache: the
target's content digest and the options that change training, then width, log2 lr, seed and steps.
A line cut short by a kill is ignored on reading; only the parent process writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrialKey:
    sweep: str  # digest of the target's code and the options that change training
    width: int
    log2_value: float
    seed: int
    steps: int

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class TrialResult:
    losses: tuple[float, ...]  # the training loss at every step run
    initial_loss: float
    diverged: bool  # NaN/inf or above the initial loss: stopped early, counted at the initial loss
    seconds: float

    @classmethod
    def from_dict(cls, data: dict) -> TrialResult:
        """A result as ``asdict`` wrote it (a store line, a worker's or a Ray actor's answer)."""
        return cls(
            tuple(float(x) for x in data["losses"]),
            float(data["initial_loss"]),
            bool(data["diverged"]),
            float(data["seconds"]),
        )

    @property
    def metric(self) -> float:
        """The mean loss over the last quarter of steps; a diverged run counts at its initial loss."""
        if self.diverged or not self.losses:
            return self.initial_loss
        tail = self.losses[-max(1, len(self.losses) // 4) :]
        return sum(tail) / len(tail)


class TrialStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: dict[str, TrialResult] = {}
        self._read()

    def _read(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
                result = TrialResult.from_dict(entry)
                self._done[json.dumps(entry["key"], sort_keys=True)] = result
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted write, or not ours

    def get(self, key: TrialKey) -> TrialResult | None:
        return self._done.get(key.text())

    def put(self, key: TrialKey, result: TrialResult) -> None:
        self._done[key.text()] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": asdict(key), **asdict(result)}, allow_nan=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self._done)
