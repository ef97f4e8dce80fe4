"""Sweep mulint over small configs of popular HF transformers architectures.

Usage:
    python benchmarks/sweep.py                  # one line per architecture, then totals
    python benchmarks/sweep.py --only gpt2,t5   # a subset
    python benchmarks/sweep.py --markdown       # the README table
    python benchmarks/sweep.py --json FILE      # every result as json
    python benchmarks/sweep.py --jobs 2         # every other architecture on a second core

Each architecture (tests/models/hf_zoo.py) goes through what `mulint inspect` and `mulint check`
run, in one process: find the width knob, build at two widths on the meta device, trace, assign
roles, measure init at small widths, run the model rules. The sweep records the time, the roles,
the codes found, and any error: a MulintError is a clean exit-2 error; anything else is a crash.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "models" / "hf_zoo.py"
sys.path.insert(0, str(ROOT))

# What every SP transformer should get (MUP_REFERENCE §2-3): constant-std hidden init, an SP
# readout, and 1/sqrt(head_dim) attention (MU201 also covers attention with no scale at all).
SP_CODES = {"MU101", "MU102", "MU201"}
# HF heads that read the model out (task heads, CLIP's projections into the joint embedding).
READOUT_NAMES = ("lm_head", "classifier", "score", "text_projection", "visual_projection")


@dataclass
class ArchResult:
    name: str
    family: str
    seconds: float = 0.0  # inspect + check, in process
    trace_seconds: float = 0.0  # of which: build on meta at two widths, trace both, roles
    knob: str = ""
    parameters: int = 0
    roles: dict[str, int] = field(default_factory=dict)  # role -> parameters having it
    role_problems: list[str] = field(default_factory=list)  # parameters whose role contradicts their layer
    codes: dict[str, int] = field(default_factory=dict)  # code -> findings
    attention_sites: int = 0
    branches: int = 0  # other branches of forward (labels given) that use parameters differently
    error: str = ""  # a clean MulintError (exit 2)
    crash: str = ""  # anything else: a bug in mulint

    differences: dict[str, str] = field(default_factory=dict)  # "+CODE"/"-CODE" -> why (hf_zoo.DIFFERENCES)

    @property
    def expected_codes(self) -> set[str]:
        added = {k[1:] for k in self.differences if k.startswith("+")}
        removed = {k[1:] for k in self.differences if k.startswith("-")}
        return (SP_CODES | added) - removed


def _hf_layer(model, getter: str):
    try:
        return getattr(model, getter)()
    except (AttributeError, NotImplementedError):  # vision models have no token embeddings
        return None


def _role_problems(facts, model) -> list[str]:
    """Parameters whose roles contradict the kind of layer that holds them (HF's own API says which)."""
    problems = []
    by_id = {id(p): n for n, p in model.named_parameters()}
    expected = {}
    for module, role in [
        (_hf_layer(model, "get_input_embeddings"), "input"),
        (_hf_layer(model, "get_output_embeddings"), "output"),
        *((getattr(model, name, None), "output") for name in READOUT_NAMES),
    ]:
        if isinstance(getattr(module, "weight", None), torch.Tensor):
            expected[by_id.get(id(module.weight))] = role
    for p in facts.params:
        roles = set(p.roles)
        names = {p.name, *p.aliases}
        want = next((expected[n] for n in names if n in expected), None)
        if want and want not in roles:
            problems.append(f"{p.name}: {sorted(roles)}, expected {want}")
        elif "Norm" in p.module_type and roles - {"vector"} and len(p.infinite_dims) == 1:
            problems.append(f"{p.name} ({p.module_type}): {sorted(roles)}, expected vector")
        elif len(p.infinite_dims) >= 2 and "hidden" not in roles:
            problems.append(f"{p.name} ({p.module_type}): {sorted(roles)}, expected hidden")
        elif p.role_source == "shape":
            problems.append(f"{p.name}: not used in the trace")
    return problems


def run_arch(name: str, family: str, differences: dict[str, str] | None = None, path: Path = ZOO) -> ArchResult:
    import mulint.analysis.model as analysis
    from mulint.errors import MulintError
    from mulint.reading.targets import parse_target, resolve
    from mulint.rules import check_model_rules

    result = ArchResult(name=name, family=family, differences=differences or {})
    start = time.perf_counter()
    timed = analysis.analyse_structure

    def analyse_structure(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return timed(*args, **kwargs)
        finally:
            result.trace_seconds = time.perf_counter() - t0

    analysis.analyse_structure = analyse_structure  # to time the structure pass on its own
    try:
        [target] = resolve(parse_target(f"{path}:{name}"), allow_exec=True)
        structure = analysis.analyse_model(target)
        facts = structure.facts
        result.knob, result.parameters = facts.width_knob, len(facts.params)
        result.attention_sites = len(facts.attention)
        for p in facts.params:
            for role in p.roles:
                result.roles[role] = result.roles.get(role, 0) + 1
        result.role_problems = _role_problems(facts, structure.models[min(structure.models)])
        result.branches = len(facts.branches)
        for finding in check_model_rules(facts):
            result.codes[finding.code] = result.codes.get(finding.code, 0) + 1
    except MulintError as exc:
        result.error = f"[{exc.step}] {exc.message}"
    except Exception as exc:  # a crash: mulint must turn every failure into a MulintError
        result.crash = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"
    finally:
        analysis.analyse_structure = timed
    result.seconds = time.perf_counter() - start
    return result


def sweep(names: list[str] | None = None, progress=None, jobs: int = 1) -> list[ArchResult]:
    """``jobs`` 2: every other architecture in a forked copy of this process, on the second core (only
    with no other thread running, which the copy could find holding a lock); the results in ZOO order."""
    from mulint.reading.targets import import_file

    module = import_file(ZOO, str(ZOO))
    todo = [(name, family) for name, (_, family) in module.ZOO.items() if not names or name in names]

    def run(share: list[tuple[str, str]]) -> list[ArchResult]:
        done = []
        for name, family in share:
            done.append(run_arch(name, family, module.DIFFERENCES.get(name)))
            if progress:
                progress(done[-1])
        return done

    if jobs < 2 or len(todo) < 2 or threading.active_count() > 1 or not hasattr(os, "fork"):
        return run(todo)
    beside = _run_in_copy(todo[1::2], lambda share: [asdict(r) for r in run(share)])
    here = {r.name: r for r in run(todo[::2])}
    there = {r["name"]: ArchResult(**r) for r in beside()}
    missing = [item for item in todo[1::2] if item[0] not in there]  # the copy died: run them here
    there.update({r.name: r for r in run(missing)})
    return [here.get(name) or there[name] for name, _ in todo]


def _run_in_copy(share, work):
    """Start ``work(share)`` in a forked copy; the returned function waits for its JSON result ([] if
    the copy failed)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the copy ends in os._exit
        os.close(read)
        status = 1
        try:
            data = json.dumps(work(share)).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write, view) :]
            status = 0
        finally:
            os._exit(status)
    os.close(write)

    def wait() -> list[dict]:
        chunks = []
        while chunk := os.read(read, 1 << 20):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        try:
            return json.loads(b"".join(chunks)) if status == 0 else []
        except ValueError:
            return []

    return wait


def line(r: ArchResult) -> str:
    roles = " ".join(f"{k}={v}" for k, v in sorted(r.roles.items()))
    codes = ",".join(f"{c}×{n}" for c, n in sorted(r.codes.items())) or "-"
    status = "CRASH " + r.crash.splitlines()[0] if r.crash else ("ERROR " + r.error if r.error else "ok")
    extra = f" role problems: {'; '.join(r.role_problems)}" if r.role_problems else ""
    return (
        f"{r.name:12} {r.family:16} {r.seconds:6.1f}s (trace {r.trace_seconds:5.1f}s) {r.parameters:4} params  "
        f"{roles:40} {codes:30} {status}{extra}"
    )


def markdown(results: list[ArchResult]) -> str:
    rows = [
        "| architecture | kind | width knob | roles (in/hid/out/vec) | MU101 | MU102 | MU201 | other | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error or r.crash:
            rows.append(
                f"| {r.name} | {r.family} | | | | | | {'crash' if r.crash else 'error: ' + r.error} | "
                f"{r.seconds:.1f} s |"
            )
            continue
        roles = "/".join(str(r.roles.get(k, 0)) for k in ("input", "hidden", "output", "vector"))
        mark = {c: ("✓" if c in r.codes else "–") for c in SP_CODES}
        other = ", ".join(f"{c}" for c in sorted(r.codes) if c not in SP_CODES) or ""
        knob = r.knob.split(".", 1)[-1] if "()." in r.knob else r.knob
        rows.append(
            f"| {r.name} | {r.family} | `{knob}` | {roles} | {mark['MU101']} | {mark['MU102']} | "
            f"{mark['MU201']} | {other} | {r.seconds:.1f} s |"
        )
    notes = [
        f"- **{r.name}**: "
        + "; ".join(f"{'no' if k[0] == '-' else 'also'} {k[1:]}: {why}" for k, why in r.differences.items())
        for r in results
        if r.differences
    ]
    return "\n".join(rows + ([""] + notes if notes else []))


def summary(results: list[ArchResult], wall: float) -> str:
    crashes = sum(bool(r.crash) for r in results)
    errors = sum(bool(r.error) for r in results)
    missing = [r.name for r in results if not (r.crash or r.error) and r.expected_codes != set(r.codes)]
    problems = sum(len(r.role_problems) for r in results)
    return (
        f"{len(results)} architectures in {wall:.1f} s: {crashes} crashes, {errors} errors, "
        f"{problems} role problems, unexpected codes: {', '.join(missing) or 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated architecture names")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--json", metavar="FILE", help="write every result as json")
    parser.add_argument("--jobs", type=int, default=1, help="2: half the architectures on a second core")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else None
    start = time.perf_counter()
    results = sweep(names, progress=None if args.markdown else (lambda r: print(line(r), flush=True)), jobs=args.jobs)
    wall = time.perf_counter() - start
    if args.markdown:
        print(markdown(results))
    print(summary(results, wall), file=sys.stderr if args.markdown else sys.stdout)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.crash for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
