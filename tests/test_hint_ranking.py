"""Which of a file's top-level classes is the model: a library file whose helpers (an ALiBi bias, a
rotary embedding) are built by nothing the file parses as a model comes with the wrapper first, so
`inspect file.py` and the not-imported hint name the model, not a helper."""

import textwrap

from mulint.reading.safety import summarize

# A library-style file: helpers built through a cached getter function, blocks built by the wrapper,
# the wrapper taking a config object; the helpers come first in the file.
LIBRARY = """
import functools
import torch
import torch.nn as nn


class ALiBi(nn.Module):
    def __init__(self, n_heads: int):
        super().__init__()
        self.register_buffer("slopes", 2.0 ** -torch.arange(1, n_heads + 1))

    def forward(self, t):
        return self.slopes[:, None, None] * -torch.arange(t).abs()


class RotaryEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, dim, 2) / dim))

    def forward(self, t):
        return torch.outer(torch.arange(t), self.inv_freq)


@functools.lru_cache
def get_alibi(n_heads):
    return ALiBi(n_heads)


class DecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attn = nn.MultiheadAttention(config.hidden_size, config.num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(config.hidden_size, 4 * config.hidden_size), nn.GELU(),
                                 nn.Linear(4 * config.hidden_size, config.hidden_size))


class LanguageModelWrapper(nn.Module):
    def __init__(self, config: "LMConfig"):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
"""


def ranked(tmp_path, source, name="lib.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return summarize(path).top_level_models


def test_the_wrapper_that_takes_a_config_comes_first(tmp_path):
    models = ranked(tmp_path, LIBRARY)
    assert models[0] == "LanguageModelWrapper"
    assert set(models) == {"LanguageModelWrapper", "ALiBi", "RotaryEmbedding"}
    # a helper built by a function of the file ranks below one nothing builds
    assert models.index("RotaryEmbedding") < models.index("ALiBi")


def test_without_configs_the_top_of_the_module_tree_wins(tmp_path):
    source = """
        import torch.nn as nn

        class Scale(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.g = nn.Parameter(nn.init.ones_(nn.Parameter(__import__("torch").empty(dim))))

        class Mixer(nn.Module):
            def __init__(self, dim=64, depth=4):
                super().__init__()
                self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(dim, dim), nn.GELU()) for _ in range(depth)])
                self.norm = nn.LayerNorm(dim)
    """
    assert ranked(tmp_path, source) == ["Mixer", "Scale"]


def test_a_model_the_script_part_builds_is_not_a_helper(tmp_path):
    source = """
        import torch.nn as nn

        class Tiny(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.w = nn.Linear(d, d)

        class Other(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.w = nn.Linear(d, d)

        def build_other_thing():
            return Other(3).w

        if __name__ == "__main__":
            Tiny(8)
    """
    assert ranked(tmp_path, source) == ["Tiny", "Other"]
