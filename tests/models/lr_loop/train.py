"""Trains token_mixer.TokenMixer with a warm-up and cosine decay written by hand."""

import math

import torch
import torch.nn.functional as F

from token_mixer import TokenMixer

WARMUP, STEPS, MAX_LR, MIN_LR = 100, 2000, 6e-4, 6e-5


def get_lr(step):
    if step < WARMUP:
        return MAX_LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / (STEPS - WARMUP)
    return MIN_LR + 0.5 * (1 + math.cos(math.pi * progress)) * (MAX_LR - MIN_LR)


def main():
    model = TokenMixer(d_model=512)
    optimizer = model.configure_optimizers(0.1, MAX_LR, (0.9, 0.95), "cpu")
    for step in range(STEPS):
        lr = get_lr(step)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr * param_group.get("lr_scale", 1.0)
        tokens = torch.randint(0, 40, (8, 33))
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()
