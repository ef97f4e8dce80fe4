"""How long `mulint transfer` takes at its default budget, and what it says, on the shipped GPT pair.

    python benchmarks/transfer.py [--save DIR] [--steps N] [--seeds K] [--widths W1,W2,...] [TARGET ...]

Each target is swept afresh (`--no-store`) in mulint's workers; prints the wall time, the verdict, the
slope and each width's best lr. The machine's load is printed too: on a shared machine the time is
an upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

DEFAULT = ["examples/nanogpt_sp.py", "examples/nanogpt_mup.py"]


def main(argv: list[str]) -> None:
    save = None
    if "--save" in argv:  # keep each sweep's JSON (every curve) in this folder
        i = argv.index("--save")
        save, argv = argv[i + 1], argv[:i] + argv[i + 2 :]
    targets = [a for a in argv if a.endswith(".py") or ".py:" in a] or DEFAULT
    extra = [a for a in argv if a not in targets]  # options and their values, passed on
    for target in targets:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "mulint", "transfer", target, "--no-store", "--format", "json", *extra],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        if run.returncode == 2:
            print(f"{target}: error\n{run.stderr}")
            continue
        result = json.loads(run.stdout)
        if save:
            name = "_".join(
                [os.path.basename(target).replace(".py", ""), *(a.strip("-").replace(",", "-") for a in extra)]
            )
            with open(os.path.join(save, f"{name}.json"), "w") as f:
                f.write(run.stdout)
        v = result["verdict"]
        optima = ", ".join(f"{w}: 2^{o['log2_value']:.2f}" for w, o in zip(v["widths"], v["optima"]))
        print(
            f"{target}: {v['status']} in {seconds:.0f} s (load {load:.1f}); {result['trials']} trials, "
            f"{result['steps']} steps, {result['seeds']} seeds; slope {v['slope']:+.2f} "
            f"[{v['slope_interval'][0]:+.2f}, {v['slope_interval'][1]:+.2f}]; drift {v['drift']:+.2f}; {optima}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
