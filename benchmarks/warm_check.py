"""The warm server against the direct path, in one run: the client's own start-up, a re-check of
examples/nanogpt_sp.py after an edit (a cache miss), and a cache hit.

Usage: python benchmarks/warm_check.py [--repeat N]
Everything runs in a scratch project with its own cache and runtime folder; the server it starts is
stopped at the end. Each figure is the wall time of a fresh `python -m mulint ...` process, the median
of N runs (default 5). Targets: client start-up <= 0.15 s, warm cache miss <= 1.0 s, warm
cache hit <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = "nanogpt_sp.py"
# What `mulint check --daemon` does before it sends its request: start Python, read the config, make the
# server's key, connect.
CLIENT = (
    "from pathlib import Path\n"
    "from mulint.server import client\n"
    "root, key = client.settings(client.config_table(['nanogpt_sp.py']))\n"
    "client.connect(root).close()\n"
)


def timed(args: list[str], folder: Path, env: dict, expect: int | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if expect is not None and done.returncode != expect:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return seconds


def warmed_up(mulint: list[str], folder: Path, env: dict, within: float = 120.0) -> None:
    """Wait until the server has warmed torch.export up (it does so once idle), so that neither path's
    figures include it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = subprocess.run(
            [*mulint, "server", "status", "--format", "json"], cwd=folder, env=env, capture_output=True
        )
        if done.returncode == 0 and json.loads(done.stdout).get("warmed up", True):  # (absent: an older server)
            return
        time.sleep(0.5)
    raise SystemExit(f"the server did not warm up within {within:g} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    scratch = Path(tempfile.mkdtemp(prefix="mlb", dir="/tmp"))  # AF_UNIX paths are short
    folder = scratch / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[tool.mulint]\n")
    source = (ROOT / "examples" / TARGET).read_text()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(ROOT), MULINT_CACHE_DIR=str(scratch / "cache"), MULINT_RUNTIME_DIR=str(scratch / "run"))
    mulint = [sys.executable, "-m", "mulint"]
    edits = iter(range(1_000_000))

    def edited() -> None:  # a new comment line: the file's bytes change, the cache misses
        (folder / TARGET).write_text(source + f"# edit {next(edits)}\n")

    rows: dict[str, dict[str, list[float]]] = {}
    try:
        timed([*mulint, "server", "start"], folder, env, expect=0)
        warmed_up(mulint, folder, env)
        for path, flag in (("direct", "--no-daemon"), ("warm", "--daemon")):
            row = rows.setdefault(path, {"start-up": [], "cache miss": [], "cache hit": []})
            check = [*mulint, "check", TARGET, flag]
            edited()
            timed(check, folder, env, expect=1)  # once before the clock: the forkserver's or server's first fork
            for _ in range(repeat):
                if path == "warm":
                    row["start-up"].append(timed([sys.executable, "-c", CLIENT], folder, env, expect=0))
                else:  # the direct path's own start-up: Python and mulint's command line, up to the analysis
                    row["start-up"].append(timed([*mulint, "--version"], folder, env, expect=0))
                edited()
                row["cache miss"].append(timed(check, folder, env, expect=1))
                row["cache hit"].append(timed(check, folder, env, expect=1))
    finally:
        subprocess.run([*mulint, "server", "stop"], cwd=folder, env=env, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    targets = {"start-up": 0.15, "cache miss": 1.0, "cache hit": 0.3}
    print(f"mulint check {TARGET}: wall time of a fresh process, median (min) of {repeat} runs, {os.cpu_count()} cores")
    print(f"{'':12} {'direct':>16} {'warm server':>16}   target (warm)")
    for name, target in targets.items():
        cells = [f"{statistics.median(rows[p][name]):.2f} s ({min(rows[p][name]):.2f})" for p in ("direct", "warm")]
        print(f"{name:12} {cells[0]:>16} {cells[1]:>16}   <= {target:g} s")


if __name__ == "__main__":
    main()
