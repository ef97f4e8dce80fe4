"""A nanoGPT-style training script: builds the SP GPT and trains it with nanoGPT's cosine schedule.

Its top level runs a training loop, so mulint never imports it: it gets the static rules only,
and MU303 flags the schedule that writes one learning rate into every param group.
"""

import math

import torch

from nanogpt_sp import GPT, GPTConfig

learning_rate, min_lr, warmup_iters, max_iters = 6e-4, 6e-5, 5, 20


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    ratio = (it - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


torch.manual_seed(0)
config = GPTConfig()
model = GPT(config)
optimizer = model.configure_optimizers(0.1, learning_rate, (0.9, 0.95), "cpu")
for it in range(max_iters):
    lr = get_lr(it)
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    idx = torch.randint(0, config.vocab_size, (4, 32))
    logits, loss = model(idx[:, :-1].contiguous(), idx[:, 1:].contiguous())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    print(f"iter {it}: loss {loss.item():.4f}")
