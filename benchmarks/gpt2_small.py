"""A GPT-2-small-sized model (124M: 12 layers, 12 heads, width 768, vocab 50257, tied head) for the
benchmarks. Built only on the meta device at full size by mulint."""

from transformers import GPT2Config, GPT2LMHeadModel


def gpt2_small(n_embd: int = 768):
    return GPT2LMHeadModel(
        GPT2Config(n_embd=n_embd, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024, use_cache=False)
    )
