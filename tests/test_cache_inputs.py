"""The cache keys every input the model's code observed, not only the files it opened: environment
variables (read or found unset), directory listings, installed distributions, mulint's own code by
content and the library versions. An input it cannot observe keeps the result out of the cache; a FIFO
or other non-regular file in the cache folder is a miss, never a hang."""

import glob
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from mulint.engine import cache, deps, observe
from mulint.engine.deps import DependencyRecorder
from mulint.findings import Finding

OPTIONS = {"widths": None}


@pytest.fixture(autouse=True)
def fresh_recording(monkeypatch):
    """What a worker process starts with: nothing observed yet (recordings in one process accumulate)."""
    for module, name, empty in (
        (observe, "_ENV_READ", {}),
        (observe, "_ENV_WRITTEN", set()),
        (deps, "_LISTED", {}),
        (deps, "_UNOBSERVABLE", {}),
    ):
        monkeypatch.setattr(module, name, empty)


def recorded(action):
    with DependencyRecorder() as recorder:
        action()
    return recorder


def test_every_form_of_environment_read_is_recorded_with_its_value_or_unset(monkeypatch):
    monkeypatch.setenv("MULINT_T_GET", "1")
    monkeypatch.setenv("MULINT_T_ITEM", "yes")
    monkeypatch.delenv("MULINT_T_GETENV", raising=False)
    monkeypatch.delenv("MULINT_T_IN", raising=False)

    def reads():
        os.environ.get("MULINT_T_GET")
        os.getenv("MULINT_T_GETENV")
        os.environ["MULINT_T_ITEM"]  # noqa: B018
        "MULINT_T_IN" in os.environ  # noqa: B015
        os.environ["MULINT_T_SET_FIRST"] = "by the code"  # set by the code itself: not an input
        os.environ.get("MULINT_T_SET_FIRST")
        del os.environ["MULINT_T_SET_FIRST"]

    env = recorded(reads).observed()["env"]
    assert {k: v for k, v in env.items() if k.startswith("MULINT_T_")} == {
        "MULINT_T_GET": "1",
        "MULINT_T_GETENV": None,
        "MULINT_T_ITEM": "yes",
        "MULINT_T_IN": None,
    }


def store(model: Path, observed: dict, deps=None) -> None:
    finding = Finding(
        code="MU102",
        name="readout",
        severity="error",
        message="m",
        path=str(model),
        line=1,
        column=1,
        target=f"{model}:M",
        parameter="out.weight",
        fix=None,
    )
    nothing = {"env": {}, "listings": [], "dists": [], "library_files": [], "unobservable": []}
    cache.store_result(
        f"{model}:M",
        model,
        OPTIONS,
        [finding],
        {"target": f"{model}:M"},
        deps if deps is not None else [model.resolve()],
        observed={**nothing, **observed},
    )


def hit(model: Path) -> bool:
    return cache.lookup(f"{model}:M", model, OPTIONS) is not None


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "model.py"
    path.write_text("M = 1\n")
    return path


def test_an_environment_variable_change_misses_and_its_old_value_hits_again(model, monkeypatch):
    monkeypatch.delenv("USE_MUP", raising=False)
    store(model, recorded(lambda: os.environ.get("USE_MUP")).observed())
    assert hit(model)
    monkeypatch.setenv("USE_MUP", "1")  # set where it was unset
    assert not hit(model)
    store(model, {"env": {"USE_MUP": "1"}})
    monkeypatch.setenv("USE_MUP", "0")
    assert not hit(model)
    monkeypatch.setenv("USE_MUP", "1")
    assert hit(model)


def test_a_changed_glob_listing_misses(model, tmp_path):
    data = tmp_path / "layers"
    data.mkdir()
    (data / "a.json").write_text("{}")
    observed = recorded(lambda: glob.glob(str(data / "*.json"))).observed()
    assert [str(data), False] in observed["listings"]
    store(model, observed)
    assert hit(model)
    (data / "b.json").write_text("{}")  # one more layer file the model would find
    assert not hit(model)
    (data / "b.json").unlink()
    assert hit(model)
    data.rename(tmp_path / "gone")
    assert not hit(model)


@pytest.mark.parametrize(
    "lister", [os.listdir, os.scandir, lambda p: list(Path(p).iterdir()), lambda p: list(Path(p).glob("*.txt"))]
)
def test_every_way_to_list_a_directory_is_recorded(tmp_path, lister):
    folder = tmp_path / "listed"
    folder.mkdir()
    observed = recorded(lambda: list(lister(str(folder)))).observed()
    assert [str(folder), False] in observed["listings"]


def test_a_folder_listed_only_by_imports_ignores_files_that_cannot_be_modules(model, tmp_path, monkeypatch):
    pkg = tmp_path / "imported_only"
    pkg.mkdir()
    (pkg / "helper_mod_cv.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(pkg))
    observed = recorded(lambda: __import__("helper_mod_cv")).observed()
    assert [str(pkg), True] in observed["listings"]
    store(model, observed, deps=[model.resolve(), (pkg / "helper_mod_cv.py").resolve()])
    (pkg / ".helper_mod_cv.py.swp").write_text("")  # an editor's swap file
    (pkg / "notes.txt").write_text("")
    assert hit(model)
    (pkg / "helper_mod_cv2.py").write_text("")  # a module an import could now find
    assert not hit(model)


def tiny_distribution(root: Path, version: str, name: str = "tinydist_cv") -> Path:
    site = root / "lib" / "site-packages"  # installed, not editable: its files are the library's
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text("SCALE = 1.0\n")
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    return site


def test_an_installed_distributions_version_is_keyed(model, tmp_path, monkeypatch):
    site = tiny_distribution(tmp_path, "1.0")
    monkeypatch.syspath_prepend(str(site))
    observed = recorded(lambda: __import__("tinydist_cv")).observed()
    assert {"name": "tinydist_cv", "version": "1.0"} in [
        {k: d[k] for k in ("name", "version")} for d in observed["dists"]
    ]
    store(model, observed)
    assert hit(model)
    tiny_distribution(tmp_path, "1.1")  # upgraded in place; its code is byte for byte the same
    assert not hit(model)


def test_a_distribution_imported_before_the_fork_is_recorded_as_it_was_then(tmp_path, monkeypatch):
    """A process that forks workers reads the distributions of what it imported once: every worker runs
    those very modules. What is imported later is read when the result is recorded."""
    monkeypatch.setattr(observe, "_known", {})
    site = tiny_distribution(tmp_path, "1.0", "tinydist_before")
    tiny_distribution(tmp_path, "2.0", "tinydist_after")
    monkeypatch.syspath_prepend(str(site))
    for name in ("tinydist_before", "tinydist_after"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    __import__("tinydist_before")
    observe.remember_distributions()
    assert [d["version"] for d in observe._known["tinydist_before"]] == ["1.0"]
    assert "tinydist_after" not in observe._known
    tiny_distribution(tmp_path, "1.1", "tinydist_before")  # upgraded on disk; the process runs 1.0
    tiny_distribution(tmp_path, "2.1", "tinydist_after")  # upgraded before anything imported it
    dists, _ = observe.distributions(["tinydist_before", "tinydist_after.sub"])
    assert {d["name"]: d["version"] for d in dists} == {"tinydist_before": "1.0", "tinydist_after": "2.1"}


def test_a_distribution_that_cannot_be_read_before_the_fork_is_left_to_the_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(observe, "_known", {})
    site = tiny_distribution(tmp_path, "3.0", "tinydist_odd")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "tinydist_odd", raising=False)
    __import__("tinydist_odd")
    read = observe._records_of

    def failing(top):
        if top == "tinydist_odd":
            raise RuntimeError("a lazy module that fails when looked at")
        return read(top)

    monkeypatch.setattr(observe, "_records_of", failing)
    observe.remember_distributions()  # the server still starts
    assert "tinydist_odd" not in observe._known and "pytest" in observe._known
    monkeypatch.setattr(observe, "_records_of", read)
    dists, _ = observe.distributions(["tinydist_odd"])
    assert [d["version"] for d in dists] == ["3.0"]


def _loads_libc():
    import ctypes

    ctypes.CDLL(None)  # a library whose reads mulint cannot see


@pytest.mark.parametrize(
    "action, named", [(lambda: Path("/proc/self/status").read_text(), "/proc/self/status"), (_loads_libc, "ctypes")]
)
def test_an_unobservable_input_is_named_and_never_stored(model, action, named):
    observed = recorded(action).observed()
    [why] = [w for w in observed["unobservable"] if named in w]
    assert "test_cache_inputs.py" in why  # the line of the user's code that read it
    assert cache.uncacheable(observed)
    store(model, observed)
    assert not hit(model)


def test_mulint_code_is_keyed_by_content_and_the_torch_version_by_version(tmp_path, monkeypatch):
    code = tmp_path / "pkg"
    code.mkdir()
    source = code / "rules.py"
    source.write_text("EXPONENT = 0.5\n")
    before = cache.code_digest(code)
    stat = source.stat()
    source.write_text("EXPONENT = 1.5\n")  # the same size, its timestamps set back
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.code_digest(code) != before
    versions = cache._versions()
    monkeypatch.setattr(cache.metadata, "version", lambda name: "9.9" if name == "torch" else "1")
    cache._library_versions.cache_clear()
    try:
        assert cache._versions() != versions and "torch-9.9" in cache._versions()
    finally:
        monkeypatch.undo()
        cache._library_versions.cache_clear()


@pytest.fixture
def alarm():
    """A read that blocks fails the test instead of hanging it."""

    def timeout(*_):
        raise TimeoutError("blocked on a non-regular file")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_a_non_regular_or_huge_cache_entry_is_a_miss_without_hanging(model, kind, alarm, monkeypatch):
    store(model, {})
    assert hit(model)
    [entry] = cache.cache_root().rglob("*.json")
    entry.unlink()
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "dev-zero":
        entry.symlink_to("/dev/zero")
    elif kind == "folder":
        entry.mkdir()
    else:
        monkeypatch.setattr(cache, "_MAX_ENTRY_BYTES", 4096)  # a real entry here is far smaller
        entry.write_text(json.dumps({"format": 3}) + " " * 4096)
    assert not hit(model)
    if kind != "folder":
        store(model, {})  # replaced by a real entry
        assert hit(model)


def test_a_dependency_replaced_by_a_fifo_is_a_miss_without_hanging(model, tmp_path, alarm):
    config = tmp_path / "config.json"
    config.write_text("{}")
    store(model, {}, deps=[model.resolve(), config.resolve()])
    assert hit(model)
    config.unlink()
    os.mkfifo(config)
    assert not hit(model)


ENV_MODEL = textwrap.dedent("""
    import os
    import torch.nn as nn


    class MLP(nn.Module):
        def __init__(self, width: int = 64):
            super().__init__()
            self.inp = nn.Linear(16, width)
            self.out = nn.Linear(width, 10)
            if os.getenv("MULINT_T_USE_MUP") == "1":
                nn.init.normal_(self.inp.weight, std=1.0)
                nn.init.zeros_(self.out.weight)  # a zero readout is µP
            {extra}

        def forward(self, x):
            return self.out(self.inp(x).relu())
""")


def check(mulint, path, *args):
    code, out, err = mulint("check", f"{path}:MLP", "--format", "json", *args)
    report = json.loads(out)
    [target] = [t for t in report["targets"] if t.get("mode") == "model"]
    return sorted(f["code"] for f in report["findings"]), target.get("cached", False), err


@pytest.mark.slow
def test_the_verdict_follows_an_environment_variable_through_the_cli(mulint, tmp_path, monkeypatch):
    path = tmp_path / "envmodel.py"
    path.write_text(ENV_MODEL.format(extra=""))
    monkeypatch.delenv("MULINT_T_USE_MUP", raising=False)
    sp, cached, _ = check(mulint, path)
    assert not cached and "MU102" in sp
    monkeypatch.setenv("MULINT_T_USE_MUP", "1")
    mup, cached, _ = check(mulint, path)
    assert not cached and "MU102" not in mup  # analysed again, with the variable's new value
    assert check(mulint, path)[:2] == (mup, True)
    monkeypatch.delenv("MULINT_T_USE_MUP")
    assert check(mulint, path)[0] == sp  # never the cached result of the other value


@pytest.mark.slow
def test_a_model_reading_proc_is_not_cached_and_verbose_says_why(mulint, tmp_path):
    path = tmp_path / "procmodel.py"
    path.write_text(ENV_MODEL.format(extra='self.pid_status = open("/proc/self/status").read()'))
    first, cached, err = check(mulint, path, "--verbose")
    assert not cached and "not cached" in err and "/proc/self/status" in err
    again, cached, _ = check(mulint, path)
    assert not cached and again == first


def test_a_native_extension_of_the_project_is_unobservable(model, tmp_path, monkeypatch):
    import _json
    import importlib.util
    import shutil

    if not getattr(_json, "__file__", None):
        pytest.skip("this Python has _json built in")
    copy = tmp_path / Path(_json.__file__).name  # a compiled module in the user's own folder
    shutil.copy(_json.__file__, copy)

    def imports_it():
        spec = importlib.util.spec_from_file_location("_json", copy)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "project_fast_json", module)

    observed = recorded(imports_it).observed()
    assert [w for w in observed["unobservable"] if "native extension" in w and str(copy) in w]
    assert cache.uncacheable(observed)
