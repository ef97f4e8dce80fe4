"""What the analysis knows about a model: plain data, no torch, no rules.

Reporters and rules read these; only the analysis passes write them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ROLES = ("input", "hidden", "output", "vector", "scalar")
# How `lr_scale`-style param-group keys are taken (config `lr-scale`): as the code reads them, always, never.
LR_SCALE_MODES = ("auto", "applied", "ignored")


@dataclass(frozen=True)
class SourceLoc:
    path: str
    line: int
    column: int = 1
    code: str = ""  # the source line, stripped, for messages

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass
class ParamUse:
    """One place the traced graph consumes a parameter."""

    op: str  # aten op name, e.g. "linear", "addmm", "embedding", "layer_norm"
    kind: str  # "contraction", "lookup" or "elementwise"
    role: str
    fan_in: int | None  # at the reference width; None for elementwise uses
    fan_out: int | None
    fan_in_infinite: bool
    fan_out_infinite: bool
    node: str  # name of the consuming node in the exported graph
    loc: SourceLoc | None = None
    multiplier: float = 1.0  # constant factor on this use's path (the abc view's `a`), at the reference width
    multiplier_exponent: float = 0.0  # how that factor scales with width: a ∝ width^exponent
    multiplier_at: SourceLoc | None = None
    module: str = ""  # the module the consuming op runs in, e.g. "lm_head"
    update_norm: dict[int, float] = field(default_factory=dict)  # width -> RMS→RMS norm of a measured ΔW
    update_exponent: float | None = None  # of update_norm × multiplier; the spectral condition wants 0


@dataclass
class ParamFacts:
    name: str
    shape: tuple[int, ...]  # at the reference width
    shapes: dict[int, tuple[int, ...]]  # width -> shape
    infinite_dims: tuple[int, ...]
    uses: list[ParamUse] = field(default_factory=list)
    aliases: tuple[str, ...] = ()  # other names of the same tensor (weight tying)
    module_type: str = ""
    created_at: SourceLoc | None = None
    role_source: str = "use"  # "use" (from the graph) or "shape" (not used in the trace)
    init_rms: dict[int, float] = field(default_factory=dict)  # width -> root-mean-square entry at init
    init_exponent: float | None = None  # rms ∝ width^exponent; None when zero at every width
    init_at: SourceLoc | None = None  # the line that last wrote the parameter while building
    late_init_at: list[SourceLoc] = field(default_factory=list)  # writes after mup's set_base_shapes
    mup_infshape: bool = False  # the mup package's base shapes are attached
    update_step: int | None = None  # the optimizer step whose update was measured (mulint.analysis.updates)
    update_settings: str = ""  # its param group's shape-dependent settings, e.g. "adjust_lr_fn='original'"
    update_no_grad: bool = False  # no gradient reached it at the measured step
    update_self_tuned: bool = False  # its optimizer sets its own step size (Prodigy): measured, not judged
    # stepped by the Adam-style path of an optimizer that orthogonalises its other parameters (Moonlight's
    # Muon keeps an AdamW "backup" for the embedding, the readout and vectors): not Muon's update
    update_unorthogonalised: bool = False
    update_per_coordinate: bool = False  # a probe step left its zero-gradient entries still (mulint.analysis.updates)
    lr: dict[int, float] = field(default_factory=dict)  # width -> learning rate its param group gives it
    # (times the group's lr_scale-like key when a training loop applies one)
    lr_exponent: float | None = None  # lr ∝ width^exponent; None without an optimizer (or lr 0)
    weight_decay: dict[int, float] = field(default_factory=dict)  # width -> weight decay
    lr_scale_key: str | None = None  # the param-group key (lr_scale) the lr was multiplied by, if any
    lr_source: str = ""  # where the lr was read and which assumption made it effective, in words
    optimizer: str = ""  # class of the optimizer that steps it ("AdamW", "Muon"), when there are several
    optimizer_family: str = ""  # "adam", "sgd" or "unknown"
    optimizer_at: SourceLoc | None = None  # the line constructing that optimizer

    @property
    def roles(self) -> tuple[str, ...]:
        seen = {u.role for u in self.uses}
        if not seen:
            return ()
        return tuple(r for r in ROLES if r in seen)

    @property
    def primary_use(self) -> ParamUse | None:
        """The first use that contracts the parameter: the one its fan-in/out are read from."""
        return next((u for u in self.uses if u.kind in ("contraction", "lookup")), None)

    @property
    def fan_in(self) -> int | None:
        use = self.primary_use
        return use.fan_in if use else None

    @property
    def fan_out(self) -> int | None:
        use = self.primary_use
        return use.fan_out if use else None


@dataclass
class MupModule:
    """A layer from the mup package, and whether it is usable as built."""

    name: str
    cls: str  # e.g. "MuReadout"
    loc: SourceLoc | None
    base_shapes: bool  # set_base_shapes attached infshape to its parameters
    bias_ok: bool = True  # MuSharedReadout's bias has the readout's (vocab) shape


@dataclass
class OptimizerFacts:
    label: str  # the factory, e.g. "examples/mlp_sp.py:make_optimizer"
    cls: str  # e.g. "AdamW"
    family: str  # "adam", "sgd", "unknown" (not judged) or "mixed" (several optimizers: see each parameter)
    loc: SourceLoc | None  # the line that constructs the optimizer
    eps: float | None = None
    missing: list[str] = field(default_factory=list)  # trainable parameters in no param group
    hidden_grad_rms: float | None = None  # rms gradient entry of hidden weights at the largest width


@dataclass
class CoordLayer:
    """One layer's result in the dynamic coordinate check."""

    name: str  # module path, or "output"
    module_type: str
    slope: float  # of mean |h_t - h_0| against width, at the last step
    status: str  # "ok", "blow-up" or "collapse"
    loc: SourceLoc | None  # where the layer is constructed


@dataclass
class CoordDepthMeasure:
    """One quantity of the depth coordinate check (`check --coord` on a model with a depth knob): its
    log-log slope against the depth L, the width fixed (mulint.coordcheck.DEPTH_MEASURES names them)."""

    key: str  # "stream_change", "block_change", "stream_init" or "block_update"
    description: str  # e.g. "final residual stream's change after the steps"
    slope: float
    expected: float  # the slope of a model whose branches are scaled with depth
    status: str  # "ok", "blow-up", "collapse", "growing" (the stream at init) or "lazy"
    loc: SourceLoc | None  # where the list of blocks is constructed


@dataclass
class AttentionSite:
    node: str
    form: str  # "sdpa-default", "sdpa" (explicit scale=), "explicit" (softmax(q @ kᵀ * s)) or "tensor" (unreadable)
    loc: SourceLoc | None
    head_dim: int  # at the reference width
    head_dim_exponent: float  # head_dim ∝ width^exponent (0 when heads grow instead)
    scale: float  # logit scale at the reference width, including factors on q and k
    scale_exponent: float
    count: int = 1  # attention layers this site stands for (repeated blocks are traced once)


@dataclass
class BranchFacts:
    """Another branch of forward (the training one, with targets given) where it uses parameters or
    scales attention differently from the default branch the main facts hold."""

    name: str  # "training", "train"
    description: str  # "the training branch, `targets` given"
    trains: bool  # learning-rate findings are judged on the branch that trains
    uses: dict[str, list[ParamUse]] = field(default_factory=dict)  # param -> its uses on this branch
    attention: list[AttentionSite] = field(default_factory=list)


@dataclass
class ResidualBranch:
    """One residual add ``x + m·F(x)`` found in the trace: F is the branch, x the skip path (the stream).

    Exponents are of the depth L (the number of blocks), read at two or more depths with the width fixed.
    """

    name: str  # the branch, by its module pattern: "h.*.attn", or the add's node when no module holds it
    kind: str  # "main" (a block's attention / MLP branch) or "extra" (x0 injection, a skip, a gate)
    params: tuple[str, ...]  # the block parameters on the branch (tied names once)
    loc: SourceLoc | None  # the line of the residual add
    multiplier: dict[int, float] = field(default_factory=dict)  # depth -> constant factor on F(x) at the add
    alpha: float | None = None  # measured: multiplier ∝ L^-alpha; None when no factor could be read
    multiplier_at: SourceLoc | None = None  # the line that applies the factor (a mul in forward, a weight's init)
    # How the factor is set: "none", "depth" (derived from the depth argument), "constant" (a number in the
    # code), "knob" (another constructor argument or config field, named in knob), "learned" (a parameter)
    source: str = "none"
    knob: str = ""  # the field or argument that sets the factor, when source is "knob" or "depth"
    skip_exponent: float = 0.0  # the skip path's factor ∝ L^skip_exponent (0: the stream passes unscaled)
    cancelled_by_norm: bool = False  # a norm between the factor and the branch's first weight undoes it
    post_norm: bool = False  # the sum is normalised (post-LN block): the depth rules do not cover it
    last_weight: str = ""  # the weight of the branch's last contraction (a factor in its init may fold in)
    gate: str = ""  # a learnable gate multiplying the branch (source "learned"; its init is in multiplier)


@dataclass
class ParamDepth:
    """How one parameter's init, learning rate and Adam ε change with the depth L, the width fixed."""

    name: str
    block: bool  # on a residual branch (a block parameter); else embeddings, final norm, readout
    branch: str = ""  # the ResidualBranch.name it belongs to, for block parameters
    init_rms: dict[int, float] = field(default_factory=dict)  # depth -> rms entry at init
    init_exponent: float | None = None  # init rms ∝ L^exponent; None when zero at every depth
    lr: dict[int, float] = field(default_factory=dict)  # depth -> its group's learning rate (lr-scale keys applied)
    lr_exponent: float | None = None  # lr ∝ L^exponent; None without an optimizer
    eps: dict[int, float] = field(default_factory=dict)  # depth -> its group's Adam ε
    eps_exponent: float | None = None  # ε ∝ L^exponent; None for optimizers without ε


@dataclass
class DepthFacts:
    """What mulint read about depth: the knob, the residual branches and every parameter's depth exponents.

    Present on ModelFacts only when a depth knob was found (and depth is not turned off)."""

    knob: str  # e.g. "n_layer" or "config.num_hidden_layers"
    base_depth: int  # the depth the target uses by default
    depths: list[int]  # the depths built (meta for structure, small widths for numbers)
    branches: list[ResidualBranch] = field(default_factory=list)
    params: list[ParamDepth] = field(default_factory=list)
    named_by_user: bool = False  # found through --depth-arg / config depth-arg
    notes: list[str] = field(default_factory=list)  # e.g. "post-LN blocks: the depth rules do not cover them"

    def param(self, name: str) -> ParamDepth:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def main_branches(self) -> list[ResidualBranch]:
        return [b for b in self.branches if b.kind == "main"]


@dataclass
class ModelFacts:
    target: str  # as the user named it, e.g. "examples/mlp_sp.py:MLP"
    path: str  # file that defines the target ("" for an installed module)
    width_knob: str  # e.g. "width" or "config.n_embd"
    base_width: int  # the width the target uses by default
    widths: list[int]  # widths built on the meta device
    params: list[ParamFacts]
    notes: list[str] = field(default_factory=list)
    attention: list[AttentionSite] = field(default_factory=list)
    numeric_widths: list[int] = field(default_factory=list)
    mup_modules: list[MupModule] = field(default_factory=list)
    traced: bool = True  # False when the model could not run as built (see notes)
    repeated_blocks: dict[str, int] = field(default_factory=dict)  # list path -> blocks; traced as two
    optimizer: OptimizerFacts | None = None
    coord: list[CoordLayer] = field(default_factory=list)  # filled only by `check --coord`
    coord_widths: list[int] = field(default_factory=list)
    coord_depth: list[CoordDepthMeasure] = field(default_factory=list)  # filled by `check --coord` with a depth knob
    coord_depths: list[int] = field(default_factory=list)
    profile: str = "mup"  # expected exponents: mulint.profiles.load_profile(profile)
    branch: str = ""  # the default branch, when forward has others: "the inference branch, `targets=None`"
    branch_trains: bool = True  # whether that default branch is the one a training step runs
    branches: list[BranchFacts] = field(default_factory=list)  # the other branches, where they differ
    depth: DepthFacts | None = None  # how the model scales with its number of blocks, when a depth knob exists

    def param(self, name: str) -> ParamFacts:
        for p in self.params:
            if p.name == name or name in p.aliases:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict:
        params = []
        for p in self.params:
            d = asdict(p)
            d["shape"] = list(p.shape)
            d["shapes"] = {str(w): list(s) for w, s in p.shapes.items()}
            d["infinite_dims"] = list(p.infinite_dims)
            d["aliases"] = list(p.aliases)
            d["roles"] = list(p.roles)
            d["fan_in"] = p.fan_in
            d["fan_out"] = p.fan_out
            params.append(d)
        return {
            "target": self.target,
            "width_knob": self.width_knob,
            "base_width": self.base_width,
            "widths": self.widths,
            "numeric_widths": self.numeric_widths,
            "parameters": params,
            "attention": [asdict(a) for a in self.attention],
            "mup_modules": [asdict(m) for m in self.mup_modules],
            "repeated_blocks": self.repeated_blocks,
            "branches": [self.branch, *(b.description for b in self.branches)] if self.branches else [],
            "notes": self.notes,
            **({"depth": asdict(self.depth)} if self.depth else {}),
        }
