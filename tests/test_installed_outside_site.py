"""A package installed outside site-packages (`pip install --target vendor`, a folder with
`*.dist-info` on PYTHONPATH) is an installed package: its import-time code is trusted like any
installed library's, not judged (and refused) as the user's."""

import textwrap

import pytest

from mulint.reading.local_imports import distributed_names
from mulint.reading.safety import summarize


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def vendor(tmp_path, monkeypatch):
    """A vendored layers library whose __init__ registers itself at import (an effect mulint's
    import judge would refuse in user code), on sys.path as PYTHONPATH puts it."""
    folder = tmp_path / "vendor"
    write(
        folder / "tinylayers" / "__init__.py",
        """
        import logging
        logging.getLogger("tinylayers").warning("registering kernels")
        from tinylayers.mlp import GatedMLP
    """,
    )
    write(
        folder / "tinylayers" / "mlp.py",
        """
        import torch.nn as nn

        class GatedMLP(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.up = nn.Linear(d, 2 * d)
                self.down = nn.Linear(d, d)

            def forward(self, x):
                a, b = self.up(x).chunk(2, -1)
                return self.down(a * b.sigmoid())
    """,
    )
    monkeypatch.syspath_prepend(str(folder))
    distributed_names.cache_clear()
    yield folder
    distributed_names.cache_clear()


MODEL = """
import torch.nn as nn
from tinylayers import GatedMLP


class Net(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.mlp = GatedMLP(width)
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(self.mlp(self.inp(x)))
"""


def add_metadata(vendor, how):
    info = vendor / "tinylayers-0.3.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: tinylayers\nVersion: 0.3\n")
    if how == "top_level":
        write(info / "top_level.txt", "tinylayers\n")
    else:
        write(info / "RECORD", "tinylayers/__init__.py,,\ntinylayers/mlp.py,,\ntinylayers-0.3.dist-info/METADATA,,\n")


def test_without_metadata_the_folder_is_the_users_code(vendor, tmp_path):
    summary = summarize(write(tmp_path / "proj" / "net.py", MODEL))
    assert not summary.import_safe  # judged as user code: the logging call at import is an effect


@pytest.mark.parametrize("how", ["top_level", "record"])
def test_with_dist_info_it_is_an_installed_package(vendor, tmp_path, how):
    add_metadata(vendor, how)
    assert distributed_names(vendor.resolve()) == {"tinylayers"}
    summary = summarize(write(tmp_path / "proj" / "net.py", MODEL))
    assert summary.import_safe, (summary.unsafe_line, summary.unsafe_reason)
    assert summary.top_level_models == ["Net"]
