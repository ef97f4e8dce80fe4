"""The run's summary as text: notes, errors, the counts line, and the findings in the chosen format.
Strings only: the CLI prints them."""

from __future__ import annotations

from mulint.errors import ErrorRecord
from mulint.report.escape import keep_lines, one_line
from mulint.version import __version__


def quoted_output(error: ErrorRecord) -> str:
    output = error.output
    # Line by line under the `|` margin (splitlines also ends a line at a lone CR): no line can pass
    # for mulint's own.
    return (
        "\n  its output ended with:\n" + "\n".join(f"    | {keep_lines(line)}" for line in output.splitlines())
        if output
        else ""
    )


def note_lines(result) -> list[str]:
    """Each target's notes, then each model file that was not analysed, with its hint."""
    notes = [
        f"note: {one_line(target['target'])}: {keep_lines(note)}"
        for target in result.targets
        for note in target.get("notes") or []
    ]
    return notes + unanalysed_lines(result)


def unanalysed_lines(result) -> list[str]:
    """Each model file that was not analysed, why, and the way out."""
    return [
        f"note: {one_line(item['path'])}: not analysed: {keep_lines(item['reason'])}"
        f"\n  hint: {keep_lines(item['hint'])}"
        for item in result.unanalysed
    ]


def error_lines(errors: list[ErrorRecord]) -> list[str]:
    """`error: TARGET: [step] message`, the output it printed, and the hint."""
    return [
        f"error: {one_line(e.target)}: [{e.step}] {keep_lines(e.message)}{quoted_output(e)}"
        + (f"\n  hint: {keep_lines(e.hint)}" if e.hint else "")
        for e in errors
    ]


def not_a_pass(result) -> str:
    """A run with nothing found but something left out is not "All checks passed!"."""
    missing = []
    if result.errors:
        failed = sum(len(error.target.split(", ")) for error in result.errors)  # repeats are merged
        missing.append(f"{plural(failed, 'target')} could not be analysed (see the errors)")
    if result.unanalysed:
        files = len({item["path"] for item in result.unanalysed})
        missing.append(f"{plural(files, 'file')} with models not analysed (see the notes)")
    return "No problems found, but " + " and ".join(missing) + "."


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def counts_line(result, require: bool) -> str:
    """What was really analysed, so that a pass on nothing never looks like a pass."""
    parts = [
        f"{plural(result.models_analysed, 'model')} analysed",
        f"{plural(result.files_static, 'file')} checked statically",
    ]
    if result.unanalysed:
        files = len({item["path"] for item in result.unanalysed})
        parts.append(f"{plural(files, 'file')} with models not analysed (see notes)")
    if result.errors:
        parts.append(f"{plural(len(result.errors), 'error')}")
    return ", ".join(parts) + "."


def timing_lines(result) -> list[str]:
    """`check --verbose`: one line per target, where its time went (`TARGET: timings: import 0.21 s, ...`);
    a cached model says so."""
    lines = []
    for target, entry in result.timings.items():
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in entry.get("phases", {}).items())
        state = "cached, " if entry.get("cached") else ("failed, " if entry.get("failed") else "")
        total = sum(entry.get("phases", {}).values())
        lines.append(f"{one_line(target)}: timings: {state}{phases or 'nothing timed'} (total {total:.2f} s)")
    return lines


def render(
    result, fmt: str, statistics: bool, unsafe_fixes: bool = False, fixed: int = 0, *, verbose: bool = False
) -> str:
    """``verbose``: the JSON output carries the run's timings too."""
    from mulint.report import github, json_report, sarif, text

    if fmt == "json":
        timings = getattr(result, "timings", None) if verbose else None
        return json_report.render(
            result.findings, result.targets, result.errors, unanalysed=result.unanalysed, timings=timings
        )
    if fmt == "sarif":
        from mulint.rules.pages import load_pages, pages_dir

        return sarif.render(
            result.findings,
            list(load_pages(pages_dir()).values()),
            __version__,
            errors=result.errors,
            unanalysed=result.unanalysed,
        )
    if fmt == "github":
        return github.render(result.findings, errors=result.errors, unanalysed=result.unanalysed)
    return text.render(result.findings, statistics=statistics, unsafe_fixes=unsafe_fixes, fixed=fixed)
