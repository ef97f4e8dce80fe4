"""Facts of a small pre-LN GPT (two blocks traced, an attention and an MLP branch each) with its depth facts,
for the fast tests of the depth rules: a case reads like the model it stands for.

    facts = gpt(alpha=1.0)                     # CompleteP: branches × 1/L, one lr, ε ∝ 1/L
    facts = gpt(alpha=0.5, block_lr=0.0)       # Depth-µP without its lr rule
    facts = gpt(alpha=None, proj_init=-0.5)    # GPT-2: std/sqrt(2L) on c_proj, no multiplier

Exponents of L are given; the numbers behind them are made at DEPTHS the way the analysis makes them
(mulint.analysis.depth_numbers), fitted with `mulint.exponents.fit_exponent`. The width facts are µP's
(tests/unit/facts_builder.py), so only depth differs between cases.
"""

from __future__ import annotations

from mulint.exponents import fit_exponent
from mulint.facts import DepthFacts, ParamDepth, ResidualBranch

from .facts_builder import adam, at, embedding, hidden, model, output, vector

BASE_DEPTH = 4
DEPTHS = [4, 8, 16]
ADD_LINE = {"h.*.attn": 30, "h.*.mlp": 31}  # the residual adds, in Block.forward
MULT_LINE = 29  # self.mult = (BASE_DEPTH / n_layer) ** alpha
PROJ_INIT_LINE = 22  # nn.init.normal_(c_proj.weight, std=...)
EXTRA_LINE = 36  # x = x + self.x0_gate * x0


def per_depth(value: float, exponent: float) -> dict[int, float]:
    return {d: value * (d / BASE_DEPTH) ** exponent for d in DEPTHS}


def param_depth(
    name: str,
    branch: str = "",
    *,
    init: float | None = 0.0,
    std: float = 0.02,
    lr: float | None = None,
    eps: float | None = None,
    eps0: float = 1e-8,
) -> ParamDepth:
    rms = per_depth(std, init) if init is not None else dict.fromkeys(DEPTHS, 0.0)
    lrs = per_depth(1e-3, lr) if lr is not None else {}
    epss = per_depth(eps0, eps) if eps is not None else {}
    return ParamDepth(
        name=name,
        block=bool(branch),
        branch=branch,
        init_rms=rms,
        init_exponent=fit_exponent(rms),
        lr=lrs,
        lr_exponent=fit_exponent(lrs) if lrs else None,
        eps=epss,
        eps_exponent=fit_exponent(epss) if epss else None,
    )


def residual(
    name: str,
    params: tuple[str, ...],
    *,
    alpha: float | None,
    source: str,
    kind: str = "main",
    line: int | None = None,
    knob: str = "",
    skip: float = 0.0,
    cancelled: bool = False,
    post: bool = False,
    mult_line: int = MULT_LINE,
) -> ResidualBranch:
    mult = per_depth(1.0, -alpha) if alpha is not None else {}
    return ResidualBranch(
        name=name,
        kind=kind,
        params=params,
        loc=at(line or ADD_LINE.get(name, EXTRA_LINE), "x = x + self.mult * self.attn(self.ln_1(x))"),
        multiplier=mult if source != "constant" else dict.fromkeys(DEPTHS, 0.22),
        alpha=alpha if source != "constant" else 0.0,
        multiplier_at=at(mult_line, "self.mult = ...") if source != "none" else None,
        source=source,
        knob=knob,
        skip_exponent=skip,
        cancelled_by_norm=cancelled,
        post_norm=post,
    )


def gpt(
    alpha: float | None = 1.0,
    *,
    source: str | None = None,
    block_lr: float | None = None,
    proj_init: float = 0.0,
    proj_lr: float | None = None,
    eps: float | None = None,
    nonblock_lr: float = 0.0,
    gate: bool = False,
    gate_lr: float | None = None,
    extra: float | None = None,
    optimizer=None,
    sgd: bool = False,
    profile: str = "mup",
    grad_rms: float | None = None,
    knob: str = "",
    skip: float = 0.0,
    cancelled: bool = False,
    post: bool = False,
):
    """`alpha`: the exponent of the factor at the add (None: no factor); `block_lr` defaults to that α's
    lr rule (Adam α−1, SGD 2α−1, 0 without a factor), `eps` to ε ∝ L^-α; `proj_init` is c_proj's init
    exponent of L (GPT-2: -0.5), `proj_lr` its lr exponent; `gate`: the factor is a learnable gate
    (h.*.attn_gate / h.*.mlp_gate) initialised ∝ L^-α; `extra`: an x0 injection scaled as L^-extra."""
    a = alpha or 0.0
    if block_lr is None:
        block_lr = (2 * a - 1 if sgd else a - 1) if alpha else 0.0
    if eps is None:
        eps = -a
    if source is None:
        source = "learned" if gate else "depth" if alpha is not None else "none"
    eps_of = None if sgd else eps
    depth_params, branches = [], []
    for branch in ("attn", "mlp"):
        pattern, first, last = f"h.*.{branch}", ("c_attn" if branch == "attn" else "c_fc"), "c_proj"
        names = []
        for i in (0, 1):
            ln = f"h.{i}.ln_{1 if branch == 'attn' else 2}.weight"
            fc, proj = f"h.{i}.{branch}.{first}.weight", f"h.{i}.{branch}.{last}.weight"
            names += [ln, fc, proj]
            depth_params += [
                param_depth(ln, pattern, std=1.0, lr=block_lr, eps=eps_of),
                param_depth(fc, pattern, lr=block_lr, eps=eps_of),
                param_depth(proj, pattern, init=proj_init, lr=block_lr if proj_lr is None else proj_lr, eps=eps_of),
            ]
            if gate:
                g = f"h.{i}.{branch}_gate"
                names.append(g)
                lr = block_lr - a if gate_lr is None else gate_lr
                depth_params.append(param_depth(g, pattern, std=1.0, init=-a, lr=lr, eps=eps_of))
        branches.append(
            residual(
                pattern,
                tuple(names),
                alpha=alpha,
                source=source,
                knob=knob,
                skip=skip,
                cancelled=cancelled,
                post=post,
            )
        )
    for name, std in (("wte.weight", 1.0), ("ln_f.weight", 1.0), ("head.weight", 0.02)):
        depth_params.append(param_depth(name, std=std, lr=nonblock_lr, eps=None if sgd else 0.0))
    if extra is not None:
        depth_params.append(param_depth("x0_gate", "x0", std=1.0, init=-extra, lr=block_lr - extra, eps=eps_of))
        branches.append(residual("x0", ("x0_gate",), alpha=extra, source="learned", kind="extra", mult_line=EXTRA_LINE))
    width_params = [embedding("wte.weight", lr=0.0)]
    for i in (0, 1):
        for branch, first in (("attn", "c_attn"), ("mlp", "c_fc")):
            width_params += [
                hidden(f"h.{i}.{branch}.{first}.weight", lr=-1.0),
                hidden(f"h.{i}.{branch}.c_proj.weight", lr=-1.0, init_line=PROJ_INIT_LINE),
            ]
        width_params += [vector(f"h.{i}.ln_1.weight", lr=0.0), vector(f"h.{i}.ln_2.weight", lr=0.0)]
    width_params += [vector("ln_f.weight", lr=0.0), output("head.weight", init=None, lr=-1.0)]
    if sgd:
        from .facts_builder import sgd as make_sgd

        optimizer = optimizer or make_sgd()
    facts = model(*width_params, optimizer=optimizer or adam(hidden_grad_rms=grad_rms), profile=profile)
    facts.depth = DepthFacts(
        knob="n_layer", base_depth=BASE_DEPTH, depths=list(DEPTHS), branches=branches, params=depth_params
    )
    return facts
