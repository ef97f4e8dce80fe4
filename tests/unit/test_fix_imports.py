"""The imports a fix adds are placed exactly as libcst's AddImportsVisitor places them on the whole file,
though only the file's opening statements are visited."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from mulint.fix.context import _with_imports

SOURCES = {
    "imports then code": "import torch\nimport torch.nn as nn\n\n\nclass A(nn.Module):\n    pass\n",
    "docstring first": '"""A model."""\n\nimport torch\n\n# a comment\nX = 1\n',
    "docstring, no imports": '"""A model."""\nX = 1\n',
    "no imports": "# header comment\n\nclass A:\n    pass\n",
    "future import": "from __future__ import annotations\n\nimport os\nx = 1\n",
    "already imported": "import math\nimport fnmatch\n\ny = math.pi\n",
    "imported as": "import math as m\n\ny = m.pi\n",
    "imported inside a function": "import os\n\n\ndef f():\n    import math\n    return math.pi\n",
    "code between imports": "import os\nx = 1\nimport sys\n",
    "star import": "from math import *\n\ny = pi\n",
    "comment above the first class": "import os\n# the model\n# (two lines)\nclass A:\n    pass\n",
    "no blank line after imports": "import os\nclass A:\n    pass\n",
    "only imports": "import os\nimport sys\n",
    "empty": "",
    "strict flag": "__strict__ = True\nimport os\nx = 1\n",
    "semicolons": "import os; import sys\nx = 1\n",
    "crlf": "import os\r\n\r\nx = 1\r\n",
    "tabs and a decorator": "import os\n\n@decorate\nclass A:\n\tpass\n",
    "docstring then the import": '"""A model."""\nimport math\nimport fnmatch\nx = 1\n',
    "two on one line": "import os, math, fnmatch\n\nx = 1\n",
    "a submodule only": "import math.x\nimport fnmatch\n",
    "after a semicolon line": "import os; import sys\nimport math\nimport fnmatch\n",
    "imported under a guard": "if True:\n    import math\n    import fnmatch\n",
    "docstring and code on one line": '"""A model."""; x = 1\nimport math\nimport fnmatch\n',
    "strict flag then the import": "__strict__ = True\nimport math\nimport fnmatch\n",
    "imported after code": "x = 1\nimport math\nimport fnmatch\n",
    "only a docstring": '"""A model."""\n',
    "docstring then a comment": '"""A model."""\n# why\nx = 1\n',
    "comment then blank line": "import os\n# why\n\nx = 1\n",
    "blank lines then code": "import os\n\n\n\nx = 1\n",
    "a torch.nn import": "import torch.nn\nimport os\n",
    "from import of the module": "from math import pi\n\nx = pi\n",
    "concatenated docstring": '"a" "b"\nimport os\n',
    "indented file": "if x:\n    import os\nimport math\n",
}
IMPORTS = [
    [("math", None)],
    [("fnmatch", None), ("math", None)],
    [("math", None), ("fnmatch", None), ("math", None)],
    [("os", None), ("zlib", None)],
    [("torch.nn", None)],
    [("torch.nn", "functional")],
]


def whole_file(module: cst.Module, imports) -> cst.Module:
    context = CodemodContext()
    for mod, name in imports:
        AddImportsVisitor.add_needed_import(context, mod, name)
    return AddImportsVisitor(context).transform_module(module)


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("imports", IMPORTS, ids=lambda i: "+".join(m for m, _ in i))
def test_imports_land_where_the_whole_file_visit_puts_them(name, imports):
    module = cst.parse_module(SOURCES[name])
    assert _with_imports(module, imports).code == whole_file(module, imports).code
