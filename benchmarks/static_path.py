"""Speed of the static path and of a cached model check.

Usage: python benchmarks/static_path.py
1. `mulint check --no-exec` over every .py file of the installed transformers package: files per
   second, findings, crashes (an internal error on any file is a crash).
2. Start-up: `mulint check` of one training script in a fresh process (no torch import).
3. A repeated `mulint check` of examples/nanogpt_sp.py: first run and cache hit, fresh processes.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def static_over_transformers() -> None:
    import transformers

    from mulint.engine.checker import expand, run_check
    from mulint.engine.settings import Settings

    directory = Path(transformers.__file__).parent
    files = expand([str(directory)], [])
    start = time.perf_counter()
    crashes = 0
    findings = errors = 0
    for path in files:  # one at a time, so a crash is attributed to its file
        try:
            result = run_check(Settings(paths=(path,), no_exec=True, cache=False))
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            crashes += 1
            print(f"crash on {path}: {type(exc).__name__}: {exc}")
            continue
        findings += len(result.findings)
        errors += len([e for e in result.errors if e["step"] != "import"])
    elapsed = time.perf_counter() - start
    print(
        f"static path: {len(files)} files of transformers in {elapsed:.1f} s = {len(files) / elapsed:.0f} files/s; "
        f"{findings} findings, {errors} files reported as errors, {crashes} crashes"
    )


def timed(cmd, env) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
    return time.perf_counter() - start


def startup_and_cache() -> None:
    env = {**os.environ, "MULINT_CACHE_DIR": tempfile.mkdtemp()}
    mulint = [sys.executable, "-m", "mulint", "check"]
    script = timed(mulint + ["examples/train_nanogpt_sp.py"], env)
    first = timed(mulint + ["examples/nanogpt_sp.py"], env)
    hit = timed(mulint + ["examples/nanogpt_sp.py"], env)
    print(f"start-up, one training script (static): {script:.2f} s")
    print(f"model check of examples/nanogpt_sp.py: first {first:.2f} s, cache hit {hit:.2f} s")


if __name__ == "__main__":
    static_over_transformers()
    startup_and_cache()
