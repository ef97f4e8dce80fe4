"""A second check of unchanged model code reuses the result; any change to the code, the options or
mulint's version analyses again."""

import json

from conftest import EXAMPLES


def check(mulint, path, *args):
    code, out, err = mulint("check", str(path), "--format", "json", *args)
    report = json.loads(out)
    [target] = [t for t in report["targets"] if t.get("mode") == "model"]
    return sorted((f["code"], f["line"]) for f in report["findings"]), target.get("cached", False)


def test_unchanged_code_is_not_analysed_again(mulint, tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text((EXAMPLES / "mlp_sp.py").read_text())
    first, cached = check(mulint, path)
    assert not cached and first
    import mulint.analysis.model as model

    monkeypatch.setattr(model, "analyse_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-traced")))
    again, cached = check(mulint, path)
    assert cached and again == first


def test_changes_invalidate(mulint, tmp_path, monkeypatch):
    path = tmp_path / "model2.py"
    path.write_text((EXAMPLES / "mlp_sp.py").read_text())
    first, _ = check(mulint, path)
    path.write_text(path.read_text() + "\n# a comment\n")
    assert check(mulint, path)[1] is False  # the model code changed
    assert check(mulint, path, "--widths", "64,128,256")[1] is False  # the options changed
    import mulint.cache as cache

    monkeypatch.setattr(cache, "__version__", "999.0")
    assert check(mulint, path)[1] is False  # another mulint version
    assert check(mulint, path, "--no-cache")[1] is False


def test_unreadable_entries_are_ignored(mulint, tmp_path):
    import mulint.cache as cache

    path = tmp_path / "model3.py"
    path.write_text((EXAMPLES / "mlp_sp.py").read_text())
    first, _ = check(mulint, path)
    for entry in cache.cache_root().rglob("*.json"):
        entry.write_text("{ half written")
    again, cached = check(mulint, path)
    assert not cached and again == first
