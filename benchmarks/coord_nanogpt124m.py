"""`mulint coord` on nanoGPT's 124M config (12 layers, 768 wide, 50257 vocab, block 1024): the SP
model as shipped must FAIL, and the same file after `mulint check --fix --unsafe-fixes` must PASS,
each within a minute on a 2-core CPU.

Usage: python benchmarks/coord_nanogpt124m.py
Works on a copy of examples/nanogpt_sp.py in a temporary directory, with the 124M config written
into its GPTConfig defaults. Prints the wall time of each command (the CLI end to end, its worker
process included).
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_124M = {"block_size": 1024, "vocab_size": 50257, "n_layer": 12, "n_head": 12, "n_embd": 768}


def write_124m(directory: Path) -> Path:
    source = (ROOT / "examples" / "nanogpt_sp.py").read_text()
    for field, value in CONFIG_124M.items():
        source, n = re.subn(rf"({field}: int = )\d+", rf"\g<1>{value}", source)
        assert n == 1, field
    path = directory / "nanogpt_124m.py"
    path.write_text(source)
    return path


def mulint(*args: str) -> tuple[int, str, float]:
    """Exit code, output and wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mulint", *args], capture_output=True, text=True, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def coord(label: str, path: Path) -> None:
    code, out, wall = mulint("coord", str(path))
    print(f"{label}: exit {code}, wall {wall:.1f} s")
    print("\n".join("  " + line for line in out.splitlines()[:8]))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        sp = write_124m(Path(tmp))
        coord("SP as shipped", sp)
        code, out, wall = mulint("check", "--fix", "--unsafe-fixes", str(sp))
        print(f"check --fix --unsafe-fixes: exit {code}, wall {wall:.1f} s: {out.strip().splitlines()[-1]}")
        coord("after the fix", sp)
