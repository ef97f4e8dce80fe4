"""Every rule page's examples are executed: the violating one raises exactly its code, the fixed one nothing."""

import json
import re

import pytest
from conftest import ROOT

from mulint.rules import all_rules

PAGES = sorted((ROOT / "rules").glob("MU*.md"))
STATIC = {r.code for r in all_rules() if r.judged_on == "static"}  # rules that read the source only
COORD = {r.code for r in all_rules() if r.judged_on == "coord"}  # the dynamic coordinate check's: judged on their own


def examples(page):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2, f"{page.name} needs an Example and a Use instead block"
    return blocks[0], blocks[1]


def profile_of(page):
    """The profile a page's examples are judged under ("Profile: `u-mup`" in its header; mup otherwise)."""
    found = re.search(r"^Severity:.*Profile: `([\w-]+)`", page.read_text(encoding="utf-8"), re.M)
    return found[1] if found else "mup"


def codes_for(mulint, tmp_path, name, source, code_of_page="", profile="mup"):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    extra = ("--coord", "--select", "MU9") if code_of_page in COORD else ()
    extra += ("--profile", profile)
    code, out, err = mulint("check", str(path), "--format", "json", *extra)
    assert code in (0, 1), err
    return code, [f["code"] for f in json.loads(out)["findings"]], json.loads(out)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_violating_example_raises_exactly_its_code(mulint, rule_page_folder, page):
    bad, _ = examples(page)
    code, codes, _ = codes_for(mulint, rule_page_folder(page), "bad_example", bad, page.stem, profile_of(page))
    assert code == 1 and set(codes) == {page.stem}, codes


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_fixed_example_is_clean(mulint, tmp_path, page):
    _, good = examples(page)
    code, codes, report = codes_for(mulint, tmp_path, "good_example", good, page.stem, profile_of(page))
    assert code == 0 and codes == [], codes
    wanted = "static" if page.stem in STATIC else "model"
    assert any(t["mode"] == wanted for t in report["targets"]), f"the example must be analysed ({wanted})"


def test_every_rule_has_a_page():
    assert {r.code for r in all_rules()} <= {p.stem for p in PAGES}


def test_a_page_judged_under_another_profile_says_so():
    assert profile_of(ROOT / "rules" / "MU105.md") == "u-mup" and profile_of(ROOT / "rules" / "MU101.md") == "mup"
