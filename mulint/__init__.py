"""mulint: a linter for the Maximal Update Parametrization (µP) of PyTorch models.

From Python: `mulint.check(model_fn)`, `mulint.inspect(model_fn)`, `mulint.coord(model_fn)`; every
failure is a `mulint.MulintError` with `target`, `step` and `hint`. The API is imported on first use,
so `import mulint` stays cheap (the command line and the pytest plugin import it).
"""

from mulint.errors import MulintError
from mulint.version import __version__

__all__ = [
    "check",
    "inspect",
    "coord",
    "transfer",
    "Report",
    "Analysis",
    "CoordReport",
    "TransferReport",
    "MulintError",
    "__version__",
]
_API = {"check", "inspect", "coord", "transfer", "Report", "Analysis", "CoordReport", "TransferReport"}


def __getattr__(name: str):
    if name in _API:
        from mulint import api

        return getattr(api, name)
    raise AttributeError(f"module 'mulint' has no attribute {name!r}")
