# IBM's Granite as huggingface/transformers ships it (transformers/models/granite/modeling_granite.py,
# Apache-2.0): a Llama whose config carries µP's multipliers (embedding_multiplier on the embeddings,
# attention_multiplier as the attention scale, logits_scaling dividing the logits, residual_multiplier).
# The model code is transformers' own; below is the config and the optimizer a µP user of it writes,
# every multiplier derived from the width as in IBM's µP recipe (PowerLM/Granite 3: hidden init
# shrinking like width^-½ and the embedding multiplier growing back by as much, attention scaled by
# 1/head_dim, logits divided by the width multiplier, hidden learning rates ∝ 1/width).
import math

import torch
from transformers import GraniteConfig, GraniteForCausalLM

BASE_WIDTH = 64


def make_model(hidden_size=BASE_WIDTH, attention_multiplier=None):
    width_mult = hidden_size / BASE_WIDTH
    heads = 4
    config = GraniteConfig(
        vocab_size=256, hidden_size=hidden_size, intermediate_size=4 * hidden_size, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=64,
        initializer_range=0.02 / math.sqrt(width_mult),
        embedding_multiplier=12.0 * math.sqrt(width_mult),
        attention_multiplier=attention_multiplier or 1.0 / (hidden_size // heads),
        logits_scaling=8.0 * width_mult,
        residual_multiplier=0.22,
        tie_word_embeddings=False,
    )
    return GraniteForCausalLM(config)


def make_optimizer(model, lr=1e-2):
    width_mult = model.config.hidden_size / BASE_WIDTH
    hidden, embedding, other = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("embed_tokens.weight"):
            embedding.append(p)
        elif p.dim() == 2 and "lm_head" not in name:
            hidden.append(p)
        else:
            other.append(p)
    return torch.optim.AdamW([
        {"params": hidden, "lr": lr / width_mult},
        # the embedding's multiplier grows like sqrt(width): its lr shrinks by as much
        {"params": embedding, "lr": lr / math.sqrt(width_mult)},
        # lm_head (its logits divided by the width multiplier), norms
        {"params": other, "lr": lr},
    ], lr=lr, weight_decay=0.0)
