"""GPT-2 small (transformers' GPT2LMHeadModel) built from a GPT2Config, so that both its width (n_embd)
and its depth (n_layer) can be varied: the target of the depth cost figures in benchmarks/README.md."""

from transformers import GPT2Config, GPT2LMHeadModel

SMALL = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024, use_cache=False)


def gpt2_small(config: GPT2Config = SMALL):
    return GPT2LMHeadModel(config)
