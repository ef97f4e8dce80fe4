"""Property: a file's verdict is the same on every run, analysed afresh or taken from the cache, for
small generated models (init scales, readout multiplier, depth, a data-dependent branch)."""

import json
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow  # many checks of models in workers

INITS = {"default": "", "sp": "nn.init.normal_({p}, std=0.02)", "mup": "nn.init.normal_({p}, std=width ** -0.5)"}


def model_source(hidden_init: str, readout_zero: bool, depth: int, multiplier: bool, branch: bool) -> str:
    hidden = INITS[hidden_init].format(p="layer.weight")
    return textwrap.dedent(f"""
        import torch
        import torch.nn as nn


        class Generated(nn.Module):
            def __init__(self, width: int = 64):
                super().__init__()
                self.width = width
                self.inp = nn.Linear(12, width)
                self.layers = nn.ModuleList()
                for _ in range({depth}):
                    layer = nn.Linear(width, width)
                    {hidden or "pass"}
                    self.layers.append(layer)
                self.out = nn.Linear(width, 5)
                {"nn.init.zeros_(self.out.weight)" if readout_zero else "pass"}

            def forward(self, x):
                h = self.inp(x).relu()
                for layer in self.layers:
                    h = layer(h).relu()
                {"if (x.sum() > 0).item():" if branch else "if True:"}
                    h = h * 1.0
                y = self.out(h)
                return y * (64 / self.width) if {multiplier} else y
    """)


def verdict(mulint, path: Path, *args: str) -> tuple[list, bool]:
    code, out, err = mulint("check", f"{path}:Generated", "--format", "json", *args)
    report = json.loads(out)
    targets = [t for t in report["targets"] if t.get("mode") == "model"]
    findings = sorted((f["code"], f["line"], f["parameter"], f["message"]) for f in report["findings"])
    errors = sorted((e["step"], e["message"]) for e in report["errors"])
    return (code, findings, errors), bool(targets and targets[0].get("cached"))


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    hidden_init=st.sampled_from(sorted(INITS)),
    readout_zero=st.booleans(),
    depth=st.integers(0, 2),
    multiplier=st.booleans(),
    branch=st.booleans(),
)
def test_the_verdict_is_the_same_on_every_run_with_and_without_the_cache(
    mulint, hidden_init, readout_zero, depth, multiplier, branch
):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.py"
        path.write_text(model_source(hidden_init, readout_zero, depth, multiplier, branch))
        fresh, _ = verdict(mulint, path, "--no-cache")
        stored, cached_first = verdict(mulint, path)
        reused, cached_again = verdict(mulint, path)
        assert not cached_first and cached_again  # the second cached run is a hit
        assert fresh == stored == reused
