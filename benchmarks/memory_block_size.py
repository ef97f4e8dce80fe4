"""Peak memory of `mulint check` against the block size of a nanoGPT-style model.

Usage: python benchmarks/memory_block_size.py [BLOCK_SIZE ...]   (default: 1024 16384 32768)

The model registers a (block_size, block_size) causal mask buffer in every attention layer, as
nanoGPT does without flash attention. The structure is built on the meta device (free); the small
CPU models that measure the init cap block_size, so the peak must not grow with it.
Each block size is measured in a fresh process that runs `mulint check --no-cache` as its child and
reads `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`. The check's workers are children of its worker
server, which the check does not wait for: the measuring process makes itself the subreaper of what
the check leaves behind (Linux), so it waits for the server, and the server's waited workers count.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [1024, 16384, 32768]

MODEL = """
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int = BLOCK_SIZE
    vocab_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.n_head = config.n_head
        n = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))
"""


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Become the parent of the descendants the check leaves running (its worker server)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: only the check's own process and what it waits for are counted


def reap_orphans(timeout: float = 60.0) -> None:
    """Wait for the adopted processes, which exit once the check has (their pipe to it is closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def measure_one(block_size: int) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit code) of one `mulint check` of the model at this block size."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"gpt_block_{block_size}.py"
        path.write_text(MODEL.replace("BLOCK_SIZE", str(block_size)))
        adopt_orphans()
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mulint", "check", "--no-cache", f"{path}:GPT"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        reap_orphans()
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kb / 1024, wall, done.returncode


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:  # a fresh process per size: RUSAGE_CHILDREN is a maximum over all children
        peak, wall, code = measure_one(int(argv[1]))
        print(f"{peak:.0f} {wall:.2f} {code}")
        return
    sizes = [int(a) for a in argv] or DEFAULT
    print("| block_size | mask entries per layer | `mulint check` peak RSS | wall | exit code |")
    print("|---|---|---|---|---|")
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True
        ).stdout.split()
        peak, wall, code = float(out[0]), float(out[1]), int(out[2])
        print(f"| {size} | {size * size:,} | {peak:.0f} MB | {wall:.1f} s | {code} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
