"""Rule pages parsed from text (mulint.rules.pages): the cases the mutation run of the fast tier left
alive. The summary is the first sentence of the first paragraph; an example without a code fence is
kept as written. (The others left alive are equivalent, or the installed layout's fallback folder, which
tests/test_packaging.py covers in the slow tier.)"""

from mulint.rules.pages import parse_page

PAGE = """# MU777: made-up-rule

Severity: warning · Fix: safe

## What it does
Checks one thing
across two lines

Then a second paragraph. With more.

## Why is this bad?
Because.

## Example
no fence here, just text

## Use instead
```python
x = 1
```
"""


def test_the_summary_is_the_first_paragraph_when_it_has_no_sentence_end(tmp_path):
    path = tmp_path / "MU777.md"
    path.write_text(PAGE, encoding="utf-8")
    meta = parse_page(path)
    assert (meta.code, meta.name, meta.severity) == ("MU777", "made-up-rule", "warning")
    assert meta.summary == "Checks one thing across two lines"


def test_an_example_without_a_fence_is_its_text_and_a_fenced_one_its_code(tmp_path):
    path = tmp_path / "MU777.md"
    path.write_text(PAGE, encoding="utf-8")
    meta = parse_page(path)
    assert meta.example_bad.strip() == "no fence here, just text"
    assert meta.example_good == "x = 1\n"
