"""Writes of a learning rate into optimizer param groups (``for g in opt.param_groups: g["lr"] = ...``),
read from the source with libcst."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider


def _names(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class Names(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.add(name.value)

    node.visit(Names())
    return found


def _is_param_groups(node: cst.BaseExpression) -> bool:
    return m.matches(node, m.Attribute(attr=m.Name("param_groups"))) or (
        isinstance(node, cst.Name) and "param_groups" in node.value
    )


def _lr_key(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.SimpleString) and node.evaluated_value == "lr"


class _Visitor(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        self.groups: list[str] = []  # loop variables bound to param groups, innermost last
        self.hits: list[cst.CSTNode] = []

    def _loop_var(self, target: cst.BaseAssignTargetExpression, iterable: cst.BaseExpression) -> str | None:
        if isinstance(target, cst.Name) and _is_param_groups(iterable):
            return target.value
        return None

    def visit_For(self, node: cst.For) -> None:
        self.groups.append(self._loop_var(node.target, node.iter) or "")

    def leave_For(self, node: cst.For) -> None:
        self.groups.pop()

    def _comp_vars(self, node) -> list[str]:
        out, comp = [], node.for_in
        while comp is not None:
            out.append(self._loop_var(comp.target, comp.iter) or "")
            comp = comp.inner_for_in
        return out

    # A comprehension's element is visited before its `for`: bind the loop variables first.
    def visit_ListComp(self, node) -> None:
        self.groups.extend(self._comp_vars(node))

    def leave_ListComp(self, original_node) -> None:
        del self.groups[len(self.groups) - len(self._comp_vars(original_node)) :]

    visit_GeneratorExp = visit_SetComp = visit_ListComp
    leave_GeneratorExp = leave_SetComp = leave_ListComp

    def _absolute(self, group: str, value: cst.CSTNode) -> bool:
        # A value that reads the group itself (g["initial_lr"] * mult) keeps per-group scaling.
        return group in self.groups and group not in _names(value)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            t = target.target
            if (
                isinstance(t, cst.Subscript)
                and isinstance(t.value, cst.Name)
                and len(t.slice) == 1
                and _lr_key(t.slice[0].slice.value if isinstance(t.slice[0].slice, cst.Index) else t.slice[0].slice)
                and self._absolute(t.value.value, node.value)
            ):
                self.hits.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "update" and isinstance(func.value, cst.Name)):
            return
        group = func.value.value
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "lr" and self._absolute(group, arg.value):
                self.hits.append(node)
            elif arg.keyword is None and isinstance(arg.value, cst.Dict):
                for element in arg.value.elements:
                    if (
                        isinstance(element, cst.DictElement)
                        and _lr_key(element.key)
                        and self._absolute(group, element.value)
                    ):
                        self.hits.append(node)


def absolute_lr_writes(wrapper) -> list[cst.CSTNode]:
    """Statements and calls that give a param group an lr that does not read the group's own."""
    visitor = _Visitor()
    wrapper.visit(visitor)
    return visitor.hits
