"""Discovery: which models a bare file holds (classes, factories), which builders of other things are
not models, and which models are defined where a plain import cannot reach them."""

import json
import textwrap

import pytest

from mulint.reading.safety import summarize

BACKBONE = """
import torch.nn as nn
from dataclasses import dataclass


@dataclass
class WideConfig:
    width: int = 32
    depth: int = 2


class Wide(nn.Module):
    def __init__(self, config: WideConfig):
        super().__init__()
        self.stem = nn.Linear(5, config.width)
        self.head = nn.Linear(config.width, 1)

    def forward(self, x):
        return self.head(self.stem(x).sigmoid())


class Vocabulary:
    def __init__(self, size=10):
        self.size = size


def make_wide(width=32):
    return Wide(WideConfig(width=width))


def make_vocabulary(size=10):
    return Vocabulary(size)
"""


def write(folder, name, source):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def sibling(tmp_path):
    write(tmp_path, "backbone.py", BACKBONE)
    return tmp_path


def models_of(folder, source):
    return summarize(write(folder, "entry.py", "import torch\nimport torch.nn as nn\n" + textwrap.dedent(source)))


@pytest.mark.parametrize(
    "source, factory",
    [
        (
            """
     from backbone import Wide, WideConfig
     def make_model(width=32):
         return Wide(WideConfig(width=width))
     """,
            "make_model",
        ),
        (
            """
     import backbone
     def build_wide(width=32):
         net = backbone.Wide(backbone.WideConfig(width=width))
         net.requires_grad_(True)
         return net
     """,
            "build_wide",
        ),
        (
            """
     from backbone import Wide as Trunk, WideConfig
     def create_trunk(width=32):
         return Trunk(WideConfig(width)).to(torch.float32)
     """,
            "create_trunk",
        ),
        (
            """
     def get_model(width=16):
         return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1))
     """,
            "get_model",
        ),
        (
            """
     def make_encoder(width: int = 16) -> nn.Module:
         layers = [nn.Linear(width, width) for _ in range(2)]
         return nn.Sequential(*layers)
     """,
            "make_encoder",
        ),
        (
            """
     import transformers
     def build_lm(hidden=64):
         config = transformers.LlamaConfig(hidden_size=hidden)
         return transformers.AutoModelForCausalLM.from_config(config)
     """,
            "build_lm",
        ),
        (
            """
     from transformers import GPT2Config, GPT2LMHeadModel
     def make_gpt2(n_embd=64):
         return GPT2LMHeadModel(GPT2Config(n_embd=n_embd))
     """,
            "make_gpt2",
        ),
        (
            """
     def make_model(width=8):
         class Local(nn.Module):
             def __init__(self):
                 super().__init__()
                 self.fc = nn.Linear(width, width)
         return Local()
     """,
            "make_model",
        ),
        (
            """
     from backbone import Wide, WideConfig
     def _assemble(config):
         return Wide(config)
     def make_model(width=32):
         return _assemble(WideConfig(width=width))
     """,
            "make_model",
        ),
        (
            """
     import backbone
     def make_model(width=32):
         return backbone.make_wide(width)
     """,
            "make_model",
        ),
        (
            """
     from backbone import make_wide as build
     def create_model(width=16):
         model = build(width)
         return model
     """,
            "create_model",
        ),
    ],
)
def test_factories_are_found(sibling, source, factory):
    assert models_of(sibling, source).top_level_models == [factory]


@pytest.mark.parametrize(
    "source",
    [
        """
    from backbone import Vocabulary
    def build_optimizer(model, lr=1e-3):
        return torch.optim.AdamW(model.parameters(), lr=lr)
    def make_dataset(n=4):
        return [torch.randn(3) for _ in range(n)]
    def get_batch(data, i):
        return data[i]
    def make_loss():
        return nn.CrossEntropyLoss()
    def example_inputs(model):
        return (torch.randn(2, 3),)
    def make_mask(n=4):
        return torch.tril(torch.ones(n, n))
    def build_vocabulary():
        return Vocabulary(12)
    def _make_model():
        return nn.Linear(2, 2)
    """,
        """
    import backbone
    def make_vocab_model(size=12):
        return backbone.make_vocabulary(size)
    """,
    ],
)
def test_other_builders_are_not_models(sibling, source):
    assert models_of(sibling, source).top_level_models == []


def test_a_factory_a_model_class_calls_is_a_part_not_a_model(tmp_path):
    summary = models_of(
        tmp_path,
        """
        def make_mlp(width):
            return nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

        class Mixer(nn.Module):
            def __init__(self, width=16):
                super().__init__()
                self.mlp = make_mlp(width)

            def forward(self, x):
                return self.mlp(x)
        """,
    )
    assert summary.top_level_models == ["Mixer"]


def test_a_class_over_a_model_class_of_a_local_file_is_a_model(sibling):
    summary = models_of(
        sibling,
        """
        from backbone import Wide

        class Tuned(Wide):
            pass

        class NotAModule(object):
            pass
        """,
    )
    assert summary.module_classes == ["Tuned"]


def test_models_out_of_reach_are_reported(tmp_path):
    summary = models_of(
        tmp_path,
        """
        def experiment():
            class Probe(nn.Module):
                def forward(self, x):
                    return x
            return 3

        try:
            import flash_attn
            class FlashBlock(nn.Module):
                pass
        except ImportError:
            flash_attn = None

        if __name__ == "__main__":
            class Scratch(nn.Module):
                pass

            def make_model():
                return Scratch()
        """,
    )
    found = {name: (reason, hint) for name, _, reason, hint in summary.unanalysable}
    assert set(found) == {"Probe", "FlashBlock", "Scratch", "make_model"}
    assert found["Probe"][0] == "defined inside function experiment"
    assert "try block" in found["FlashBlock"][0]
    assert found["Scratch"][0] == 'defined inside `if __name__ == "__main__":`'
    assert "above" in found["make_model"][1]
    lines = {name: line for name, line, _, _ in summary.unanalysable}
    assert lines["Scratch"] == 18


@pytest.mark.slow
def test_a_factory_of_an_imported_model_is_analysed_by_a_plain_check(sibling, mulint):
    path = write(
        sibling,
        "entry.py",
        """
        from backbone import Wide, WideConfig

        def make_model(width=32):
            return Wide(WideConfig(width=width))
        """,
    )
    code, out, err = mulint("check", str(path), "--format", "json")
    targets = json.loads(out)["targets"]
    assert targets[0]["import_safe"] is True and targets[0]["models"] == ["make_model"]
    assert any(t.get("mode") == "model" and t["target"].endswith("entry.py:make_model") for t in targets), err


def test_a_factory_in_a_conditional_block_is_out_of_reach_but_one_holding_its_class_is_not(tmp_path):
    summary = models_of(
        tmp_path,
        """
        def make_model(width=8):
            class Inner(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(width, width)
            return Inner()

        if torch.cuda.is_available():
            def build_gpu_model():
                return nn.Linear(4, 4)
        """,
    )
    assert summary.top_level_models == ["make_model"]
    assert [(name, reason) for name, _, reason, _ in summary.unanalysable] == [
        ("build_gpu_model", "defined inside an if block (line 11)")
    ]
