"""`mulint inspect`'s evidence as text: one block per parameter, one row per quantity with a column
per width, then the fitted exponent, the exponent the profile expects and the rules' verdict.

Blocks of a repeated layer (`h.0.attn.c_attn.weight`, `h.1...`) whose roles, learning rates,
multipliers and verdicts agree collapse into one (`h.*.attn.c_attn.weight`), showing the first
block's numbers; a block that differs keeps its own.
"""

from __future__ import annotations

from mulint.exponents import TOLERANCE, fmt_exp, to_quarter
from mulint.facts import ModelFacts, ParamFacts
from mulint.paths import layer_pattern
from mulint.report.evidence import model_evidence, param_evidence

NO_OPTIMIZER = "optimizer: none found, so no learning rates or updates below (the note says how to name one)"


def evidence_lines(facts: ModelFacts) -> list[str]:
    model = model_evidence(facts)
    widths = model["widths"]
    if not widths:
        return ["", "evidence: no numbers (the model was not measured; see the notes)"]
    lines = [
        "",
        f"evidence (profile {model['profile']}): init, lr and updates measured at widths "
        f"{', '.join(map(str, widths))}; multipliers read at width {model['multiplier_width']}",
    ]
    if model["branch"]:
        lines.append(f"uses: on {model['branch']}; another branch's are listed where they differ")
    opt = model["optimizer"]
    lines.append(
        NO_OPTIMIZER
        if opt is None
        else f"optimizer: {opt['factory']} -> {opt['class']} ({opt['family']})"
        + (f" at {opt['at']}" if opt["at"] else "")
    )
    lines.append(
        f"exponents of width: a the multiplier's, b the init's, c the lr's; verdicts as the rules judge "
        f"them (±{TOLERANCE:g})"
    )
    table: list[tuple[str, ...] | str] = [("", *map(str, widths), "∝ width^", "expected", "verdict or source")]
    for p, record, alike, split in _blocks(facts):
        table.append(_title(p, alike, split))
        table.extend(_rows(record, widths, alike))
    return lines + [""] + _align(table)


def _blocks(facts: ModelFacts):
    """(first parameter, its evidence, the names it stands for, whether other blocks of its pattern
    differ), repeated blocks that agree collapsed."""
    groups: dict[tuple, list[tuple[ParamFacts, dict]]] = {}
    order: list[tuple] = []
    for p in facts.params:
        record = param_evidence(facts, p)
        key = (_pattern(p.name), _signature(p, record))
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append((p, record))
    patterns = [pattern for pattern, _ in order]
    for key in order:
        members = groups[key]
        names = [p.name for p, _ in members]
        # blocks that differ from each other: each group says which blocks it stands for
        yield members[0][0], members[0][1], names, patterns.count(key[0]) > 1


def _pattern(name: str) -> str:
    """`h.0.attn.weight` -> `h.*.attn.weight`, and a module path `h.0` -> `h.*`."""
    return layer_pattern(name + ".")[:-1]


def _signature(p: ParamFacts, record: dict) -> tuple:
    """What must agree for two blocks' parameters to be shown as one: not their init sizes and fitted
    exponents, random draws that differ a little from block to block, but the verdicts on them."""
    uses = tuple(
        (
            u["role"],
            _pattern(u["module"]),
            u["op"],
            round(u["multiplier"], 9),
            to_quarter(u["multiplier_exponent"]),
            *(_verdict(u[k]) for k in ("init", "update", "measured_update")),
        )
        for u in [*record["uses"], *(u for b in record["branches"] for u in b["uses"])]
    )
    return (
        p.roles,
        record["init_exponent"] is None,
        record["optimizer"],
        tuple(record["lr"].items()),
        tuple(record["weight_decay"].items()),
        record["lr_source"],
        record["lr_scale_key"],
        uses,
    )


def _verdict(part: dict | None) -> str:
    return (part or {}).get("verdict") or ""


def _title(p: ParamFacts, alike: list[str], split: bool) -> str:
    name = _pattern(p.name) if len(alike) > 1 else p.name
    title = name + (f" (= {', '.join(p.aliases)})" if p.aliases else "")
    if len(alike) > 1:
        which = f": {', '.join(alike[:4])}{', ...' if len(alike) > 4 else ''}" if split else ""
        title += f"  [{len(alike)} alike{which}; numbers of {p.name}]"
    return title


def _rows(record: dict, widths: list[int], alike: list[str]) -> list:
    rows: list = [
        _row(
            "  init rms",
            record["init_rms"],
            widths,
            record["init_exponent"],
            note=f"set at {record['init_at']}" if record["init_at"] else "",
        )
    ]
    if record["lr"]:
        source = record["lr_source"] or (f"group lr × {record['lr_scale_key']}" if record["lr_scale_key"] else "")
        label = f"  lr ({record['optimizer']})" if record["optimizer"] else "  lr"
        rows.append(_row(label, record["lr"], widths, record["lr_exponent"], note=source))
        rows.append(_row("  weight decay", record["weight_decay"], widths, None, fitted=False))
        decay = record["decay"]
        if decay:
            rows.append(
                _row(
                    "  lr·weight decay",
                    decay["lr_times_weight_decay"],
                    widths,
                    decay["exponent"],
                    _range(decay["expected"]),
                    decay["verdict"] or "",
                )
            )
    if not record["uses"]:
        rows.append("  (not used in the traced forward: role read from its shape)")
    rows += _use_rows(record, record["uses"], widths, alike)
    for branch in record["branches"]:
        rows.append(f"  on {branch['branch']}:")
        rows += [_indented(r) for r in _use_rows(record, branch["uses"], widths, alike)]
    return rows


def _indented(row):
    return "  " + row if isinstance(row, str) else ("  " + row[0], *row[1:])


def _use_rows(record: dict, uses: list[dict], widths: list[int], alike: list[str]) -> list:
    rows: list = []
    for use in uses:
        module = _pattern(use["module"]) if len(alike) > 1 else use["module"]
        multiplier = f"multiplier {use['multiplier']:.3g}"
        if abs(use["multiplier_exponent"]) > 1e-9:
            multiplier += f" ∝ width^{fmt_exp(use['multiplier_exponent'])}"
        if use["multiplier_at"]:
            multiplier += f" at {use['multiplier_at']}"
        at = f" at {use['at']}" if use["at"] and len(alike) == 1 else ""
        rows.append(f"  as {use['role']}: {use['op']} in {module or 'the model'}{at}, {multiplier}")
        init = use["init"]
        rows.append(_judged("    init a·W (a+b)", widths, init))
        if use["update"]:
            rows.append(_judged(f"    update {use['update']['formula']} (lr)", widths, use["update"]))
        measured = use["measured_update"]
        if measured:
            step = f", step {record['update_step']}" if record["update_step"] else ""
            with_a = " (exponent of a·ΔW)" if abs(use["multiplier_exponent"]) > 1e-9 else ""
            rows.append(
                _row(
                    f"    measured ‖ΔW‖{step}",
                    measured["norm"],
                    widths,
                    measured["exponent"],
                    _range(measured["expected"]),
                    (measured["verdict"] or "") + with_a,
                )
            )
    return rows


def _row(
    label: str,
    values: dict,
    widths: list[int],
    exponent: float | None,
    expected: str = "",
    note: str = "",
    fitted: bool = True,
) -> tuple[str, ...]:
    cells = [_number(values[w]) if w in values else "-" for w in widths]
    return (label, *cells, _exponent(exponent) if values and fitted else "", expected, note)


def _judged(label: str, widths: list[int], part: dict) -> tuple[str, ...]:
    return (
        label,
        *("" for _ in widths),
        _exponent(part["effective_exponent"]),
        _range(part["expected"]),
        part["verdict"] or "",
    )


def _number(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _exponent(value: float | None) -> str:
    return "-" if value is None else fmt_exp(value)


def _range(accepted: list[float] | None) -> str:
    if not accepted:
        return ""
    low, high = accepted
    return fmt_exp(low) if low == high else f"{fmt_exp(low)}..{fmt_exp(high)}"


def _align(table: list) -> list[str]:
    """Rows (tuples) in aligned columns; titles (strings) as they are."""
    rows = [r for r in table if isinstance(r, tuple)]
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [r if isinstance(r, str) else "  ".join(c.ljust(s) for c, s in zip(r, sizes)).rstrip() for r in table]
