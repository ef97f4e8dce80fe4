"""Speed of the static pass over one folder holding many files.

Usage: python benchmarks/many_files.py [COUNT]   (default 3000; MULINT_ROOT=DIR times another checkout)
Writes COUNT small modules into one temporary folder (each imports a standard module, a sibling
that does not exist and a relative name, as real trees do), then times `mulint check FOLDER
--no-cache` in a fresh process (no model: the static pass alone). The pass must grow linearly with
the number of files: resolving each import once listed the whole folder, so 3000 files took 12-30 s.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mulint-many-") as tmp:
        folder = Path(tmp) / "many"
        folder.mkdir()
        for i in range(count):
            (folder / f"mod_{i}.py").write_text(
                f"import os\nimport helpers_{i % 10}\nfrom . import x\nX = {i}\n\n\ndef f(a):\n    return a + X\n"
            )
        env = {**os.environ, "PYTHONPATH": os.environ.get("MULINT_ROOT", str(ROOT))}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mulint", "check", str(folder), "--no-cache"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        summary = (done.stdout + done.stderr).strip().splitlines()[-1:]
        print(
            f"{count} files in one folder: {elapsed:.2f} s wall, {cpu:.2f} s CPU (exit {done.returncode}; "
            f"{' '.join(summary)})"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
