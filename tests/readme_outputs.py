"""The outputs the documentation quotes, produced again by the commands that print them.

A quoted output that nobody re-runs drifts: a fix count, the widths of a coordinate check, a diff.
So every output in README.md and docs/*.md follows a marker naming the commands that printed it:

    <!-- output: mulint check examples/nanogpt_sp.py -->
    ```text
    $ mulint check examples/nanogpt_sp.py
    ...
    ```

The commands run from the repository's root, or, with `<!-- output (in a copy of FILE ...): ... -->`,
in a fresh folder holding copies of those files (for `--fix`, which edits what it checks). Several
commands are separated by `; `. A block whose first line starts with `$ ` is a transcript: each
command on its own `$ ` line, then what it printed (standard output and error, in the order a
terminal shows them); any other block is what its one command wrote to standard output (a diff, a
table). Instead of a fenced block, a marker may open a stretch of markdown (a table) that
`<!-- end output -->` closes.

Only what legitimately varies is ignored when comparing: timings (`4.6 s`) and the folder a copy
was made in. `mulint` commands run in this process (their models still run in mulint's workers);
anything else runs as a subprocess.

    python -m tests.readme_outputs                  # compare every block, list those that differ
    python -m tests.readme_outputs --write          # rewrite them with the real output
    python -m tests.readme_outputs --only README.md --only-command "mulint check"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# click wraps help text to the terminal: a fixed width keeps `--help` blocks the same everywhere.
HELP_COLUMNS = "80"

MARKER = re.compile(r"^<!-- output(?: \(in a copy of (?P<copy>[^)]+)\))?: (?P<commands>.+?) -->$")
END_MARKER = "<!-- end output -->"
# The architecture sweep takes minutes: tests/test_sweep.py compares its block on the sweep it runs anyway.
SWEEP = "python benchmarks/sweep.py --markdown"
TIMING = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms|min)\b")


def documents() -> list[Path]:
    """The files whose quoted outputs are kept true."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Block:
    """One quoted output: where it sits in its file and what produced it."""

    path: Path
    marker_line: int  # 0-based index of the marker line
    start: int  # first line of the quoted text
    end: int  # one past its last line
    commands: list[str]
    copies: list[str]  # files copied into a fresh folder to run in; empty: the repository's root
    text: str

    @property
    def transcript(self) -> bool:
        return self.text.startswith("$ ")

    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.marker_line + 1}"


def blocks_in(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        commands = [c.strip() for c in match["commands"].split("; ") if c.strip()]
        copies = match["copy"].split() if match["copy"] else []
        if i + 1 < len(lines) and lines[i + 1].startswith("```"):
            start = i + 2
            end = next((j for j in range(start, len(lines)) if lines[j].startswith("```")), None)
        else:
            start = i + 1
            end = next((j for j in range(start, len(lines)) if lines[j].strip() == END_MARKER), None)
        if end is None:
            raise ValueError(f"{path}:{i + 1}: the output after this marker is never closed")
        text = "\n".join(lines[start:end])
        found.append(Block(path, i, start, end, commands, copies, text + "\n" if text else ""))
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks_in(path)]


def run_command(command: str, cwd: Path, with_stderr: bool) -> str:
    """What `command` prints in `cwd`: standard output, and with `with_stderr` standard error
    interleaved with it as written."""
    argv = shlex.split(command)
    if argv[0] != "mulint":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(
            [sys.executable if argv[0] == "python" else argv[0], *argv[1:]],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if with_stderr else subprocess.DEVNULL,
            text=True,
            check=False,
        )
        return done.stdout
    from mulint.cli import main

    output = io.StringIO()
    errors = output if with_stderr else io.StringIO()
    before = os.getcwd()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
            try:
                main(argv[1:])
            except SystemExit:
                pass  # the exit code is not quoted; the tests that own each command check it
    finally:
        os.chdir(before)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return output.getvalue()


@contextlib.contextmanager
def folder_for(block: Block) -> Iterator[Path]:
    if not block.copies:
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="mulint-docs-") as scratch:
        for name in block.copies:
            shutil.copy2(ROOT / name, Path(scratch) / Path(name).name)
        yield Path(scratch)


def produce(block: Block) -> str:
    """The text the block should hold, from running its commands now."""
    parts = []
    with folder_for(block) as cwd:
        for command in block.commands:
            output = run_command(command, cwd, with_stderr=block.transcript)
            if cwd != ROOT:
                output = output.replace(str(cwd) + os.sep, "").replace(str(cwd), ".")
            output = output.replace(str(ROOT) + os.sep, "")
            parts.append((f"$ {command}\n" if block.transcript else "") + output)
    text = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
    return text


def comparable(text: str) -> str:
    """The text with what legitimately varies between runs masked (and trailing spaces, which editors strip)."""
    return TIMING.sub("<time>", "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")))


def differs(block: Block, produced: str) -> bool:
    return comparable(block.text) != comparable(produced)


def write(block: Block, produced: str) -> None:
    lines = block.path.read_text(encoding="utf-8").split("\n")
    lines[block.start : block.end] = [line.rstrip() for line in produced.rstrip("\n").split("\n")]
    block.path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the blocks that differ with the real output")
    parser.add_argument("--only", action="append", default=[], help="only this document (repeatable)")
    parser.add_argument("--only-command", default="", help="only blocks whose first command starts with this")
    args = parser.parse_args(argv)
    stale = 0
    # Bottom up, so that rewriting a block does not move the lines of the blocks still to come.
    for block in reversed(all_blocks()):
        if args.only and str(block.path.relative_to(ROOT)) not in args.only:
            continue
        if not block.commands[0].startswith(args.only_command):
            continue
        produced = produce(block)
        if not differs(block, produced):
            print(f"{block.where()}: up to date")
            continue
        stale += 1
        if args.write:
            write(block, produced)
            print(f"{block.where()}: rewritten")
        else:
            print(f"{block.where()}: differs from `{'; '.join(block.commands)}`")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
