"""The README and docs/ say what mulint really does: every quoted output is re-run and compared, the
commands a newcomer copies work as written, and every link leads somewhere.

A block that differs is regenerated with `python -m tests.readme_outputs --write` (tests/readme_outputs.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mulint.version import __version__
from tests.readme_outputs import ROOT, SWEEP, all_blocks, comparable, documents, produce

README = ROOT / "README.md"
BLOCKS = all_blocks()
# What prints without building a model (help, version, a rule's page) answers in milliseconds.
QUICK = re.compile(r"^mulint (--help|--version|rule\b|\w+ --help$)")
# A line of mulint's text output: a finding, a note, the summary, an inspect table, a coordinate check.
OUTPUT_LINE = re.compile(
    r"^(\S+:\d+:\d+: MU\d{3} |note: |Found \d+ problems?|All checks passed!|\d+ models? analysed|"
    r"\S+: coordinate check (PASS|FAIL)|parameter +shape +inf dims)"
)
FENCE = re.compile(r"^```(\w*)$")


def block_id(block) -> str:
    return f"{block.where()} {'; '.join(block.commands)}"


def is_quick(block) -> bool:
    return not block.copies and all(QUICK.match(command) for command in block.commands)


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(block, id=block_id(block), marks=() if is_quick(block) else pytest.mark.slow)
        for block in BLOCKS
        if block.commands != [SWEEP]  # tests/test_sweep.py compares it on the sweep it runs anyway
    ],
)
def test_quoted_output_is_what_the_command_prints(block):
    produced = produce(block)
    assert comparable(block.text) == comparable(produced), (
        f"{block.where()} no longer matches `{'; '.join(block.commands)}`; "
        "regenerate it with `python -m tests.readme_outputs --write`"
    )


def test_blocks_are_read_and_rewritten_in_place(tmp_path):
    """The regenerator finds fenced and markdown blocks, runs their commands, and replaces only their text."""
    from tests.readme_outputs import blocks_in, write

    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n<!-- output: mulint --version -->\n```text\n$ mulint --version\nmulint 0.0.1\n```\n\n"
        "between\n\n<!-- output: mulint rule --help -->\nstale\n<!-- end output -->\nafter\n",
        encoding="utf-8",
    )
    transcript, region = blocks_in(doc)
    assert transcript.transcript and transcript.commands == ["mulint --version"]
    assert not region.transcript and region.text == "stale\n"
    assert produce(transcript) == f"$ mulint --version\nmulint {__version__}\n"
    assert comparable(transcript.text) != comparable(produce(transcript))
    write(region, produce(region))  # the later block first: the earlier one's lines stay put
    write(transcript, produce(transcript))
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n<!-- output: mulint --version -->\n```text\n$ mulint --version\n")
    assert "between\n\n<!-- output: mulint rule --help -->\nUsage: mulint rule [OPTIONS] [CODE]\n" in text
    assert text.endswith("<!-- end output -->\nafter\n") and "stale" not in text
    assert [comparable(b.text) == comparable(produce(b)) for b in blocks_in(doc)] == [True, True]


def test_an_unclosed_block_is_an_error(tmp_path):
    from tests.readme_outputs import blocks_in

    doc = tmp_path / "doc.md"
    doc.write_text("<!-- output: mulint --version -->\n```text\nmulint 0.2.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        blocks_in(doc)


def test_timings_are_all_that_is_masked():
    assert comparable("| gpt2 | 4.6 s |\nok  \n\n") == comparable("| gpt2 | 12.2 s |\nok")
    assert comparable("slope +1.52") != comparable("slope +1.53")
    assert comparable("3 steps; 2 seeds") == "3 steps; 2 seeds"


def test_the_docs_quote_outputs_and_help_of_every_command():
    commands = {command for block in BLOCKS for command in block.commands}
    assert "mulint check examples/nanogpt_sp.py" in commands  # the first check a newcomer runs
    for name in ("check", "inspect", "coord", "rule"):
        assert f"mulint {name} --help" in commands, f"docs/cli.md should quote `mulint {name} --help`"
    for block in BLOCKS:
        assert block.text.strip(), f"{block.where()}: empty quoted output"
        for command in block.commands:
            assert shlex.split(command)[0] in {"mulint", "python"}, f"{block.where()}: {command}"
        for name in block.copies:
            assert (ROOT / name).is_file(), f"{block.where()}: no {name} to copy"
        if block.transcript:  # each command shown is the one run, in order
            shown = [line[2:] for line in block.text.splitlines() if line.startswith("$ ")]
            assert shown == block.commands, block.where()


def fenced_blocks(path: Path):
    """(line of the fence, its language, the text inside, the line before the fence) of every fenced block."""
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            yield i + 1, opening[1], lines[i + 1 : end], lines[i - 1] if i else ""
            i = end
        i += 1


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_output_block_is_marked(path):
    """A block that shows mulint's output must name the command that printed it, or it drifts unseen;
    an abridged one (`<!-- sketch -->`) must be cut from a quoted output: each of its lines, up to a
    closing `...`, begins a line that a marked block quotes."""
    quoted = [row for block in BLOCKS for row in block.text.splitlines()]
    for line, language, text, before in fenced_blocks(path):
        if language not in ("text", "diff", ""):
            continue
        looks_like_output = any(OUTPUT_LINE.match(row) for row in text) or (
            language == "diff" and any(row.startswith("--- a/") for row in text)
        )
        where = f"{path.relative_to(ROOT)}:{line}"
        if not looks_like_output or before.startswith("<!-- output"):
            continue
        assert before == "<!-- sketch -->", (
            f"{where}: output without an `<!-- output: COMMAND -->` marker (or `<!-- sketch -->` for an abridged one)"
        )
        for row in text:
            cut = row.removesuffix("...").rstrip()
            assert any(q.startswith(cut) for q in quoted), f"{where}: `{cut}` is in no quoted output"


def test_precommit_rev_is_this_version():
    """The snippet users paste must name a tag that exists: the release of this version."""
    revs = re.findall(r"^\s*rev: (\S+)", README.read_text(encoding="utf-8"), re.M)
    assert revs, "the README's pre-commit snippet names no rev"
    assert set(revs) == {f"v{__version__}"}


def test_changelog_has_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(__version__)}\b", changelog, re.M), f"CHANGELOG.md has no ## {__version__}"


def readme_shell_commands() -> list[str]:
    return [
        "\n".join(text)
        for _, language, text, _ in fenced_blocks(README)
        if language == "sh" and len(text) == 1 and text[0].startswith("pip install")
    ]


def ci_commands() -> list[str]:
    """The commands .ci/run runs, in order, `-q` left out."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    run = [line for line in lines if line and not line.startswith(("#", "set ", "cd ", "export "))]
    return [re.sub(r" -q\b", "", part).strip() for line in run for part in line.split(" && ")]


def test_ci_runs_the_readmes_test_command():
    """CI installs and tests as the README tells a newcomer to: every step of the README's test
    command, in its order (CI may check more between them)."""
    (readme_test,) = [command for command in readme_shell_commands() if command.endswith("python -m pytest")]
    steps = iter(ci_commands())
    for step in readme_test.split(" && "):
        assert any(step == ran for ran in steps), f".ci/run does not run `{step}` where the README does"


def test_readme_torch_is_the_tested_one_and_says_how_to_get_the_cpu_build():
    """Both fresh-machine commands install the torch the README says is tested (the commands CI runs);
    on the public index that pin is the CUDA build on Linux, so the README gives the CPU one's command."""
    commands = readme_shell_commands()
    assert len(commands) == 2, commands  # install and check; install and test
    text = README.read_text(encoding="utf-8")
    tested = re.search(r"Tested with .*?torch (\S+?)[ ,(]", text)
    assert tested, "the README should say which torch is tested"
    for command in commands:
        assert command.startswith(f"pip install torch=={tested[1]} "), command
    said = re.sub(r"\s+", " ", text)
    assert f"pip install torch=={tested[1]} --index-url https://download.pytorch.org/whl/cpu" in said


LINK = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize(
    "path", [*documents(), ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_local_links_lead_somewhere(path):
    for target, anchor in LINK.findall(path.read_text(encoding="utf-8")):
        linked = (path.parent / target).resolve()
        assert linked.exists(), f"{path.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor[1:] in headings(linked), f"{path.relative_to(ROOT)}: no heading {anchor} in {target}"


def headings(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", title)))
    return found


def test_cli_reference_describes_every_flag():
    """docs/cli.md's table of options names every flag of every command, as `--help` lists them."""
    from mulint.cli import cli

    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in reference.splitlines() if line.startswith("| `"))
    for name, command in cli.commands.items():
        for param in command.params:
            longest = max(param.opts, key=len) if param.opts else ""
            if longest.startswith("--") and longest != "--help":
                assert f"`{longest}" in table, f"docs/cli.md: no row for `mulint {name} {longest}`"


def synopsis(path: Path) -> str:
    return next(
        "\n".join(body) for _, _, body, _ in fenced_blocks(path) if body and body[0].startswith("mulint check [")
    )


def test_readme_synopsis_is_the_references():
    assert synopsis(README) == synopsis(ROOT / "docs" / "cli.md")
