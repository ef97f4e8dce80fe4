"""Rule pages: the parser reads every section of the page format, and the repository's pages parse."""

import pytest
from conftest import ROOT

from mulint.rules.pages import RuleMeta, load_pages, pages_dir, parse_page

SAMPLE = """# MU201: sqrt-attention-scale

Severity: error · Fix: safe

## What it does
Finds attention whose logits are scaled by 1/sqrt(head_dim), e.g. SDPA's default. It only
reports it when head_dim grows with width.

## Why is this bad?
q·k grows like head_dim once training correlates q and k.

## Example
```python
import torch.nn.functional as F

## a comment that looks like a heading
def attend(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)
```

## Use instead
Pass the scale explicitly:

```python
def attend(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, scale=8 / q.size(-1))
```

## Fix safety
Safe: at the base width the scale is unchanged.

## References
- Tensor Programs V
- The `mup` package
"""


def write(tmp_path, text, name="MU201.md"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_page_parses_into_every_field(tmp_path):
    meta = parse_page(write(tmp_path, SAMPLE))
    assert meta == RuleMeta(
        code="MU201",
        name="sqrt-attention-scale",
        severity="error",
        summary="Finds attention whose logits are scaled by 1/sqrt(head_dim), e.g. SDPA's default.",
        what="Finds attention whose logits are scaled by 1/sqrt(head_dim), e.g. SDPA's default. It only\n"
        "reports it when head_dim grows with width.",
        why="q·k grows like head_dim once training correlates q and k.",
        example_bad="import torch.nn.functional as F\n\n## a comment that looks like a heading\n"
        "def attend(q, k, v):\n    return F.scaled_dot_product_attention(q, k, v)\n",
        example_good="def attend(q, k, v):\n    return F.scaled_dot_product_attention(q, k, v, scale=8 / q.size(-1))\n",
        fix_safety="Safe: at the base width the scale is unchanged.",
        references="- Tensor Programs V\n- The `mup` package",
        markdown=SAMPLE,
    )


def test_missing_sections_are_empty_and_severity_may_carry_a_remark(tmp_path):
    meta = parse_page(
        write(
            tmp_path,
            "# MU103: input-init\n\nSeverity: warning (error when it grows) · Fix: none\n"
            "\n## Why is this bad?\nBecause.\n\n## Something else\nIgnored.\n",
        )
    )
    assert (meta.code, meta.name, meta.severity, meta.why) == ("MU103", "input-init", "warning", "Because.")
    assert meta.what == meta.summary == meta.example_bad == meta.example_good == meta.fix_safety == ""
    assert meta.references == ""
    assert parse_page(write(tmp_path, "# MU101: no-severity-line\n")).severity == "error"
    lower = parse_page(write(tmp_path, "# MU101: x\n\n## What it does\nChecks std ∝ fan_in^-½. mulint fits it.\n"))
    assert lower.summary == "Checks std ∝ fan_in^-½."


@pytest.mark.parametrize("text", ["MU201: no hash\n", "# MU201 missing-colon\n", "# Rule: name\n", "", "# MU201:\n"])
def test_malformed_title_names_the_file(tmp_path, text):
    with pytest.raises(ValueError, match="MU201.md"):
        parse_page(write(tmp_path, text))


def test_unknown_severity_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="MU201.md.*severity"):
        parse_page(write(tmp_path, "# MU201: x\n\nSeverity: fatal\n"))


def test_load_pages_keys_by_code(tmp_path):
    write(tmp_path, SAMPLE)
    write(tmp_path, "# MU101: hidden-init-too-large\n", "MU101.md")
    write(tmp_path, "not a rule page", "README.md")
    assert list(load_pages(tmp_path)) == ["MU101", "MU201"]
    assert load_pages(tmp_path / "missing") == {}
    write(tmp_path, "# MU102: copied-title\n", "MU103.md")
    with pytest.raises(ValueError, match="MU103.md"):
        load_pages(tmp_path)


def test_the_repository_pages_are_found_and_parse():
    assert pages_dir() == ROOT / "rules"
    pages = load_pages(pages_dir())
    assert pages, "rules/ holds the rule pages"
    for code, meta in pages.items():
        assert meta.name and meta.severity in ("error", "warning"), code
        assert meta.markdown.startswith(f"# {code}: {meta.name}"), code
