"""One file being fixed: its syntax tree with positions, parents and qualified names, and the changes
the fixers ask for. Changes are keyed by nodes of the original tree, so every fixer locates its code
by the finding's line in the file as it was, and changes compose when one node holds another.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider, QualifiedNameProvider

from mulint.fix import resolved_text

Rewrite = Callable[[Any], cst.CSTNode]  # called with the node it was asked for, as rewritten so far
_Node = TypeVar("_Node", bound=cst.CSTNode)
NEWLINE = re.compile(r"\r\n|\r|\n")  # the line ends libcst counts lines by
# How inserted comments are spelled in a file whose declared encoding cannot hold them (`# coding: ascii`).
PLAIN_SPELLING = {"µ": "mu", "×": "x", "∝": "~", "½": "1/2", "ᵀ": "T", "—": "-", "…": "...", "≈": "~="}


_prepared: dict[str, FileContext] = {}  # resolved path -> the file's tree, read before it was asked for


def prepare(paths: list[Path]) -> None:
    """Parse the files and resolve their metadata now, while the caller would only wait (for the workers
    analysing the models in them): the fixes planned next find the trees ready, if the bytes are unchanged."""
    for path in paths:
        try:
            _prepared[resolved_text(path)] = FileContext.read(path)
        except Exception:  # noqa: BLE001 - read again when a fix asks, and the reason reported then
            continue


@dataclass
class Addition:
    """Module-level code placed after the imports, unless a top-level name it defines already exists."""

    key: str  # the name it defines
    code: str


@dataclass
class FileContext:
    path: Path
    original: cst.Module
    raw: bytes = b""  # the file's bytes as read: written only if it still holds them
    wrapper: MetadataWrapper = field(init=False)
    rewrites: dict[cst.CSTNode, list[Rewrite]] = field(default_factory=dict)
    comments: dict[cst.CSTNode, list[str]] = field(default_factory=dict)  # statement -> lines above it
    before: dict[cst.CSTNode, list[str]] = field(default_factory=dict)  # statement -> code inserted above it
    additions: list[Addition] = field(default_factory=list)
    imports: list[tuple[str, str | None]] = field(default_factory=list)  # (module, name or None)

    def __post_init__(self) -> None:
        # A tree just parsed holds every node once: the defensive deep copy would double the cost.
        self.wrapper = MetadataWrapper(self.original, unsafe_skip_copy=True)
        self.positions = self.wrapper.resolve(PositionProvider)
        self.parents = self.wrapper.resolve(ParentNodeProvider)
        self._qualified = self.wrapper.resolve(QualifiedNameProvider)
        self._lines = NEWLINE.split(self.original.code)
        self._kids: dict[cst.CSTNode, list[cst.CSTNode]] | None = None
        self._statements: list[tuple[cst.CSTNode, range]] | None = None

    @classmethod
    def read(cls, path: Path) -> FileContext:
        """The file parsed; Decline when libcst cannot give its bytes back unchanged (a fix must not
        touch what it does not fix). A tree `prepare` made of the same bytes is taken as it is."""
        from mulint.fix.source import Decline

        raw = path.read_bytes()
        ready = _prepared.pop(resolved_text(path), None)
        if ready is not None and ready.raw == raw:
            return ready
        module = cst.parse_module(raw)
        if not module.has_trailing_newline and raw.endswith(module.default_newline.encode()):
            module = module.with_changes(has_trailing_newline=True)  # libcst drops a CR-only file's last CR
        if module.bytes != raw:
            raise Decline("the file's text does not survive parsing unchanged (unusual line endings?)")
        return cls(path=path, original=module, raw=raw)

    @property
    def module(self) -> cst.Module:
        return self.wrapper.module

    # --- reading the tree -------------------------------------------------------------------

    def qualified_names(self, node: cst.CSTNode) -> set[str]:
        value = self._qualified.get(node, set()) if hasattr(self._qualified, "get") else set()
        value = value() if callable(value) else value
        return {q.name for q in value}

    def lines(self, node: cst.CSTNode) -> range:
        pos = self.positions[node]
        return range(pos.start.line, pos.end.line + 1)

    def walk(self, root: cst.CSTNode | None = None) -> Iterator[cst.CSTNode]:
        """Every node under `root` (the module by default), parents before children."""
        kids = self._children()
        stack = [root or self.module]
        while stack:
            node = stack.pop()
            yield node
            found: Sequence[cst.CSTNode] | None = kids.get(node)
            if found is None:  # a leaf of the file's tree, or a node a fixer built
                found = () if node in self.parents else node.children
            stack.extend(reversed(found))

    def _children(self) -> dict[cst.CSTNode, list[cst.CSTNode]]:
        """Each node's children in order, from the parent links resolved already: `node.children`
        visits the node's fields on every call, which made each walk of the file cost 50 ms."""
        if self._kids is None:
            self._kids = {}
            for child, parent in self.parents.items():  # recorded parent by parent, children in order
                self._kids.setdefault(parent, []).append(child)
        return self._kids

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def enclosing(self, node: cst.CSTNode, kind: type[_Node]) -> _Node | None:
        return next((a for a in self.ancestors(node) if isinstance(a, kind)), None)

    def statement_at(self, line: int) -> cst.CSTNode | None:
        """The innermost simple statement (or compound statement header) that spans `line`."""
        return self._last_spanning(line, (cst.SimpleStatementLine, cst.BaseCompoundStatement))

    def function_at(self, line: int) -> cst.FunctionDef | None:
        return self._last_spanning(line, cst.FunctionDef)

    def _last_spanning(self, line: int, kind):
        """The last node of ``kind`` in walk order whose lines hold `line` (the innermost)."""
        if self._statements is None:  # one walk of the file for every finding's line, not one each
            kinds = (cst.SimpleStatementLine, cst.BaseCompoundStatement)
            self._statements = [(node, self.lines(node)) for node in self.walk() if isinstance(node, kinds)]
        return next((n for n, lines in reversed(self._statements) if isinstance(n, kind) and line in lines), None)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def leading_whitespace(self, line: int) -> str:
        text = self._lines[line - 1]
        return text[: len(text) - len(text.lstrip(" \t"))]

    def aligned(self, line: int, column: int) -> str:
        """The whitespace that starts a continuation line under `column` of `line`: that line's own
        indentation (tabs stay tabs), then spaces to align."""
        lead = self.leading_whitespace(line)
        return lead + " " * max(column - len(lead), 0)

    def indented(self, line: int) -> str:
        """The whitespace one indentation level deeper than `line`, in the file's own unit."""
        return self.leading_whitespace(line) + self.module.default_indent

    def visual_column(self, line: int, column: int) -> int:
        """`column` as a width on screen: tabs to the next multiple of 8, as Python reads them."""
        return len(self._lines[line - 1][:column].expandtabs())

    def fit(self, code: str) -> str:
        """Code written by a fixer (4-space indents, LF line ends) in the file's conventions: its
        indentation unit, its line end, and only characters its declared encoding can hold."""
        unit, lines = self.module.default_indent, []
        for line in code.split("\n"):
            spaces = len(line) - len(line.lstrip(" "))
            lines.append(unit * (spaces // 4) + " " * (spaces % 4) + line[spaces:])
        text = self.module.default_newline.join(lines)
        encoding = self.module.encoding
        try:
            text.encode(encoding)
        except UnicodeEncodeError:
            for char, plain in PLAIN_SPELLING.items():
                text = text.replace(char, plain)
            # Anything left (only in comments: fixers write ASCII code) as a visible escape.
            text = text.encode(encoding, "backslashreplace").decode(encoding)
        return text

    # --- asking for changes -----------------------------------------------------------------

    def rewrite(self, node: _Node, fn: Callable[[_Node], cst.CSTNode]) -> None:
        """`fn` gets the node as rewritten so far (the same kind of node `node` is) and returns its new form."""
        self.rewrites.setdefault(node, []).append(fn)

    def comment_above(self, node: cst.CSTNode, text: str) -> None:
        """A `# text` line above the statement holding `node` (once, however many fixes touch it)."""
        statement = node if isinstance(node, cst.SimpleStatementLine) else self.enclosing(node, cst.SimpleStatementLine)
        if statement is None:
            return
        existing = [line.comment.value for line in statement.leading_lines if line.comment]
        wanted = self.comments.setdefault(statement, [])
        if f"# {self.fit(text)}" not in existing and text not in wanted:
            wanted.append(text)

    def insert_before(self, node: cst.CSTNode, code: str) -> bool:
        """Put the statement `code` just above the statement holding `node`, when that sits in a block."""
        statement = self.enclosing(node, cst.SimpleStatementLine)
        if statement is None or not isinstance(self.parents.get(statement), (cst.IndentedBlock, cst.Module)):
            return False
        self.before.setdefault(statement, []).append(code)
        return True

    def add_import(self, module: str, name: str | None = None) -> None:
        if (module, name) not in self.imports:
            self.imports.append((module, name))

    def add_top_level(self, key: str, code: str) -> None:
        if all(a.key != key for a in self.additions):
            self.additions.append(Addition(key, code))

    def top_level_names(self) -> set[str]:
        names = set()
        for statement in self.module.body:
            if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
                names.add(statement.name.value)
            elif isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Assign):
                        names.update(t.target.value for t in small.targets if isinstance(t.target, cst.Name))
        return names

    def snapshot(self) -> tuple:
        return (
            {k: list(v) for k, v in self.rewrites.items()},
            {k: list(v) for k, v in self.comments.items()},
            {k: list(v) for k, v in self.before.items()},
            list(self.additions),
            list(self.imports),
        )

    def restore(self, snapshot: tuple) -> None:
        self.rewrites, self.comments, self.before, self.additions, self.imports = snapshot

    # --- producing the fixed module -----------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self.rewrites or self.comments or self.before or self.additions or self.imports)

    def render(self) -> cst.Module:
        changed = [*self.rewrites, *self.comments, *self.before]
        around = {ancestor for node in changed for ancestor in self.ancestors(node)}
        module = self.module.visit(
            _Apply(self.rewrites, self.comments, self.before, self.fit, self.module.config_for_parsing, around)
        )
        additions = [Addition(a.key, self.fit(a.code)) for a in self.additions if a.key not in self.top_level_names()]
        module = _insert_after_imports(module, additions)
        if self.imports:
            module = _with_imports(module, self.imports)
        return module


class _Apply(cst.CSTTransformer):
    """The asked-for changes, bottom up. Only the nodes holding a change are entered (``around``): the
    rest of the tree is kept as it is, not rebuilt node by node."""

    def __init__(self, rewrites, comments, before, fit, config, around: set[cst.CSTNode]) -> None:
        super().__init__()
        self.rewrites = rewrites
        self.comments = comments
        self.before = before
        self.fit = fit
        self.config = config
        self.around = around

    def on_visit(self, node) -> bool:
        return node in self.around

    def on_leave(self, original, updated):
        for fn in self.rewrites.get(original, ()):
            updated = fn(updated)
        if original in self.comments and isinstance(updated, cst.SimpleStatementLine):
            lines = [
                cst.EmptyLine(indent=True, comment=cst.Comment(f"# {self.fit(text)}"))
                for text in self.comments[original]
            ]
            updated = updated.with_changes(leading_lines=[*updated.leading_lines, *lines])
        if isinstance(updated, (cst.IndentedBlock, cst.Module)) and any(s in self.before for s in original.body):
            updated = updated.with_changes(body=self._with_insertions(original.body, updated.body))
        return updated

    def _with_insertions(self, originals, updated):
        """Statements inserted above a statement take over its leading comments and blank lines."""
        body = []
        for old, new in zip(originals, updated):
            inserted = [cst.parse_statement(self.fit(code), config=self.config) for code in self.before.get(old, ())]
            if inserted:
                inserted[0] = inserted[0].with_changes(leading_lines=new.leading_lines)
                new = new.with_changes(leading_lines=[])
            body += [*inserted, new]
        return body


def _is_import_block(statement: cst.CSTNode, index: int) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    small = statement.body[0]
    is_docstring = index == 0 and isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString)
    return is_docstring or isinstance(small, (cst.Import, cst.ImportFrom))


def _with_imports(module: cst.Module, imports: list[tuple[str, str | None]]) -> cst.Module:
    """libcst's AddImportsVisitor, run on the file's opening statements only. What it reads and changes is
    the import block that opens the file and the leading lines of the statement after it; visiting the
    whole tree cost half of a fix's planning. That statement is stood in for by a `pass` with its leading
    lines, and put back with the lines the visitor gave them."""
    body = list(module.body)
    end = 1 if body else 0  # the first statement is always given as it is (a docstring, `__strict__`)
    while end < len(body) and _is_import_block(body[end], end):
        end += 1
    if all(name is None for _, name in imports):  # `import m` only: what the visitor does, without it
        missing = {mod for mod, _ in imports} - _modules_imported(body[:end])
        return _with_plain_imports(module, missing) if missing else module  # building it alone took 35 ms
    head, rest = body[:end], body[end:]
    if rest:
        head.append(cst.SimpleStatementLine(body=[cst.Pass()], leading_lines=rest[0].leading_lines))
    context = CodemodContext()
    for mod, name in imports:
        AddImportsVisitor.add_needed_import(context, mod, name)
    done = AddImportsVisitor(context).transform_module(module.with_changes(body=head))
    new = list(done.body)
    if rest:
        new[-1] = rest[0].with_changes(leading_lines=new[-1].leading_lines)
        new += rest[1:]
    return done.with_changes(body=new)


def _with_plain_imports(module: cst.Module, missing: set[str]) -> cst.Module:
    """AddImportsVisitor's placement of `import m` lines: sorted, after the opening run of one-import lines
    (past a docstring or `__strict__`), with a blank line before the code that follows them."""
    body = list(module.body)
    at = 1 if body and _docstring_or_strict(body[0]) else 0
    while at < len(body) and _one_import(body[at]):
        at += 1
    after = body[at:]
    if after:
        lines = after[0].leading_lines
        if not lines or lines[0].comment is not None:
            after[0] = after[0].with_changes(leading_lines=[cst.EmptyLine(), *lines])
    config = module.config_for_parsing
    added = [cst.parse_statement(f"import {mod}", config=config) for mod in sorted(missing)]
    return module.with_changes(body=[*body[:at], *added, *after])


def _one_import(statement: cst.CSTNode) -> TypeGuard[cst.SimpleStatementLine]:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], (cst.Import, cst.ImportFrom))
    )


def _modules_imported(head: Sequence[cst.CSTNode]) -> set[str]:
    """The modules `import m` (no alias) brings in the file's opening import lines, read as libcst's
    AddImportsVisitor reads them: from the second statement when the first is a docstring or
    `__strict__`, while each line holds one import statement."""
    start = 1 if head and _docstring_or_strict(head[0]) else 0
    found: set[str] = set()
    for statement in head[start:]:
        if not _one_import(statement):
            break
        small = statement.body[0]
        if isinstance(small, cst.Import):
            found |= {a.evaluated_name for a in small.names if a.evaluated_alias is None}
    return found


def _docstring_or_strict(statement: cst.CSTNode) -> bool:
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    small = statement.body[0]
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString):
        return True
    return (
        isinstance(small, cst.Assign)
        and len(small.targets) == 1
        and isinstance(small.targets[0].target, cst.Name)
        and small.targets[0].target.value == "__strict__"
    )


def _insert_after_imports(module: cst.Module, additions: list[Addition]) -> cst.Module:
    if not additions:
        return module
    body = list(module.body)
    at = 0
    while at < len(body) and _is_import_block(body[at], at):
        at += 1
    new = []
    for addition in additions:
        parsed = cst.parse_module(addition.code, config=module.config_for_parsing)
        first = parsed.body[0]
        blank = [cst.EmptyLine(indent=False)] * 2
        # libcst parses the comment lines that open the code as the module's header: they lead it.
        new.append(first.with_changes(leading_lines=[*blank, *parsed.header, *first.leading_lines]))
        new.extend(parsed.body[1:])
    if at < len(body):  # two blank lines between the added code and what follows it
        follower = body[at]
        lines = [line for line in follower.leading_lines]
        while lines and lines[0].comment is None:
            lines.pop(0)
        body[at] = follower.with_changes(leading_lines=[cst.EmptyLine(indent=False)] * 2 + lines)
    return module.with_changes(body=body[:at] + new + body[at:])
