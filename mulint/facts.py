"""What the analysis knows about a model: plain data, no torch, no rules.

Reporters and rules read these; only the analysis passes write them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ROLES = ("input", "hidden", "output", "vector", "scalar")


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
class ModelFacts:
    target: str  # as the user named it, e.g. "examples/mlp_sp.py:MLP"
    path: str  # file that defines the target ("" for an installed module)
    width_knob: str  # e.g. "width" or "config.n_embd"
    base_width: int  # the width the target uses by default
    widths: list[int]  # widths built on the meta device
    params: list[ParamFacts]
    notes: list[str] = field(default_factory=list)

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
            "parameters": params,
            "notes": self.notes,
        }
