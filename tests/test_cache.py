"""A second check of unchanged model code reuses the result; any change to the code (the target or any
file it depends on: a subpackage, a parent folder's module, a config it reads), the options or mulint's
version analyses again."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES

from mulint.edits import AttentionScale
from mulint.engine import cache
from mulint.findings import Finding, Fix

pytestmark = pytest.mark.slow  # a check in a worker or a dependency recording in a subprocess per test


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
    import mulint.engine.cache as cache

    monkeypatch.setattr(cache, "__version__", "999.0")
    assert check(mulint, path)[1] is False  # another mulint version
    assert check(mulint, path, "--no-cache")[1] is False


def test_unreadable_entries_are_ignored(mulint, tmp_path):
    import mulint.engine.cache as cache

    path = tmp_path / "model3.py"
    path.write_text((EXAMPLES / "mlp_sp.py").read_text())
    first, _ = check(mulint, path)
    for entry in cache.cache_root().rglob("*.json"):
        entry.write_text("{ half written")
    again, cached = check(mulint, path)
    assert not cached and again == first


# --- dependencies recorded while a model is imported and built, checked by content on lookup ---------

OPTIONS = {"widths": None, "coord": False}
RECORD = textwrap.dedent("""
    import json, sys
    from mulint.engine.deps import DependencyRecorder
    sys.path.insert(0, ".")
    with DependencyRecorder() as recorder:
        import model
        model.build()
    print(json.dumps([str(p) for p in recorder.files()]))
""")


def project(root: Path) -> Path:
    """model.py importing a subpackage and a parent folder's module, reading a JSON config as it builds."""
    (root / "proj" / "layers").mkdir(parents=True)
    (root / "common.py").write_text("SCALE = 1.0\n")
    (root / "proj" / "layers" / "__init__.py").write_text("")
    (root / "proj" / "layers" / "attn.py").write_text("import common\nSCALE = common.SCALE / 8\n")
    (root / "proj" / "config.json").write_text('{"width": 64}\n')
    (root / "proj" / "model.py").write_text(
        textwrap.dedent("""
        import json, os, tempfile, click
        from layers import attn

        def build():
            with open(os.path.join(os.path.dirname(__file__), "config.json")) as fh:
                width = json.load(fh)["width"]
            open("/proc/self/status").read()
            with tempfile.NamedTemporaryFile("w") as scratch:
                scratch.write("written, not read")
            return width * attn.SCALE
    """)
    )
    return root / "proj" / "model.py"


def record(model: Path) -> list[Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(model.parent.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", RECORD], cwd=model.parent, env=env, capture_output=True, text=True, check=True
    )
    return [Path(p) for p in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def recorded_template(tmp_path_factory):
    """Recorded once (a subprocess); each test gets a copy of the project with the same dependencies."""
    model = project(tmp_path_factory.mktemp("template") / "src")
    return model, record(model)


@pytest.fixture
def recorded(recorded_template, tmp_path, monkeypatch):
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    model, deps = recorded_template
    template = model.parent.parent.resolve()
    shutil.copytree(template, tmp_path / "src")
    return tmp_path / "src" / "proj" / "model.py", [tmp_path.resolve() / "src" / p.relative_to(template) for p in deps]


def finding(**changes) -> Finding:
    row = dict(
        code="MU201",
        name="sqrt-attention-scale",
        severity="error",
        message="1/sqrt(d)",
        path="model.py",
        line=3,
        column=5,
        target="model.py:GPT",
        parameter="attn.scale",
        fix=Fix(
            applicability="safe",
            message="use 1/d",
            edits=[AttentionScale("model.py", 3, 256, "width", "model.py:GPT", "sdpa-default", 64)],
        ),
    )
    return Finding(**{**row, **changes})


# What a worker observed of a model that reads no environment variable, lists no folder and runs no
# installed distribution: its files alone key the entry.
NOTHING_ELSE = {"env": {}, "listings": [], "dists": [], "library_files": [], "unobservable": []}


def store(model, deps, findings=None, **kw):
    row = ("model.py:GPT", model, OPTIONS, findings or [finding()], {"target": "model.py:GPT"}, deps)
    cache.store_result(*row, **{"observed": NOTHING_ELSE, **kw})


def test_recorded_dependencies_are_the_local_files(recorded):
    model, deps = recorded
    src = model.parent.parent.resolve()
    assert set(deps) == {
        src / "common.py",
        src / "proj" / "model.py",
        src / "proj" / "layers" / "__init__.py",
        src / "proj" / "layers" / "attn.py",
        src / "proj" / "config.json",
    }
    assert deps == sorted(deps)


def test_unchanged_files_hit(recorded):
    model, deps = recorded
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    store(model, deps)
    findings, target = cache.lookup("model.py:GPT", model, OPTIONS)
    assert findings == [finding()] and target == {"target": "model.py:GPT"}


def test_every_kind_of_fix_edit_is_stored_and_read_back_typed(recorded):
    from test_edits import EVERY_KIND

    model, deps = recorded
    stored = finding(fix=Fix("unsafe", "fix it", list(EVERY_KIND)))
    store(model, deps, [stored])
    findings, _ = cache.lookup("model.py:GPT", model, OPTIONS)
    assert findings == [stored] and [type(e) for e in findings[0].fix.edits] == [type(e) for e in EVERY_KIND]


@pytest.mark.parametrize("edited", ["layers/attn.py", "../common.py", "config.json", "model.py"])
def test_an_edit_to_any_dependency_invalidates_and_its_old_content_hits_again(recorded, edited):
    model, deps = recorded
    store(model, deps)
    path = model.parent / edited
    original = path.read_text()
    path.write_text(original.replace("8", "4").replace("64", "32").replace("1.0", "2.0") + "\n")
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    path.write_text(original)  # the content, not the timestamp, decides
    assert cache.lookup("model.py:GPT", model, OPTIONS) is not None


def test_a_deleted_dependency_or_other_options_or_label_miss(recorded):
    model, deps = recorded
    store(model, deps)
    assert cache.lookup("model.py:GPT", model, {**OPTIONS, "coord": True}) is None
    assert cache.lookup("model.py:Other", model, OPTIONS) is None
    (model.parent / "config.json").unlink()
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None


def test_a_module_target_without_a_path_is_checked_by_its_dependencies(recorded):
    model, deps = recorded
    cache.store_result("proj.model:GPT", None, OPTIONS, [], {"target": "proj.model:GPT"}, deps, observed=NOTHING_ELSE)
    assert cache.lookup("proj.model:GPT", None, OPTIONS) == ([], {"target": "proj.model:GPT"})
    (model.parent / "layers" / "attn.py").write_text("SCALE = 0.5\n")
    assert cache.lookup("proj.model:GPT", None, OPTIONS) is None


def test_unchanged_timestamps_skip_hashing_only_when_content_cannot_have_changed_unseen(recorded, monkeypatch):
    model, deps = recorded
    config = model.parent / "config.json"
    store(model, deps)
    [entry] = cache.cache_root().rglob("*.json")
    data = json.loads(entry.read_text())
    for dep in data["deps"]:
        dep["sha256"] = "0" * 64  # only a hash of the file could tell
    entry.write_text(json.dumps(data))
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None  # changed just before it was hashed: hashed again
    monkeypatch.setattr(cache, "_RACY_NS", -(10**18))  # as if hashed long after every change
    assert cache.lookup("model.py:GPT", model, OPTIONS) is not None  # same stat: not hashed
    before = config.stat()
    config.write_text(config.read_text().replace("64", "32"))  # same size, mtime set back
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None  # ctime moved: hashed, differs


def test_a_dependency_changed_after_the_check_started_is_not_stored(recorded):
    model, deps = recorded
    started = os.stat(model.parent / "config.json").st_mtime_ns
    store(model, deps, started_ns=started)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    store(model, deps, started_ns=max(os.stat(p).st_ctime_ns for p in deps) + 1)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is not None


def test_a_dependency_changed_after_the_lookup_that_missed_is_not_stored(recorded):
    model, deps = recorded
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None  # the check starts
    time.sleep(0.02)  # past the file system clock's tick
    config = model.parent / "config.json"
    config.write_text(config.read_text())  # edited while the model is analysed
    store(model, deps)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    store(model, deps)  # this lookup saw the edited file
    assert cache.lookup("model.py:GPT", model, OPTIONS) is not None


def test_a_result_without_its_target_among_the_dependencies_is_not_stored(recorded):
    model, deps = recorded
    store(model, [])  # nothing recorded: the entry could never be found stale
    store(model, [d for d in deps if d.name != "model.py"])
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None


def valid_entry(model, deps) -> tuple[Path, dict]:
    store(model, deps)
    [entry] = cache.cache_root().rglob("*.json")
    return entry, json.loads(entry.read_text())


def _set(data, where, value):
    target = data
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    return data


MALFORMED = {
    "truncated": lambda text, data: text[: len(text) // 2],
    "empty": lambda text, data: "",
    "not utf-8": lambda text, data: b"\xff\xfe{".decode("latin-1"),
    "a list": lambda text, data: "[1, 2]",
    "null": lambda text, data: "null",
    "a string": lambda text, data: '"entry"',
    "deeply nested": lambda text, data: "[" * 100000 + "]" * 100000,
    "no deps": lambda text, data: json.dumps({k: v for k, v in data.items() if k != "deps"}),
    "no findings": lambda text, data: json.dumps({k: v for k, v in data.items() if k != "findings"}),
    "another format": lambda text, data: json.dumps({**data, "format": 1}),
    "another key": lambda text, data: json.dumps({**data, "key": "0" * 64}),
    "hashed_at a string": lambda text, data: json.dumps({**data, "hashed_at_ns": "now"}),
    "deps a dict": lambda text, data: json.dumps({**data, "deps": {}}),
    "dep a string": lambda text, data: json.dumps({**data, "deps": ["model.py"]}),
    "dep path a number": lambda text, data: json.dumps(_set(data, ["deps", 0, "path"], 3)),
    "dep sha256 null": lambda text, data: json.dumps(_set(data, ["deps", 0, "sha256"], None)),
    "dep sha256 short": lambda text, data: json.dumps(_set(data, ["deps", 0, "sha256"], "abc")),
    "dep size a bool": lambda text, data: json.dumps(_set(data, ["deps", 0, "size"], True)),
    "dep mtime a float": lambda text, data: json.dumps(_set(data, ["deps", 0, "mtime_ns"], 1.5)),
    "findings a dict": lambda text, data: json.dumps({**data, "findings": {}}),
    "finding a list": lambda text, data: json.dumps({**data, "findings": [[1]]}),
    "finding line a string": lambda text, data: json.dumps(_set(data, ["findings", 0, "line"], "3")),
    "finding code null": lambda text, data: json.dumps(_set(data, ["findings", 0, "code"], None)),
    "finding extra field": lambda text, data: json.dumps(_set(data, ["findings", 0, "extra"], 1)),
    "finding parameter a list": lambda text, data: json.dumps(_set(data, ["findings", 0, "parameter"], [])),
    "fix a string": lambda text, data: json.dumps(_set(data, ["findings", 0, "fix"], "safe")),
    "fix edits a dict": lambda text, data: json.dumps(_set(data, ["findings", 0, "fix", "edits"], {})),
    "fix edit of no kind": lambda text, data: json.dumps(_set(data, ["findings", 0, "fix", "edits", 0, "kind"], "x")),
    "fix edit line a string": lambda text, data: json.dumps(
        _set(data, ["findings", 0, "fix", "edits", 0, "line"], "3")
    ),
    "target a list": lambda text, data: json.dumps({**data, "target": []}),
}


@pytest.mark.parametrize("shape", MALFORMED)
def test_a_malformed_entry_is_a_miss(recorded, shape):
    model, deps = recorded
    entry, data = valid_entry(model, deps)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is not None
    entry.write_text(MALFORMED[shape](entry.read_text(), data), encoding="latin-1")
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None


def test_entries_and_folders_follow_the_umask(recorded, tmp_path, monkeypatch):
    model, deps = recorded
    for umask, file_mode, dir_mode in ((0o002, 0o664, 0o775), (0o077, 0o600, 0o700)):
        monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / f"shared{umask:o}" / "mulint"))
        previous = os.umask(umask)
        try:
            store(model, deps)
        finally:
            os.umask(previous)
        [entry] = cache.cache_root().rglob("*.json")
        assert entry.stat().st_mode & 0o777 == file_mode
        for folder in (entry.parent, cache.cache_root(), cache.cache_root().parent):
            assert folder.stat().st_mode & 0o777 == dir_mode
        assert cache.lookup("model.py:GPT", model, OPTIONS) is not None


def test_an_unwritable_or_full_cache_never_fails_a_check(recorded, tmp_path, monkeypatch):
    model, deps = recorded
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # cannot be created, even by root
    store(model, deps)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "full"))

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "replace", disk_full)
    store(model, deps)
    assert cache.lookup("model.py:GPT", model, OPTIONS) is None
    assert [p.name for p in (tmp_path / "full").rglob("*") if p.is_file()] == []  # no temporary file left


ATTENTION = textwrap.dedent("""
    import torch.nn as nn
    import torch.nn.functional as F

    from layers.attn_scale import attention_scale


    class Attention(nn.Module):
        def __init__(self, width: int = 64, n_head: int = 4):
            super().__init__()
            self.n_head = n_head
            self.qkv = nn.Linear(width, 3 * width)
            self.out = nn.Linear(width, width)
            self.scale = attention_scale(width // n_head)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            return self.out(y.transpose(1, 2).reshape(B, T, C))
""")


def test_an_edit_in_a_subpackage_brings_its_finding_back_through_the_cli(mulint, tmp_path):
    """The attention scale lives in layers/attn_scale.py: editing it to 1/sqrt(d) must give MU201."""
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "__init__.py").write_text("")
    scale = tmp_path / "layers" / "attn_scale.py"
    scale.write_text("def attention_scale(head_dim):\n    return 1 / head_dim\n")
    path = tmp_path / "model.py"
    path.write_text(ATTENTION)
    first, cached = check(mulint, f"{path}:Attention")
    assert not cached and "MU201" not in {code for code, _ in first}
    assert check(mulint, f"{path}:Attention") == (first, True)
    scale.write_text("def attention_scale(head_dim):\n    return head_dim ** -0.5\n")
    edited, cached = check(mulint, f"{path}:Attention")
    assert not cached and "MU201" in {code for code, _ in edited}


def test_the_key_of_set_options_does_not_depend_on_the_hash_seed(tmp_path):
    code = "from mulint.engine import cache; print(cache._primary_key('m.py:M', None, {'select': {'MU101', 'MU201'}}))"
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(2)
    }
    assert len(keys) == 1
