"""Import safety: every expression Python evaluates at import, local imports, and the pure-call allow-list.

Each unsafe position writes a canary file. `summarize` must mark the file unsafe at the marked line
(`# <-`), and a plain `mulint check file.py` must never create the canary; naming the model
(`file.py:Tiny`) still imports and analyses it.
"""

import json
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mulint.errors import MulintError
from mulint.reading.safety import summarize

PRELUDE = """\
import dataclasses
import functools
import os
import pathlib
import sys
from typing import TYPE_CHECKING

import torch.nn as nn

CANARY = {canary!r}


def _touch():
    open(CANARY, "w").close()


class Tiny(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.inp = nn.Linear(3, width)
        self.out = nn.Linear(width, 2)

    def forward(self, x):
        return self.out(self.inp(x).relu())
"""

# Side effects, each an expression that writes the canary and evaluates to something harmless.
EFFECTS = [
    'open(CANARY, "w").close()',
    'os.system("touch " + CANARY)',
    'pathlib.Path(CANARY).write_text("x")',
    "_touch()",
]

# Positions where Python evaluates code at import. EFFECT is the slot; `# <-` marks the line the
# verdict must name. Extra files (name -> source) sit beside the model, with EFFECT in them too.
POSITIONS = {
    "top-level call": ("EFFECT  # <-", {}),
    "class body statement": ("class Holder:\n    EFFECT  # <-", {}),
    "class attribute": ("class Holder:\n    g = (EFFECT, 1)[1]  # <-", {}),
    "decorator call": ("@functools.lru_cache(maxsize=(EFFECT, 8)[1])  # <-\ndef tool():\n    return 1", {}),
    "default argument": ("def tool(x=(EFFECT, 1)[1]):  # <-\n    return x", {}),
    "base class": ("class Extra((EFFECT, object)[1]):  # <-\n    pass", {}),
    "class keyword": ("class Extra(metaclass=(EFFECT, type)[1]):  # <-\n    pass", {}),
    "metaclass of the file": (
        "class Meta(type):\n    def __new__(mcs, *args):\n        EFFECT\n"
        "        return super().__new__(mcs, *args)\n\n"
        "class Extra(metaclass=Meta):  # <-\n    pass",
        {},
    ),
    "__init_subclass__ of a base": (
        "class Registry:\n    def __init_subclass__(cls, **kwargs):\n        EFFECT\n\n"
        "class Extra(Registry):  # <-\n    pass",
        {},
    ),
    "local decorator": ("def register(f):\n    EFFECT\n    return f\n\n@register  # <-\ndef tool():\n    return 1", {}),
    "function annotation": ("def tool(x: (EFFECT, int)[1]) -> int:  # <-\n    return x", {}),
    "return annotation": ("def tool() -> (EFFECT, int)[1]:  # <-\n    return 1", {}),
    "class-body annotation": ("class Extra:\n    x: (EFFECT, int)[1] = 1  # <-", {}),
    "module annotation": ("LIMIT: (EFFECT, int)[1] = 1  # <-", {}),
    "field default_factory": (
        "@dataclasses.dataclass\nclass Cfg:\n    xs: list = dataclasses.field(default_factory=(EFFECT, list)[1])  # <-",
        {},
    ),
    "else of the main guard": ('if __name__ == "__main__":\n    pass\nelse:\n    EFFECT  # <-', {}),
    "else of TYPE_CHECKING": ("if TYPE_CHECKING:\n    pass\nelse:\n    EFFECT  # <-", {}),
    "TYPE_CHECKING forced on": ("TYPE_CHECKING = True\nif TYPE_CHECKING:\n    EFFECT  # <-", {}),
    "except clause": ("try:\n    raise KeyError\nexcept (EFFECT, KeyError)[1]:  # <-\n    pass", {}),
    "with statement": ("import contextlib\nwith (EFFECT, contextlib.nullcontext())[1]:  # <-\n    pass", {}),
    "comprehension": ("SIZES = [(EFFECT, n)[1] for n in range(2)]  # <-", {}),
    "lambda called by sorted": ("ORDER = sorted([2, 1], key=lambda n: (EFFECT, n)[1])  # <-", {}),
    "sibling import": (
        "from tools import VALUE  # <-",
        {"tools.py": "import os, pathlib\n" + "VALUE = 1\n_ = (EFFECT, 1)[1]\n"},
    ),
    "star import of a sibling": ("from tools import *  # <-", {"tools.py": "import os, pathlib\nEFFECT\n"}),
    "package __init__": (
        "import tools.sub  # <-",
        {"tools/__init__.py": "import os, pathlib\nEFFECT\n", "tools/sub.py": "X = 1\n"},
    ),
    "submodule of a package": (
        "from tools import sub  # <-",
        {"tools/__init__.py": "", "tools/sub.py": "import os, pathlib\nEFFECT\n"},
    ),
    "transitive import": (
        "import first  # <-",
        {"first.py": "import second\n", "second.py": "import os, pathlib\nEFFECT\n"},
    ),
    "stdlib-named sibling": ("import statistics  # <-", {"statistics.py": "import os, pathlib\nEFFECT\n"}),
}

_CANARY_DEF = "CANARY = {canary!r}\n\ndef _touch():\n    open(CANARY, 'w').close()\n"


def build(folder: Path, position: str, effect: str) -> tuple[Path, Path, int]:
    """Write the model file (and its extra files) for one position: (model path, canary, marked line)."""
    canary = folder / "canary"
    body, extras = POSITIONS[position]
    source = PRELUDE.format(canary=str(canary)) + "\n\n" + body.replace("EFFECT", effect) + "\n"
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "# <-" in text)
    for name, extra in extras.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        extra_source = extra.replace("EFFECT", effect)
        if "EFFECT" in extra:
            extra_source = _CANARY_DEF.format(canary=str(canary)) + extra_source
        path.write_text(extra_source)
    model = folder / "model.py"
    model.write_text(source)
    return model, canary, line


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.sampled_from(sorted(POSITIONS)), effect=st.sampled_from(EFFECTS))
def test_every_import_time_position_is_unsafe_and_never_run(position, effect, mulint):
    with tempfile.TemporaryDirectory() as tmp:
        model, canary, line = build(Path(tmp), position, effect)
        summary = summarize(model)
        assert not summary.import_safe, f"{position}: {effect}"
        assert summary.unsafe_line == line, (position, summary.unsafe_line, summary.unsafe_reason)
        code, out, err = mulint("check", str(model), "--format", "json")
        assert not canary.exists()
        assert json.loads(out)["targets"][0]["import_safe"] is False


@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_each_position_names_its_line(tmp_path, position):
    model, canary, line = build(tmp_path, position, EFFECTS[0])
    summary = summarize(model)
    assert summary.unsafe_line == line and summary.unsafe_reason
    assert not canary.exists()


@pytest.mark.slow
@pytest.mark.parametrize("position", ["sibling import"])
def test_a_named_model_is_still_imported_and_analysed(tmp_path, mulint, position):
    model, canary, _ = build(tmp_path, position, EFFECTS[0])
    code, out, err = mulint("check", f"{model}:Tiny", "--format", "json")
    report = json.loads(out)
    assert any(t.get("mode") == "model" and t["target"].endswith(":Tiny") for t in report["targets"]), err
    assert canary.exists()  # importing the named file ran its code, as asked


def test_reason_names_the_imported_file_and_its_line(tmp_path):
    model, _, line = build(tmp_path, "transitive import", EFFECTS[0])
    summary = summarize(model)
    assert summary.unsafe_file == (tmp_path / "second.py").resolve()
    assert "first.py, which imports second.py, whose line 6 runs a call of open()" in summary.unsafe_reason
    assert summary.unsafe_message.startswith(f"line {line} imports first.py")


def test_training_loop_in_an_imported_sibling(tmp_path):
    (tmp_path / "train.py").write_text(
        "import torch\nclass Config:\n    lr = 0.1\nfor step in range(3):\n    print(step)\n"
    )
    model = tmp_path / "model.py"
    model.write_text("import torch.nn as nn\n\nfrom train import Config\n\n\nclass Net(nn.Module):\n    pass\n")
    summary = summarize(model)
    assert summary.unsafe_line == 3
    assert summary.unsafe_reason == "an import of train.py, whose line 4 runs a top-level loop"


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_relative_import_inside_a_package(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/tools.py", "import sys\nsys.stdout.write('hi')\n")
    model = write(tmp_path, "pkg/model.py", "from . import tools\n")
    summary = summarize(model)
    assert summary.unsafe_line == 1 and "tools.py" in summary.unsafe_reason


def test_the_models_own_package_init_is_judged(tmp_path):
    write(tmp_path, "pkg/__init__.py", "print('importing pkg')\n")
    model = write(tmp_path, "pkg/model.py", "X = 1\n")
    summary = summarize(model)
    assert not summary.import_safe and summary.unsafe_file == (tmp_path / "pkg/__init__.py").resolve()


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.path.insert(0, '/elsewhere')\nimport tools\n",
        "import os\nos.environ['CUDA_VISIBLE_DEVICES'] = ''\nimport torch\n",
        "import os\nos.environ.setdefault('X', '1')\n",
        "import torch\ntorch.backends.cudnn.benchmark = True\n",
    ],
)
def test_environment_edits_before_imports_are_unsafe(tmp_path, source):
    assert summarize(write(tmp_path, "m.py", source)).unsafe_line == 2


def test_import_cycles_end(tmp_path):
    write(tmp_path, "a.py", "import b\nX = 1\n")
    write(tmp_path, "b.py", "import a\nfor i in range(2):\n    pass\n")
    assert summarize(tmp_path / "a.py").unsafe_line == 1
    assert summarize(tmp_path / "b.py").unsafe_line == 2


def test_a_verdict_follows_an_edit_of_an_imported_file(tmp_path):
    tools = write(tmp_path, "tools.py", "X = 1\n")
    model = write(tmp_path, "model.py", "from tools import X\n")
    assert summarize(model).import_safe
    tools.write_text("X = print('changed')\n")
    assert summarize(model).unsafe_line == 1


def test_installed_packages_are_trusted(tmp_path):
    source = "import torch\nimport transformers\nfrom torch import nn\nimport numpy as np\n"
    assert summarize(write(tmp_path, "m.py", source)).import_safe


SAFE_SOURCES = {
    "seed and paths": """
        import logging
        import os
        from pathlib import Path

        import torch
        import torch.nn as nn

        torch.manual_seed(1337)
        HERE = os.path.dirname(__file__)
        DATA = Path(__file__).resolve().parent / "data"
        CONFIG = DATA.joinpath("config.json")
        logger = logging.getLogger(__name__)
        torch.set_default_dtype(torch.float32)
        """,
    "dataclass config and typing": """
        from dataclasses import dataclass, field
        from typing import Optional, TypeVar, Union

        import torch.nn as nn

        T = TypeVar("T")
        MaybeInt = Optional[int]
        Width = Union[int, float]

        @dataclass
        class Config:
            width: int = 16
            tags: list = field(default_factory=list)

        DEFAULT = Config()
        """,
    "decorated methods": """
        import functools
        import warnings

        import torch
        import torch.nn as nn

        warnings.filterwarnings("ignore", category=UserWarning)
        NAMES = ", ".join(["a", "b"]).upper()
        SIZES = {name: len(name) for name in ("x", "yy")}
        """,
}

SAFE_MODEL = """

class Scaled(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.first = nn.Linear(4, width)
        self.last = nn.Linear(width, 3)

    @torch.no_grad()
    def norms(self):
        return [p.norm() for p in self.parameters()]

    @functools.lru_cache(maxsize=None)
    def name(self):
        return "scaled"

    def forward(self, x):
        return self.last(self.first(x).tanh())
"""


@pytest.mark.parametrize("name", sorted(SAFE_SOURCES))
def test_ordinary_model_files_stay_import_safe(tmp_path, name):
    source = textwrap.dedent(SAFE_SOURCES[name]) + "import functools\nimport torch\n" + SAFE_MODEL
    summary = summarize(write(tmp_path, "m.py", source))
    assert summary.import_safe, summary.unsafe_reason
    assert summary.top_level_models == ["Scaled"]


@pytest.mark.slow
def test_safe_model_file_is_analysed_by_a_plain_check(tmp_path, mulint):
    source = "".join(textwrap.dedent(s) for s in SAFE_SOURCES.values()) + SAFE_MODEL
    path = write(tmp_path, "m.py", source)
    code, out, err = mulint("check", str(path), "--format", "json")
    targets = json.loads(out)["targets"]
    assert any(t.get("mode") == "model" and t["target"].endswith("m.py:Scaled") for t in targets), err


@pytest.mark.parametrize(
    "source, why",
    [
        ("CONFIG = make_config()\ndef make_config():\n    return 1\n", "function of this file"),
        ("import tools\ntools.setup()\n", "tools.py"),
        ("import logging\nlogging.basicConfig(filename='run.log')\n", "logging.basicConfig"),
        ("import torch\nW = torch.load('w.pt')\n", "torch.load"),
        ("X = sorted([1, 2], key=abs)\nY = sorted([3], key=lambda v: print(v))\n", "print"),
        ("import json\nCFG = json.load(open('c.json'))\n", "open()"),
    ],
)
def test_calls_not_known_to_be_pure_are_unsafe(tmp_path, source, why):
    write(tmp_path, "tools.py", "def setup():\n    pass\n")
    summary = summarize(write(tmp_path, "m.py", source))
    assert not summary.import_safe and why in summary.unsafe_reason


def test_a_dataclass_with_its_own_init_is_not_pure_to_build(tmp_path):
    source = """
        from dataclasses import dataclass

        @dataclass
        class Config:
            width: int = 8

            def __post_init__(self):
                print("built")

        DEFAULT = Config()
        """
    assert summarize(write(tmp_path, "m.py", source)).unsafe_line == 11


def test_enum_members_run_the_enums_init(tmp_path):
    source = """
        import enum

        class Size(enum.Enum):
            SMALL = 1

            def __init__(self, value):
                print(value)
        """
    assert summarize(write(tmp_path, "m.py", source)).unsafe_line == 4


def test_future_annotations_are_not_evaluated(tmp_path):
    source = "from __future__ import annotations\n\ndef f(x: print('no')) -> open('x'):\n    return x\n"
    assert summarize(write(tmp_path, "m.py", source)).import_safe


@pytest.mark.parametrize(
    "content, words",
    [
        (b"def f(:\n    pass\n", "syntax error"),
        (b"x = 1\x00\n", "null bytes"),
        (b"x = '\xff\xfe'\n", "utf-8"),
        (("x = " + "+".join(["1"] * 200_000) + "\n").encode(), "nested too deeply"),
    ],
    ids=["syntax", "nul-bytes", "undecodable", "200k-terms"],
)
def test_every_parse_failure_is_a_parse_error(tmp_path, content, words):
    path = tmp_path / "bad.py"
    path.write_bytes(content)
    with pytest.raises(MulintError) as caught:
        summarize(path)
    assert caught.value.step == "parse" and words in str(caught.value) and "bad.py" in str(caught.value)


def test_unreadable_files_are_parse_errors(tmp_path):
    loop = tmp_path / "loop.py"
    loop.symlink_to(tmp_path / "loop.py")
    for path in (loop, tmp_path / "missing.py", tmp_path):
        with pytest.raises(MulintError) as caught:
            summarize(path)
        assert caught.value.step == "parse" and str(path) in str(caught.value)


# Fragments of import-time code with no effect; some hold effects where Python never runs them.
PURE_FRAGMENTS = [
    "import math\nSCALE = math.sqrt(2.0) / 3",
    "HERE = os.path.dirname(os.path.abspath(__file__))\nDATA = pathlib.Path(__file__).parent / 'data'",
    "from typing import Optional, TypeVar\nT = TypeVar('T')\nMaybe = Optional[int]",
    "@dataclasses.dataclass\nclass Settings:\n    depth: int = 2\n"
    "    names: list = dataclasses.field(default_factory=list)\n"
    "DEFAULTS = Settings(depth=3)",
    "def later():\n    EFFECT\n\nLATER = lambda: EFFECT",
    "class Lazy:\n    def run(self, n=3):\n        EFFECT\n        return n\n\n    @functools.lru_cache(maxsize=None)\n"
    "    def cached(self):\n        return 1",
    'if __name__ == "__main__":\n    EFFECT',
    "if TYPE_CHECKING:\n    EFFECT",
    "try:\n    import not_a_real_module_xyz\nexcept ImportError:\n    not_a_real_module_xyz = None",
    "WORDS = sorted({'b': 1, 'a': 2}, key=len)\nJOINED = ', '.join(WORDS).upper()",
]

_IMPORT_PRELUDE = """\
import dataclasses
import functools
import os
import pathlib
from typing import TYPE_CHECKING

CANARY = {canary!r}


def _touch():
    open(CANARY, "w").close()
"""

_TORCH_FREE = [p for p, (body, extras) in POSITIONS.items() if "Tiny" not in body]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    pure=st.lists(st.sampled_from(PURE_FRAGMENTS), max_size=4),
    unsafe=st.one_of(st.none(), st.sampled_from(_TORCH_FREE)),
    effect=st.sampled_from(EFFECTS),
)
def test_a_file_judged_safe_runs_nothing_when_python_imports_it(pure, unsafe, effect):
    """Soundness against Python itself: importing a file judged safe never creates the canary."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        canary = folder / "canary"
        parts = [_IMPORT_PRELUDE.format(canary=str(canary)), *pure]
        if unsafe is not None:
            build(folder, unsafe, effect)  # writes its extra files beside
            parts.append(POSITIONS[unsafe][0].replace("# <-", ""))
        source = "\n\n".join(parts).replace("EFFECT", effect) + "\n"
        (folder / "model.py").write_text(source)
        safe = summarize(folder / "model.py").import_safe
        subprocess.run([sys.executable, "-c", "import model"], cwd=folder, capture_output=True, timeout=60)
        assert not (safe and canary.exists()), source
        assert safe is (unsafe is None), source


@pytest.mark.parametrize(
    "siblings, source, line",
    [
        ({"lazy.py": "def __getattr__(name):\n    print(name)\nX = 1\n"}, "import lazy\nA = lazy.X\nB = lazy.Y\n", 3),
        ({"lazy.py": "def __getattr__(name):\n    print(name)\n"}, "from lazy import Z\n", 1),
        ({"util.py": "def tool():\n    print(1)\n"}, "from util import *\ntool()\n", 2),
        ({"util.py": "from math import sqrt\n"}, "from util import *\nROOT2 = sqrt(2)\n", None),
        (
            {"cfg.py": "from dataclasses import dataclass\n@dataclass\nclass Cfg:\n    w: int = 3\n"},
            "from cfg import Cfg\nC = Cfg(w=4)\nimport cfg\nD = cfg.Cfg()\n",
            None,
        ),
        ({"fast.cpython-311-x86_64-linux-gnu.so": ""}, "import fast\n", 1),
        ({"sys.py": "print('never: sys is built in')\n"}, "import sys\n", None),
        (
            {},
            "from dataclasses import dataclass\n@dataclass\nclass C:\n    a: int = 1\n    @property\n"
            "    def b(self):\n        return print(1)\nD = C()\n",
            8,
        ),
        ({}, "import functools\n@functools.partial(print, 'x')\ndef f():\n    pass\n", 2),
        (
            {},
            "import logging\nlog = logging.getLogger(__name__)\nlog.setLevel(logging.INFO)\nlog.propagate = False\n",
            None,
        ),
        ({}, "import logging\nlog = logging.getLogger(__name__)\nlog.addHandler(logging.FileHandler('x.log'))\n", 3),
        ({}, "import collections\nD = collections.defaultdict(list)\nE = collections.defaultdict(print)\n", 3),
        ({}, "LAYERS = [1]\nLAYERS += [2]\nLAYERS.append(3)\nREG = {}\nREG['a'] = 1\n", None),
        ({}, "import os\nenv = os.environ\nenv['X'] = '1'\n", 3),
        ({}, "import typing\nif typing.TYPE_CHECKING:\n    import os\n    os.system('x')\n", None),
    ],
    ids=[
        "module-getattr",
        "module-getattr-from",
        "star-function",
        "star-import-alias",
        "sibling-dataclass",
        "compiled-sibling",
        "builtin-module",
        "dataclass-property",
        "partial-decorator",
        "logger-config",
        "file-handler",
        "defaultdict-factory",
        "own-containers",
        "environ-alias",
        "typing-type-checking",
    ],
)
def test_what_the_walk_follows(tmp_path, siblings, source, line):
    for name, text in siblings.items():
        write(tmp_path, name, text)
    assert summarize(write(tmp_path, "m.py", source)).unsafe_line == line
