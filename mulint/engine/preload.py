"""What the worker server imports before it forks a worker: the modules every model job imports anyway.

Imported once in the worker server (`mulint.engine.isolation` preloads this module), a module costs each
worker nothing; imported inside the job, it costs every job its import time again (a worker starts from
the server's state and ends with its target). On examples/nanogpt_sp.py these took ~2.5 s of a 4.5 s
job: torch._dynamo (which `torch.compiler.set_stance` imports), the parts of torch.export it imports on
its first call, and mulint's analysis, rules and source readers. Only what every check, inspect or coord
job imports belongs here: anything else would slow the first check for nothing. Importing them runs no
torch operation and starts no thread, so forking after it stays safe.

torch's private module names change between releases: one that is gone is skipped (the job then
imports what it needs itself), never an error.
"""

import importlib

TORCH_MODULES = (
    "torch._dynamo",  # torch.compiler.set_stance
    "torch.export",
    "torch.export._trace",
    "torch.export._unlift",
    "torch._export.non_strict_utils",
    "torch._export.passes._node_metadata_hook",
    "torch._export.passes.replace_autocast_with_hop_pass",
    "torch._export.passes.replace_set_grad_with_hop_pass",
    "torch._functorch.aot_autograd",
    "torch._inductor.compiler_bisector",
    "torch._inductor.fx_passes.dedupe_symint_uses",
    "torch._inductor.sizevars",
    "torch._subclasses.schema_check_mode",
    "torch.fx.experimental.validator",
    "torch.utils.flop_counter",
    "libcst.native",  # the parser mulint's source readers use
)
MULINT_MODULES = (
    "mulint.analysis.model",
    "mulint.engine.cache",
    "mulint.engine.deps",
    "mulint.engine.suppress",
    "mulint.reading.guard",
    "mulint.reading.lr_scale_reads",
    "mulint.reading.targets",
)


def preload() -> list[str]:
    """Import the modules; the names that could not be imported."""
    missing = []
    for name in TORCH_MODULES + MULINT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    from mulint.rules import all_rules

    all_rules()  # imports every rule module (the registry is found by importing them)
    from mulint.engine import observe

    observe.remember_distributions()  # once here, not in every worker
    return missing


preload()
