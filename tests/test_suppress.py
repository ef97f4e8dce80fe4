"""Suppression: `# noqa` comments, --select/--ignore prefixes, per-file-ignores globs, and all of them together."""

import pytest

from mulint.engine.suppress import filter_findings, is_suppressed_by_noqa, noqa_codes, per_file_ignored, selected
from mulint.findings import Finding


def finding(code="MU201", path="model.py", line=1):
    return Finding(code=code, name="rule", severity="error", message="m", path=path, line=line, column=1)


@pytest.mark.parametrize(
    "line, codes",
    [
        ("x = 1", None),
        ("x = 1  # a comment", None),
        ("x = 1  # noqa", set()),
        ("x = 1  #noqa", set()),
        ("x = 1  # NoQA", set()),
        ("x = 1  # noqa because the head dim is fixed", set()),
        ("x = 1  # noqa:", set()),  # nothing parses after the colon: a bare noqa, as in flake8
        ("x = 1  # noqa: MU201", {"MU201"}),
        ("x = 1  # noqa:MU201", {"MU201"}),
        ("x = 1  # noqa : mu201", {"MU201"}),
        ("x = 1  # noqa: MU201, MU102", {"MU201", "MU102"}),
        ("x = 1  # noqa:MU201 MU3", {"MU201", "MU3"}),
        ("x = 1  # noqa: MU201,MU102  (fixed head_dim)", {"MU201", "MU102"}),
        ("x = f(a)  # type: ignore  # noqa: MU301", {"MU301"}),
        ('s = "# noqa: MU201"', {"MU201"}),  # a regex on the line, as flake8 does
        ("x = 1  # noqanything", None),
    ],
)
def test_noqa_comment_forms(line, codes):
    assert noqa_codes(line) == codes


def test_noqa_matches_codes_prefixes_and_everything():
    lines = ["a  # noqa: MU3", "b  # noqa", "c  # noqa: MU20", "d"]
    assert is_suppressed_by_noqa(finding("MU301", line=1), lines)
    assert not is_suppressed_by_noqa(finding("MU201", line=1), lines)
    assert is_suppressed_by_noqa(finding("MU201", line=2), lines)
    assert is_suppressed_by_noqa(finding("MU201", line=3), lines)
    assert not is_suppressed_by_noqa(finding("MU201", line=4), lines)
    assert not is_suppressed_by_noqa(finding("MU201", line=9), lines)  # past the end of the file
    assert not is_suppressed_by_noqa(finding("MU201", line=0), lines)


@pytest.mark.parametrize(
    "code, select, ignore, kept",
    [
        ("MU301", None, None, True),  # default: everything
        ("MU301", [], None, False),  # an explicit empty select selects nothing (as in ruff)
        ("MU301", ["MU3"], None, True),
        ("MU301", ["mu3"], None, True),
        ("MU201", ["MU3"], None, False),
        ("MU301", ["ALL"], ["MU3"], False),
        ("MU201", ["ALL"], ["MU3"], True),
        ("MU301", ["MU3"], ["ALL"], True),  # a prefix is more specific than ALL
        ("MU301", ["MU301"], ["MU3"], True),  # the more specific select wins
        ("MU302", ["MU301"], ["MU3"], False),
        ("MU301", ["MU3"], ["MU30"], False),  # the more specific ignore wins
        ("MU301", ["MU3"], ["MU3"], False),  # a tie is an ignore
        ("MU301", None, ["ALL"], False),
        ("MU101", None, ["MU3", "MU2"], True),
    ],
)
def test_select_and_ignore(code, select, ignore, kept):
    assert selected(code, select, ignore) is kept


@pytest.mark.parametrize(
    "pattern, path, ignored",
    [
        ("tests/*", "tests/test_model.py", True),
        ("tests/*", "tests/unit/test_model.py", True),  # `*` crosses directories, as in ruff
        ("tests/*", "src/tests_util.py", False),
        ("tests/*", "src/tests/test_model.py", False),  # anchored at the config root
        ("**/train_*.py", "train_gpt.py", True),  # `**/` is zero or more directories
        ("**/train_*.py", "scripts/deep/train_gpt.py", True),
        ("**/train_*.py", "scripts/pretrain_gpt.py", False),
        ("model.py", "model.py", True),
        ("model.py", "pkg/model.py", True),  # a bare file name matches in any directory
        ("model.py", "pkg/model_v2.py", False),
        ("pkg/model.py", "other/pkg/model.py", False),
        ("./pkg/model.py", "pkg/model.py", True),
        ("pkg/model_v?.py", "pkg/model_v2.py", True),
        ("pkg/model_v[0-9].py", "pkg/model_vx.py", False),
        ("!tests/*", "src/model.py", True),  # negated: every file not under tests/
        ("!tests/*", "tests/test_model.py", False),
    ],
)
def test_per_file_ignores_globs(tmp_path, monkeypatch, pattern, path, ignored):
    monkeypatch.chdir(tmp_path)  # findings carry paths relative to the working directory
    assert per_file_ignored("MU201", path, {pattern: ["MU2"]}, tmp_path) is ignored
    assert not per_file_ignored("MU101", path, {pattern: ["MU2"]}, tmp_path)


def test_per_file_ignores_relative_to_the_config_root_not_the_working_directory(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    monkeypatch.chdir(project / "tests")
    assert per_file_ignored("MU201", "test_a.py", {"tests/*": ["MU201"]}, project)
    assert per_file_ignored("MU201", str(project / "tests" / "test_a.py"), {"tests/*": ["ALL"]}, project)
    # A file outside the project only matches file-name patterns.
    outside = str(tmp_path / "elsewhere" / "tests" / "test_a.py")
    assert not per_file_ignored("MU201", outside, {"tests/*": ["MU201"]}, project)
    assert per_file_ignored("MU201", outside, {"test_*.py": ["MU201"]}, project)


def test_filter_findings_applies_everything_and_reads_each_file_once(tmp_path):
    sources = {
        "a.py": ["x = 1  # noqa: MU1", "y = 2", "z = 3  # noqa"],
        "tests/t.py": ["x = 1"],
        "b.py": ["x = 1"],
    }
    reads = []

    def read_lines(path):
        reads.append(path)
        return sources[path]

    findings = [
        finding("MU101", "a.py", 1),  # noqa: MU1
        finding("MU201", "a.py", 1),  # kept: the noqa lists MU1 only
        finding("MU201", "a.py", 2),  # kept
        finding("MU301", "a.py", 3),  # bare noqa
        finding("MU201", "tests/t.py", 1),  # per-file-ignores
        finding("MU304", "b.py", 1),  # --ignore MU304: its file is never read
    ]
    kept = filter_findings(
        findings,
        select=None,
        ignore=["MU304"],
        per_file_ignores={"tests/*": ["MU2"]},
        root=tmp_path,
        read_lines=read_lines,
    )
    assert [(f.path, f.code, f.line) for f in kept] == [("a.py", "MU201", 1), ("a.py", "MU201", 2)]
    assert reads == ["a.py"]


def test_filter_findings_reads_real_files_by_default(tmp_path):
    source = tmp_path / "model.py"
    source.write_text("a = 1\nb = 2  # noqa: MU201\n", encoding="utf-8")
    findings = [
        finding(path=str(source), line=1),
        finding(path=str(source), line=2),
        finding(path=str(tmp_path / "missing.py"), line=1),
    ]
    kept = filter_findings(findings, select=["MU2"], ignore=None, per_file_ignores={}, root=tmp_path)
    assert [(f.path, f.line) for f in kept] == [(str(source), 1), (str(tmp_path / "missing.py"), 1)]
