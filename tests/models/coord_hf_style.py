"""A Llama-like causal LM written the way Hugging Face models are: a PretrainedConfig, a
PreTrainedModel whose ``_init_weights`` sets every init, ``post_init()``. µP through config fields
(``mup_base_hidden_size``): hidden init ∝ 1/sqrt(width) in ``_init_weights``, a zero-initialised
readout whose logits are multiplied by base/width, 1/d attention, and an optimizer factory that
trains hidden matrices at lr × base/width. ``standard`` builds it with µP off.

The base width is the default, 256.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel


class TinyLlamaConfig(PretrainedConfig):
    model_type = "tiny_llama_coord"

    def __init__(self, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 vocab_size=64, max_position_embeddings=32, initializer_range=0.02, mup_base_hidden_size=256,
                 **kwargs):
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.mup_base_hidden_size = mup_base_hidden_size  # None: standard parametrization
        super().__init__(**kwargs)

    @property
    def width_mult(self) -> float:
        return self.hidden_size / self.mup_base_hidden_size if self.mup_base_hidden_size else 1.0


class RMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class TinyAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        base = config.mup_base_hidden_size
        self.base_head_dim = base // self.heads if base else None

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (p(x).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        head_dim = q.shape[-1]
        scale = math.sqrt(self.base_head_dim) / head_dim if self.base_head_dim else None
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, c))


class TinyDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size)
        self.self_attn = TinyAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size)
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class TinyLlamaForCausalLM(PreTrainedModel):
    config_class = TinyLlamaConfig

    def __init__(self, config: TinyLlamaConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(TinyDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if module is self.lm_head:
            if self.config.mup_base_hidden_size:
                module.weight.zero_()  # µP readout: zero init
            else:
                module.weight.normal_(0.0, std)
        elif isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std / math.sqrt(self.config.width_mult))
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.embed_tokens(input_ids) + self.embed_positions(positions)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(self.norm(h)) / self.config.width_mult


def create_optimizer(model, lr=1e-3):
    hidden = [p for n, p in model.named_parameters() if n.startswith("layers.") and p.dim() == 2]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": hidden, "lr": lr / model.config.width_mult}, {"params": rest, "lr": lr}],
                             weight_decay=0.0)


def standard(hidden_size: int = 256) -> TinyLlamaForCausalLM:
    return TinyLlamaForCausalLM(TinyLlamaConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                                                mup_base_hidden_size=None))


def mup_model(hidden_size: int = 256) -> TinyLlamaForCausalLM:
    return TinyLlamaForCausalLM(TinyLlamaConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size))
