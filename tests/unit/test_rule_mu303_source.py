"""MU303, the static rule, on source text: libcst only, nothing imported or run (no torch)."""

import textwrap

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper

from mulint.reading.source_rules import check_source
from mulint.rules import by_code

VALID = [
    pytest.param(
        """
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * lr / base_lr
        """,
        id="each group's own initial lr scaled",
    ),
    pytest.param(
        """
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        """,
        id="an lr_scale key the group carries",
    ),
    pytest.param(
        """
        for g in optimizer.param_groups:
            g.update(lr=g["base"] * factor)
        """,
        id="update() reading the group",
    ),
    pytest.param(
        """
        g = {}
        g["lr"] = 0.1
        for h in optimizer.param_groups:
            print(h["lr"])
        """,
        id="a dict that is no param group",
    ),
    pytest.param(
        """
        lrs = [g["lr"] for g in optimizer.param_groups]
        """,
        id="reading the lrs",
    ),
]

INVALID = [
    pytest.param(
        """
        import math

        def get_lr(it):
            return 6e-4 * math.cos(it)

        for it in range(10):
            lr = get_lr(it)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
        """,
        10,
        9,
        id="nanoGPT's training loop",
    ),
    pytest.param(
        """
        for g in opt.param_groups:
            g.update(lr=0.001)
        """,
        3,
        5,
        id="update(lr=...)",
    ),
    pytest.param(
        """
        for g in opt.param_groups:
            g.update({"lr": new_lr})
        """,
        3,
        5,
        id="update({'lr': ...})",
    ),
    pytest.param(
        """
        [g.update(lr=lr) for g in optimizer.param_groups]
        """,
        2,
        2,
        id="in a comprehension",
    ),
    pytest.param(
        """
        for g in optimizer.param_groups:
            for h in optimizer.param_groups:
                h['lr'] = g["lr"]
        """,
        4,
        9,
        id="an inner loop reading another group",
    ),
]


def findings_of(source: str, path: str = "train.py"):
    wrapper = MetadataWrapper(cst.parse_module(textwrap.dedent(source)))
    return by_code("MU303")().check_source(wrapper, path)


@pytest.mark.parametrize("source", VALID)
def test_valid(source):
    assert findings_of(source) == []


@pytest.mark.parametrize(("source", "line", "column"), INVALID)
def test_invalid(source, line, column):
    (finding,) = findings_of(source)
    assert (finding.code, finding.name, finding.severity) == ("MU303", "schedule-overwrites-group-lr", "error")
    assert (finding.path, finding.line, finding.column) == ("train.py", line, column)
    assert finding.target == "" and finding.parameter is None
    assert finding.message == (
        "sets every param group's lr to the same absolute value, erasing µP's per-group learning rates; scale each "
        "group's own base lr instead (g['lr'] = g['initial_lr'] * lr / base_lr)"
    )
    assert finding.fix.applicability == "unsafe"
    assert finding.fix.message == "scale each group's own initial lr by the schedule's lr / base lr"
    (edit,) = finding.fix.edits
    fields = edit.to_dict()
    assert (fields["kind"], fields["path"], fields["line"]) == ("schedule-lr", "train.py", line)


def test_a_file_without_the_needle_is_not_parsed(tmp_path):
    """The rule's needle (`param_groups`) keeps libcst away from files that cannot violate it: such a
    file is not even parsed, so a syntax error in it is no MU303 error."""
    plain = tmp_path / "plain.py"
    plain.write_text("def broken(:\n", encoding="utf-8")
    assert check_source(plain, [by_code("MU303")]) == []
    loop = tmp_path / "loop.py"
    loop.write_text("for g in opt.param_groups:\n    g['lr'] = 0.1\n", encoding="utf-8")
    (finding,) = check_source(loop, [by_code("MU303")])
    assert finding.line == 2 and finding.path.endswith("loop.py")
