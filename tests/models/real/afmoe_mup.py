# Arcee's AFMoE as huggingface/transformers ships it (transformers/models/afmoe/modeling_afmoe.py,
# Apache-2.0): a decoder with token-choice top-k routing (sigmoid scores, zero-initialised router, an
# expert bias), shared experts, grouped expert weights held as 3-D tensors, and `mup_enabled`, which
# multiplies the embeddings by sqrt(hidden_size). The model code is transformers' own; below is a config
# and optimizer a µP user of it writes: heads grow with the width at head_dim 16, the init std shrinks
# like width^-½ (which the embedding multiplier undoes for the embedding), and the learning rates per role.
import math

import torch
from transformers import AfmoeConfig, AfmoeForCausalLM

BASE_WIDTH = 64
HEAD_DIM = 16


def make_model(hidden_size=BASE_WIDTH, initializer_range=None):
    width_mult = hidden_size / BASE_WIDTH
    heads = hidden_size // HEAD_DIM
    config = AfmoeConfig(
        vocab_size=128, hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        moe_intermediate_size=hidden_size, num_hidden_layers=2, num_dense_layers=1,
        num_attention_heads=heads, num_key_value_heads=heads, head_dim=HEAD_DIM,
        num_experts=4, num_experts_per_tok=2, num_shared_experts=1,
        max_position_embeddings=64, sliding_window=16, global_attn_every_n_layers=2,
        initializer_range=initializer_range or 0.02 / math.sqrt(width_mult),
        mup_enabled=True, tie_word_embeddings=False,
    )
    return AfmoeForCausalLM(config)


def make_optimizer(model, lr=1e-3):
    width_mult = model.config.hidden_size / BASE_WIDTH
    matrices, embedding, vectors = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("embed_tokens.weight"):
            embedding.append(p)
        elif p.dim() >= 2:  # attention, experts (3-D), router, lm_head
            matrices.append(p)
        else:
            vectors.append(p)
    return torch.optim.AdamW([
        {"params": matrices, "lr": lr / width_mult},
        # the embedding's multiplier grows like sqrt(width): its lr shrinks by as much
        {"params": embedding, "lr": lr / math.sqrt(width_mult)},
        {"params": vectors, "lr": lr},
    ], lr=lr, eps=1e-12, weight_decay=0.0)
