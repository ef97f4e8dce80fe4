"""A small builder of `ModelFacts` for the fast tests: a rule's case reads like the model it stands for.

    facts = model(
        hidden("h.0.fc.weight", init=-0.5, lr=-1.0),
        output("head.weight", init=-1.0, lr=-1.0),
        optimizer=adam(),
    )

Exponents are given; the numbers behind them are made the way the analysis makes them (see
mulint/analysis/model.py and optimizer.py): init rms and learning rates per numeric width, their
exponents fitted by `mulint.exponents.fit_exponent`, uses with fan-in/out at the reference width,
biases and norm gains as elementwise uses of the same node, every parameter owned by the optimizer.
No torch: these facts are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mulint.exponents import fit_exponent
from mulint.facts import (
    AttentionSite,
    BranchFacts,
    CoordDepthMeasure,
    CoordLayer,
    ModelFacts,
    MupModule,
    OptimizerFacts,
    ParamFacts,
    ParamUse,
    SourceLoc,
)

PATH = "net.py"  # relative: findings print it as given
BASE = 128  # the model's default width
WIDTHS = [128, 256]  # built on the meta device: shapes and uses
NUMERIC = [128, 256, 512]  # built small on the CPU: init, learning rates, measured updates
VOCAB = 256
CLASSES = 10


def at(line: int, code: str = "") -> SourceLoc:
    return SourceLoc(PATH, line, 9 if code else 1, code)


def scaled(value: float, exponent: float) -> dict[int, float]:
    """width -> value at the base width times (width / base) ** exponent, at every numeric width."""
    return {w: value * (w / BASE) ** exponent for w in NUMERIC}


@dataclass
class Opt:
    """The optimizer a model is built with (see `adam`, `sgd`, `other`)."""

    cls: str
    family: str
    line: int = 60
    eps: float | None = None
    hidden_grad_rms: float | None = None
    label: str = f"{PATH}:make_optimizer"
    facts: OptimizerFacts = field(init=False)

    def __post_init__(self):
        self.facts = OptimizerFacts(
            label=self.label,
            cls=self.cls,
            family=self.family,
            loc=at(self.line, f"return torch.optim.{self.cls}(groups)"),
            eps=self.eps,
            hidden_grad_rms=self.hidden_grad_rms,
        )


def adam(cls: str = "AdamW", **kw) -> Opt:
    return Opt(cls, "adam", **kw)


def sgd(**kw) -> Opt:
    return Opt("SGD", "sgd", **kw)


def mixed(cls: str = "AdamW + Muon", **kw) -> Opt:
    """Several optimizers (Muon for matrices, AdamW beside it): each parameter names the one that steps it."""
    return Opt(cls, "mixed", **kw)


def other(cls: str = "Muon", **kw) -> Opt:
    """An optimizer without a learning-rate table (Muon, Lion-like custom ones): judged by measured updates."""
    return Opt(cls, "unknown", **kw)


def use(
    role: str,
    *,
    op: str = "linear",
    kind: str = "contraction",
    fan_in: int | None = None,
    fan_out: int | None = None,
    fan_in_infinite: bool = False,
    fan_out_infinite: bool = False,
    mult: float = 0.0,
    mult_line: int | None = None,
    line: int = 40,
    module: str = "",
    update: float | None = None,
    node: str = "linear",
) -> ParamUse:
    """One use of a parameter. `mult`: its multiplier's width exponent (the multiplier is 1 at the
    base width); `update`: the measured update exponent (RMS→RMS norm × multiplier, fitted)."""
    norms = {}
    if update is not None:
        norms = scaled(0.05, update - mult)  # the analysis measures ΔW alone and adds the multiplier's exponent
    return ParamUse(
        op=op,
        kind=kind,
        role=role,
        fan_in=fan_in,
        fan_out=fan_out,
        fan_in_infinite=fan_in_infinite,
        fan_out_infinite=fan_out_infinite,
        node=node,
        loc=at(line, "h = self.layer(x)"),
        multiplier=1.0,
        multiplier_exponent=mult,
        multiplier_at=at(mult_line, "x = x * self.mult") if mult_line else None,
        module=module,
        update_norm=norms,
        update_exponent=None if update is None else fit_exponent(norms) + mult,
    )


def param(
    name: str,
    shape: tuple[int, ...],
    infinite: tuple[int, ...],
    uses: list[ParamUse],
    *,
    init: float | None,
    std: float = 0.02,
    lr: float | None = None,
    lr0: float = 1e-3,
    wd: float = 0.0,
    wd_exp: float = 0.0,
    line: int = 17,
    init_line: int | None = None,
    late_init_line: int | None = None,
    aliases: tuple[str, ...] = (),
    module_type: str = "Linear",
    step: int | None = None,
    **extra,
) -> ParamFacts:
    """A parameter with its numbers: `init` the init rms exponent (None: zero init), `lr` the learning
    rate exponent (None: no optimizer steps it), `wd` its weight decay at base width."""
    rms = scaled(std, init) if init is not None else dict.fromkeys(NUMERIC, 0.0)
    lrs = scaled(lr0, lr) if lr is not None else {}
    shapes = {w: tuple(d * w // BASE if i in infinite else d for i, d in enumerate(shape)) for w in WIDTHS}
    created = at(line, f"self.{name.rsplit('.', 1)[0]} = nn.{module_type}(...)")
    measured = any(u.update_norm for u in uses)
    return ParamFacts(
        name=name,
        shape=shape,
        shapes=shapes,
        infinite_dims=infinite,
        uses=uses,
        aliases=aliases,
        module_type=module_type,
        created_at=created,
        init_rms=rms,
        init_exponent=fit_exponent(rms),
        init_at=at(init_line, "nn.init.normal_(module.weight, std=0.02)") if init_line else created,
        late_init_at=[at(late_init_line, "nn.init.normal_(p, std=0.02)")] if late_init_line else [],
        lr=lrs,
        lr_exponent=fit_exponent(lrs) if lrs else None,
        weight_decay={w: wd * (w / BASE) ** wd_exp for w in NUMERIC} if lrs else {},
        update_step=step if step is not None else (2 if measured else None),
        **extra,
    )


def hidden(
    name: str, *, init: float | None = -0.5, mult: float = 0.0, update: float | None = None, out: int = 1, **kw
) -> ParamFacts:
    """A width × width matrix (nn.Linear(width, out * width): `out=3` for a fused q, k, v projection)."""
    module = name.rsplit(".", 1)[0]
    u = use(
        "hidden",
        fan_in=BASE,
        fan_out=out * BASE,
        fan_in_infinite=True,
        fan_out_infinite=True,
        mult=mult,
        module=module,
        update=update,
    )
    kw.setdefault("line", 17)
    return param(name, (out * BASE, BASE), (0, 1), [u], init=init, **kw)


def embedding(
    name: str, *, init: float | None = 0.0, mult: float = 0.0, update: float | None = None, **kw
) -> ParamFacts:
    """An nn.Embedding(vocab, width) table: a lookup, the input role."""
    u = use(
        "input",
        op="embedding",
        kind="lookup",
        fan_in=VOCAB,
        fan_out=BASE,
        fan_out_infinite=True,
        mult=mult,
        module=name.rsplit(".", 1)[0],
        update=update,
        node="embedding",
    )
    kw.setdefault("std", 1.0)
    kw.setdefault("line", 16)
    return param(name, (VOCAB, BASE), (1,), [u], init=init, module_type="Embedding", **kw)


def dense_input(
    name: str, *, init: float | None = 0.0, mult: float = 0.0, update: float | None = None, **kw
) -> ParamFacts:
    """An nn.Linear(in_features, width): the input role of a dense first layer."""
    u = use(
        "input", fan_in=32, fan_out=BASE, fan_out_infinite=True, mult=mult, module=name.rsplit(".", 1)[0], update=update
    )
    kw.setdefault("line", 16)
    return param(name, (BASE, 32), (0,), [u], init=init, **kw)


def output(name: str, *, init: float | None = -1.0, mult: float = 0.0, update: float | None = None, **kw) -> ParamFacts:
    """An nn.Linear(width, classes) readout."""
    u = use(
        "output",
        fan_in=BASE,
        fan_out=CLASSES,
        fan_in_infinite=True,
        mult=mult,
        line=45,
        module=name.rsplit(".", 1)[0],
        update=update,
    )
    kw.setdefault("line", 19)
    return param(name, (CLASSES, BASE), (1,), [u], init=init, **kw)


def vector(
    name: str, *, init: float | None = 0.0, op: str = "layer_norm", update: float | None = None, **kw
) -> ParamFacts:
    """A bias or a norm gain of width entries: an elementwise use (init 0.0 with std 1: a LayerNorm gain)."""
    u = use("vector", op=op, kind="elementwise", module=name.rsplit(".", 1)[0], update=update, node=op)
    kw.setdefault("std", 1.0)
    kw.setdefault("line", 18)
    return param(name, (BASE,), (0,), [u], init=init, module_type="LayerNorm", **kw)


def scalar(name: str, *, init: float | None = None, **kw) -> ParamFacts:
    """A parameter with no width dimension (a readout's bias over the classes, a learned temperature)."""
    u = use("scalar", kind="elementwise", module=name.rsplit(".", 1)[0])
    kw.setdefault("line", 19)
    return param(name, (CLASSES,), (), [u], init=init, **kw)


def tied(
    name: str,
    alias: str,
    *,
    init: float | None = 0.0,
    in_mult: float = 0.0,
    out_mult: float = 0.0,
    out_line: int = 50,
    **kw,
) -> ParamFacts:
    """An embedding table that is also the readout (nanoGPT's wte / lm_head): an input and an output use."""
    uses = [
        use(
            "input",
            op="embedding",
            kind="lookup",
            fan_in=VOCAB,
            fan_out=BASE,
            fan_out_infinite=True,
            mult=in_mult,
            module=name.rsplit(".", 1)[0],
            node="embedding",
        ),
        use(
            "output",
            fan_in=BASE,
            fan_out=VOCAB,
            fan_in_infinite=True,
            mult=out_mult,
            line=out_line,
            module=alias.rsplit(".", 1)[0],
            node="linear_8",
        ),
    ]
    kw.setdefault("line", 16)
    return param(name, (VOCAB, BASE), (1,), uses, init=init, aliases=(alias,), module_type="Embedding", **kw)


def sdpa(
    *,
    line: int = 42,
    form: str = "sdpa-default",
    scale_exp: float = -0.5,
    head_dim_exp: float = 1.0,
    head_dim: int = 32,
    scale: float | None = None,
    count: int = 1,
    node: str = "scaled_dot_product_attention",
) -> AttentionSite:
    """An attention site; by default nanoGPT's: scaled_dot_product_attention with n_head fixed (head_dim ∝ width)."""
    return AttentionSite(
        node=node,
        form=form,
        loc=at(line, "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
        head_dim=head_dim,
        head_dim_exponent=head_dim_exp,
        scale=head_dim**-0.5 if scale is None else scale,
        scale_exponent=scale_exp,
        count=count,
    )


def coord_layer(name: str, slope: float, status: str, *, line: int = 30, module_type: str = "Linear") -> CoordLayer:
    return CoordLayer(
        name=name, module_type=module_type, slope=slope, status=status, loc=at(line, f"self.{name} = ...")
    )


def depth_measure(key: str, slope: float, status: str = "ok", *, line: int = 25) -> CoordDepthMeasure:
    """One measure of the depth coordinate check, located at the line building the list of blocks."""
    from mulint.coordcheck import DEPTH_MEASURES

    description, expected = DEPTH_MEASURES[key]
    return CoordDepthMeasure(
        key=key,
        description=description,
        slope=slope,
        expected=expected,
        status=status,
        loc=at(line, "self.blocks = ..."),
    )


def mup_module(
    name: str, cls: str = "MuReadout", *, base_shapes: bool = True, bias_ok: bool = True, line: int = 33
) -> MupModule:
    return MupModule(
        name=name, cls=cls, loc=at(line, f"self.{name} = {cls}(width, vocab)"), base_shapes=base_shapes, bias_ok=bias_ok
    )


def branch(name: str = "training", *, trains: bool = True, uses: dict | None = None, attention=None) -> BranchFacts:
    return BranchFacts(
        name=name,
        description=f"the {name} branch, `targets` given",
        trains=trains,
        uses=uses or {},
        attention=attention or [],
    )


def model(
    *params: ParamFacts,
    optimizer: Opt | None = None,
    attention: list[AttentionSite] | None = None,
    profile: str = "mup",
    target: str = f"{PATH}:Net",
    width_knob: str = "width",
    **extra,
) -> ModelFacts:
    """The facts of a model holding `params`; with `optimizer`, it owns every parameter that has a learning
    rate (with `mixed()`, each parameter is given its own: `optimizer="Muon", optimizer_family="unknown"`)."""
    facts = ModelFacts(
        target=target,
        path=PATH,
        width_knob=width_knob,
        base_width=BASE,
        widths=list(WIDTHS),
        params=list(params),
        attention=list(attention or []),
        numeric_widths=list(NUMERIC),
        optimizer=optimizer.facts if optimizer else None,
        profile=profile,
        **extra,
    )
    if optimizer is not None and optimizer.family != "mixed":  # in a mixed setup each parameter names its own
        for p in facts.params:
            if p.lr and not p.optimizer:
                p.optimizer, p.optimizer_family, p.optimizer_at = optimizer.cls, optimizer.family, optimizer.facts.loc
    return facts
