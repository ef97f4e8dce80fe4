"""Calls known to have no effect outside the process, so that a model file using them stays importable.

Everything not listed here is assumed to have effects: a call mulint cannot judge keeps the file
from being imported by a plain check (static rules still run; naming the model imports it).

Two entries are global process settings rather than pure functions and are listed on purpose:
seeding (``torch.manual_seed``) and ``torch.set_default_dtype``/``warnings.filterwarnings``. They
touch nothing outside the process, and model files set them at the top as a matter of course.

``torch.jit.script`` and ``torch.compile`` are listed too: applied to a function or class they
compile (``torch.jit.script``) or wrap it lazily (``torch.compile``); neither calls user code.
"""

from __future__ import annotations

import ast
import re

# Exact dotted names, and "module.*" for every callable of a module of pure functions.
PURE_CALLS = frozenset(
    {
        "dataclasses.dataclass",
        "dataclasses.field",
        "dataclasses.fields",
        "dataclasses.is_dataclass",
        "typing.*",
        "typing_extensions.*",
        "functools.partial",
        "functools.partialmethod",
        "functools.wraps",
        "functools.update_wrapper",
        "functools.lru_cache",
        "functools.cache",
        "functools.cached_property",
        "functools.total_ordering",
        "functools.singledispatch",
        "functools.singledispatchmethod",
        "functools.reduce",
        "collections.namedtuple",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "collections.Counter",
        "collections.ChainMap",
        "enum.auto",
        "enum.unique",
        "enum.Enum",
        "enum.IntEnum",
        "enum.Flag",
        "enum.IntFlag",
        "enum.StrEnum",
        "abc.abstractmethod",
        "contextlib.contextmanager",
        "types.SimpleNamespace",
        "types.MappingProxyType",
        "os.path.*",
        "os.getenv",
        "os.environ.get",
        "os.fspath",
        "os.cpu_count",
        "os.getcwd",
        "sys.getrecursionlimit",
        "math.*",
        "cmath.*",
        "itertools.*",
        "re.compile",
        "re.escape",
        "operator.itemgetter",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.add",
        "operator.sub",
        "operator.mul",
        "operator.truediv",
        "operator.floordiv",
        "operator.index",
        "operator.neg",
        "pathlib.Path",
        "pathlib.PurePath",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "logging.getLogger",
        "logging.NullHandler",
        "transformers.utils.logging.get_logger",
        "transformers.logging.get_logger",
        "warnings.filterwarnings",
        "warnings.simplefilter",
        "random.seed",
        "numpy.random.seed",
        "torch.manual_seed",
        "torch.random.manual_seed",
        "torch.cuda.manual_seed",
        "torch.cuda.manual_seed_all",
        "torch.device",
        "torch.set_default_dtype",
        "torch.get_default_dtype",
        "torch.finfo",
        "torch.iinfo",
        "torch.Size",
        "torch.cuda.is_available",
        "torch.backends.mps.is_available",
        "torch.cuda.device_count",
        "torch.no_grad",
        "torch.inference_mode",
        "torch.enable_grad",
        "torch.jit.script",
        "torch.jit.ignore",
        "torch.jit.unused",
        "torch.jit.export",
        "torch.jit.interface",
        "torch.jit.is_scripting",
        "torch.jit.is_tracing",
        "torch.compile",
        "torch.fx.wrap",
        "torch.autograd.function.once_differentiable",
        "torch.autocast",
        "torch.amp.autocast",
        "torch.amp.custom_fwd",
        "torch.amp.custom_bwd",
        "torch.compiler.disable",
        "torch.tensor",
        "torch.as_tensor",
        "torch.zeros",
        "torch.ones",
        "torch.full",
        "torch.empty",
        "torch.arange",
        "torch.linspace",
        "torch.eye",
        "torch.tril",
        "torch.triu",
        "triton.jit",
        "triton.autotune",
        "triton.heuristics",
        "triton.Config",
        # transformers' decorators that document or wrap a definition (HF-style model files use them).
        "transformers.utils.auto_docstring",
        "transformers.utils.can_return_tuple",
        "transformers.utils.generic.can_return_tuple",
        "transformers.utils.generic.check_model_inputs",
        "transformers.utils.deprecation.deprecate_kwarg",
        "transformers.modeling_rope_utils.dynamic_rope_update",
        "transformers.integrations.use_kernel_forward_from_hub",
        "transformers.integrations.use_kernelized_func",
        "transformers.integrations.use_kernel_func_from_hub_with_fallback",
        "transformers.integrations.use_experts_implementation",
        "transformers.utils.add_start_docstrings",
        "transformers.utils.add_start_docstrings_to_model_forward",
        "transformers.utils.replace_return_docstrings",
        "transformers.utils.add_code_sample_docstrings",
        "transformers.utils.generic.merge_with_config_defaults",
        "transformers.utils.output_capturing.OutputRecorder",
        "transformers.utils.output_capturing.capture_outputs",
        "transformers.integrations.accelerate.force_accelerate_hooks",
        "transformers.backbone_utils.filter_output_hidden_states",
        "transformers.pytorch_utils.compile_compatible_method_lru_cache",
    }
)
# transformers' `is_flash_attn_available()` and kin only look whether a package is installed.
_AVAILABILITY = re.compile(r"^transformers(\.\w+)*\.is_\w+_available$")

# Typing functions that evaluate string annotations (``eval``): not pure.
_IMPURE_IN_PURE_MODULES = frozenset({"typing.get_type_hints", "typing_extensions.get_type_hints"})

PURE_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "complex",
        "dict",
        "dir",
        "divmod",
        "enumerate",
        "float",
        "format",
        "frozenset",
        "getattr",
        "hasattr",
        "hash",
        "hex",
        "id",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "max",
        "min",
        "next",
        "object",
        "oct",
        "ord",
        "pow",
        "property",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "tuple",
        "vars",
        "zip",
        "map",
        "filter",
        "super",
    }
)

# Pure calls that call the functions they are given (a key, a mapped function): a function of the
# file passed to them runs at import.
CALLS_ITS_ARGUMENTS = frozenset(
    {"sorted", "min", "max", "map", "filter", "iter", "functools.reduce", "collections.defaultdict"}
)  # a missing key calls the factory

STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "center",
        "count",
        "encode",
        "endswith",
        "expandtabs",
        "find",
        "format",
        "format_map",
        "index",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isspace",
        "isupper",
        "join",
        "ljust",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rjust",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        "zfill",
        "decode",
    }
)

# Methods of a pathlib path that read at most (``exists``) and return a path or a value.
PATH_METHODS = frozenset(
    {
        "resolve",
        "absolute",
        "with_name",
        "with_suffix",
        "with_stem",
        "joinpath",
        "expanduser",
        "relative_to",
        "as_posix",
        "exists",
        "is_file",
        "is_dir",
        "is_absolute",
        "match",
    }
)
PATH_RETURNING = frozenset(
    {"resolve", "absolute", "with_name", "with_suffix", "with_stem", "joinpath", "expanduser", "relative_to"}
)

# Methods of a value the file itself made, by its kind: mutating its own container reaches nothing
# else; configuring its logger touches no file (a FileHandler would, and is not pure to build).
OWN_VALUE_METHODS = {
    "container": frozenset(
        {
            "append",
            "extend",
            "insert",
            "update",
            "setdefault",
            "get",
            "keys",
            "values",
            "items",
            "copy",
            "index",
            "count",
            "add",
            "discard",
            "pop",
            "remove",
            "union",
            "intersection",
            "difference",
        }
    ),
    "logger": frozenset({"setLevel", "addHandler", "addFilter", "removeHandler", "getChild", "isEnabledFor"}),
}


def is_pure_call(qualname: str, call: ast.Call | None = None) -> bool:
    """Whether calling the object named `qualname` (``torch.manual_seed``) is known to have no effect."""
    if qualname in _IMPURE_IN_PURE_MODULES:
        return False
    if qualname in PURE_CALLS or _AVAILABILITY.match(qualname):
        return True
    if qualname == "importlib.util.find_spec":
        return _finds_top_level(call)
    head = qualname
    while "." in head:
        head = head.rsplit(".", 1)[0]
        if f"{head}.*" in PURE_CALLS:
            return True
    return False


def _finds_top_level(call: ast.Call | None) -> bool:
    """``find_spec("flash_attn")`` only looks; ``find_spec("a.b")`` imports package ``a`` first."""
    if call is None or len(call.args) != 1:
        return False
    arg = call.args[0]
    return isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "." not in arg.value


def is_pure_builtin(name: str, call: ast.Call | None = None) -> bool:
    if name == "type":
        return call is not None and len(call.args) == 1  # type(x) looks; type(name, bases, ns) makes a class
    return name in PURE_BUILTINS
