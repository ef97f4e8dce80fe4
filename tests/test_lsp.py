"""`mulint lsp`: a real LSP client (pytest-lsp) drives the server over stdio.

The static tests open training scripts (MU303, a static rule): their model check finds no model and
costs no torch. The slow ones open models, whose check runs `mulint check` in a worker; they compare
what the editor receives with `mulint check --format json` on the same file, and a quick fix with
what `mulint check --fix` writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest.importorskip("pytest_lsp")

from lsprotocol import types  # noqa: E402
from pytest_lsp.client import make_test_lsp_client  # noqa: E402

from mulint.lsp.actions import apply_edits, text_edits  # noqa: E402
from mulint.lsp.convert import code_end, error_line, finding_range  # noqa: E402
from tests.conftest import EXAMPLES, ROOT  # noqa: E402

WAIT = 120.0  # seconds: a model check on a loaded 2-core machine

SCHEDULE = """import torch

learning_rate, min_lr = 1e-3, 1e-4


def get_lr(it):
    return learning_rate if it < 2 else min_lr + (learning_rate - min_lr) / it


def run(optimizer):
    for it in range(5):
        lr = get_lr(it)
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr  # the schedule
"""
MU303_LINE = 14  # 1-based, as mulint reports it


def run_mulint(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mulint", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def json_findings(cwd: Path, name: str, *args: str) -> list[dict]:
    return json.loads(run_mulint(cwd, "check", "--format", "json", *args, name).stdout)["findings"]


class Session:
    """One server over stdio and the files it has open, in the workspace `root`."""

    def __init__(self, root: Path, options: dict | None = None, log_file: Path | None = None):
        self.root, self.options, self.log_file = root, options, log_file
        self.client = make_test_lsp_client()
        self.versions: dict[str, int] = {}

    async def __aenter__(self) -> Session:
        args = ["-m", "mulint", "lsp", *(["--log-file", str(self.log_file)] if self.log_file else [])]
        # The server and its `mulint check` run this checkout; CI set: a model check never leaves a warm
        # server running behind the test (`--daemon` does not start one then).
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"}
        await self.client.start_io(sys.executable, *args, cwd=self.root, env=env)
        folder = types.WorkspaceFolder(uri=self.root.as_uri(), name="project")
        await self.client.initialize_session(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(workspace=types.WorkspaceClientCapabilities(configuration=True)),
                root_uri=self.root.as_uri(),
                workspace_folders=[folder],
                initialization_options=self.options,
            )
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.shutdown_session()
        await self.client.stop()

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def open(self, name: str) -> str:
        uri = self.uri(name)
        self.versions[uri] = 1
        item = types.TextDocumentItem(uri=uri, language_id="python", version=1, text=(self.root / name).read_text())
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    async def diagnostics(self, uri: str, until, timeout: float = WAIT) -> list[types.Diagnostic]:
        """The diagnostics of `uri` once `until(diagnostics)` holds (each publication is looked at)."""

        async def wait():
            while True:
                found = list(self.client.diagnostics.get(uri, []))
                if uri in self.client.diagnostics and until(found):
                    return found
                await self.client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        return await asyncio.wait_for(wait(), timeout)

    async def actions(self, uri: str, diagnostic: types.Diagnostic) -> list[types.CodeAction]:
        found = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=diagnostic.range,
                context=types.CodeActionContext(diagnostics=[diagnostic], only=[types.CodeActionKind.QuickFix]),
            )
        )
        return list(found or [])

    async def hover(self, uri: str, position: types.Position) -> str | None:
        found = await self.client.text_document_hover_async(
            types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
        )
        return found.contents.value if found is not None else None


def codes(diagnostics) -> list[str]:
    return sorted(d.code for d in diagnostics if d.code)


def mulint_rows(diagnostics) -> list[tuple[str, int, int]]:
    """(code, 1-based line, 1-based column): how `mulint check` reports a place."""
    return sorted((d.code, d.range.start.line + 1, d.range.start.character + 1) for d in diagnostics if d.code)


# --- conversions ---------------------------------------------------------------------------------


def test_a_range_ends_where_the_lines_code_ends():
    from mulint.findings import Finding

    lines = ["x = 1", "    y = 'µ#not a comment'  # a comment  "]
    finding = Finding("MU303", "n", "error", "m", "f.py", line=2, column=5)
    span = finding_range(finding, lines)
    assert (span.start.line, span.start.character) == (1, 4)
    assert span.end.character == len("    y = 'µ#not a comment'")
    assert code_end("a = '''open") == len("a = '''open")  # a line a string runs past: all of it
    # UTF-16 columns: a character outside the BMP counts twice
    wide = Finding("MU303", "n", "error", "m", "f.py", line=1, column=3)
    assert finding_range(wide, ["𝔵 = 1"]).start.character == 3


def test_an_error_points_at_the_line_its_message_names(tmp_path):
    path = tmp_path / "model.py"
    assert error_line(f"importing it raised ModuleNotFoundError (at {path}:7)", path) == 7
    assert error_line(f'File "{path}", line 12, in <module>', path) == 12
    assert error_line("importing other.py:9 failed", path) == 1


@pytest.mark.parametrize(
    "old,new",
    [
        ("a\nb\nc\n", "a\nB\nB2\nc\n"),
        ("a\nb", "a\nb\nc"),  # no newline at the end of the file
        ("a\nb\n", "a\n"),
        ("µ\n", "µ\nx = 'µ'\n"),
        ("", "new\n"),
    ],
)
def test_line_edits_turn_the_old_text_into_the_new(old, new):
    edits = text_edits(old, new)
    assert apply_edits(old, edits) == new
    assert len(edits) <= 1  # one change, one edit: not the whole file


def test_a_check_that_prints_no_report_becomes_its_error(tmp_path):
    from mulint.lsp.checks import parse_check_output

    err = "error: [config] pyproject.toml: [tool.mulint] selct: unknown key (did you mean select?)\n  hint: see the README\n"
    result = parse_check_output("", err, tmp_path, tmp_path / "m.py")
    assert result.errors == [
        ("pyproject.toml: [tool.mulint] selct: unknown key (did you mean select?)", "see the README")
    ]
    assert result.findings == []


def test_static_findings_on_a_buffer_honour_noqa_and_the_config(tmp_path):
    """The unsaved text decides: a `# noqa` typed but not saved suppresses, as the config's selection does."""
    from mulint.engine.settings import settings_for
    from mulint.lsp.checks import static_findings

    path = tmp_path / "train.py"
    path.write_text("")  # on disk: nothing; the buffer below is what is checked
    (tmp_path / "pyproject.toml").write_text("[tool.mulint]\n")
    settings = settings_for([str(path)])
    assert [(f.code, f.line, Path(f.path)) for f in static_findings(SCHEDULE, path, settings)] == [
        ("MU303", MU303_LINE, path)
    ]
    quiet = SCHEDULE.replace("# the schedule", "# noqa: MU303")
    assert static_findings(quiet, path, settings) == []
    (tmp_path / "pyproject.toml").write_text('[tool.mulint]\nper-file-ignores = {"train.py" = ["MU3"]}\n')
    assert static_findings(SCHEDULE, path, settings_for([str(path)])) == []


def test_a_cancelled_model_check_ends_its_process(monkeypatch, tmp_path):
    from mulint.lsp import checks

    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    monkeypatch.setattr(checks, "check_command", lambda path, daemon: [sys.executable, "-c", sleeper])

    async def scenario():
        task = asyncio.create_task(checks.model_check(tmp_path / "m.py", tmp_path, False))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if pid_file.exists() and pid_file.read_text():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(pid_file.read_text())

    pid = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped), not left running


def test_a_newer_check_cancels_the_older_one():
    from mulint.lsp.server import DEBOUNCE, MulintServer

    server = MulintServer()
    ran: list[str] = []

    async def work(name: str, seconds: float):
        ran.append(f"{name} started")
        await asyncio.sleep(seconds)
        ran.append(f"{name} finished")

    async def scenario():
        server.schedule("model", "file:///m.py", lambda: work("first", 0))  # still waiting out DEBOUNCE
        server.schedule("model", "file:///m.py", lambda: work("second", 60))
        await asyncio.sleep(DEBOUNCE * 2)
        server.schedule("static", "file:///m.py", lambda: work("static", 0))  # another kind: runs beside it
        server.schedule("model", "file:///m.py", lambda: work("third", 0))  # cancels the running second
        await asyncio.sleep(DEBOUNCE * 3)

    asyncio.run(scenario())
    assert ran == ["second started", "static started", "third started", "static finished", "third finished"]
    assert server.tasks == {}  # finished checks leave nothing behind


def test_the_language_server_never_imports_torch(tmp_path):
    """Its static rules, fixes and model-file test run here; torch only in `mulint check`'s workers."""
    shutil.copy(EXAMPLES / "nanogpt_sp.py", tmp_path / "model.py")
    (tmp_path / "train.py").write_text(SCHEDULE)
    script = f"""
import sys
from pathlib import Path
import mulint.lsp, mulint.lsp.server
from mulint.lsp.actions import fixed_text, hover_text
from mulint.lsp.checks import ProjectSettings, defines_models, static_findings
root = Path({str(tmp_path)!r})
settings = ProjectSettings().of(root / "train.py")
found = static_findings((root / "train.py").read_text(), root / "train.py", settings)
assert [f.code for f in found] == ["MU303"], found
assert fixed_text(found, root / "train.py", unsafe=True) and hover_text("MU303")
assert defines_models(root / "model.py") and not defines_models(root / "train.py")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("has_daemon", [False, True])
def test_model_checks_go_through_the_warm_server_when_check_has_daemon(monkeypatch, tmp_path, has_daemon):
    import click

    import mulint.lsp
    from mulint.cli import check, main
    from mulint.lsp.checks import check_command

    served = []
    monkeypatch.setattr(mulint.lsp, "serve", lambda **kwargs: served.append(kwargs))
    params = [p for p in check.params if p.name != "daemon"]
    if has_daemon:
        params.append(click.Option(["--daemon"], is_flag=True))
    monkeypatch.setattr(check, "params", params)
    with pytest.raises(SystemExit) as done:
        main(["lsp", "--log-file", str(tmp_path / "lsp.log")])
    assert done.value.code == 0
    assert served == [{"daemon": has_daemon, "log_file": tmp_path / "lsp.log"}]
    command = check_command(tmp_path / "m.py", has_daemon)
    assert command[1:] == [
        "-m",
        "mulint",
        "check",
        "--format",
        "json",
        *(["--daemon"] * has_daemon),
        str(tmp_path / "m.py"),
    ]


def test_lsp_without_pygls_is_a_usage_error():
    blocked = "import sys; sys.modules['pygls'] = None; from mulint.cli import main; main(['lsp'])"
    done = subprocess.run(
        [sys.executable, "-c", blocked], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "pip install 'mulint[lsp]'" in done.stderr


# --- the server, static rules --------------------------------------------------------------------


@pytest.mark.slow  # runs `mulint check` from a cold start
def test_static_diagnostics_follow_the_buffer_without_saving(tmp_path):
    (tmp_path / "train.py").write_text("import torch\n")
    log_file = tmp_path / "lsp.log"

    async def scenario():
        async with Session(tmp_path, log_file=log_file) as session:
            uri = session.open("train.py")
            assert await session.diagnostics(uri, lambda d: True) == []
            session.change(uri, SCHEDULE)  # typed, not saved
            found = await session.diagnostics(uri, lambda d: codes(d) == ["MU303"])
            diagnostic = found[0]
            text = await session.hover(uri, diagnostic.range.start)
            nothing = await session.hover(uri, types.Position(line=0, character=0))
            session.change(uri, SCHEDULE.replace("param_group['lr'] = lr", "param_group['lr'] *= 0.5"))
            cleared = await session.diagnostics(uri, lambda d: d == [])
            return diagnostic, text, nothing, cleared, session.client.log_messages

    diagnostic, text, nothing, cleared, messages = asyncio.run(scenario())
    (tmp_path / "train.py").write_text(SCHEDULE)
    expected = json_findings(tmp_path, "train.py")
    assert mulint_rows([diagnostic]) == [(f["code"], f["line"], f["column"]) for f in expected]
    assert diagnostic.message == expected[0]["message"]
    line = SCHEDULE.splitlines()[MU303_LINE - 1]
    assert diagnostic.range.end.character == len(line.split("  #")[0])  # the code, not the comment
    assert diagnostic.severity == types.DiagnosticSeverity.Error and diagnostic.source == "mulint"
    assert diagnostic.code_description.href == (ROOT / "rules" / "MU303.md").as_uri()
    assert text == (ROOT / "rules" / "MU303.md").read_text(encoding="utf-8")  # what `mulint rule MU303` prints
    assert nothing is None and cleared == []
    assert any("language server ready" in m.message for m in messages)
    assert "language server ready" in log_file.read_text()


def mu303_actions(folder: Path, options) -> tuple[list[types.CodeAction], str]:
    async def scenario():
        async with Session(folder, options=options) as session:
            uri = session.open("train.py")
            found = await session.diagnostics(uri, lambda d: "MU303" in codes(d))
            return await session.actions(uri, found[0]), uri

    return asyncio.run(scenario())


def test_unsafe_fixes_are_offered_once_the_settings_enable_them(tmp_path):
    (tmp_path / "train.py").write_text(SCHEDULE)

    async def scenario():
        async with Session(tmp_path) as session:
            uri = session.open("train.py")
            found = await session.diagnostics(uri, lambda d: "MU303" in codes(d))
            before = await session.actions(uri, found[0])
            # the client's `mulint` settings change: the server asks for them (workspace/configuration)
            session.client.set_configuration({"unsafeFixes": True}, section="mulint")
            session.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
            for _ in range(100):
                after = await session.actions(uri, found[0])
                if after:
                    break
                await asyncio.sleep(0.05)
            return before, after

    before, after = asyncio.run(scenario())
    assert before == []  # MU303's fix is unsafe: not offered by default
    assert [a.title.endswith("(unsafe)") for a in after] == [True]


@pytest.mark.slow  # runs `mulint check` from a cold start
def test_unsafe_fixes_once_enabled_make_exactly_what_fix_writes(tmp_path):
    for name in ("editor", "cli"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.py").write_text(SCHEDULE)
    offered, uri = mu303_actions(tmp_path / "editor", {"mulint": {"unsafeFixes": True}})
    assert [a.kind for a in offered] == [types.CodeActionKind.QuickFix]
    assert offered[0].title.startswith("MU303: ") and offered[0].title.endswith("(unsafe)")
    edited = apply_edits(SCHEDULE, offered[0].edit.changes[uri])
    done = run_mulint(tmp_path / "cli", "check", "--fix", "--unsafe-fixes", "train.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert edited == (tmp_path / "cli" / "train.py").read_text() != SCHEDULE


@pytest.mark.slow  # runs `mulint check` from a cold start
def test_a_config_change_checks_the_open_files_again(tmp_path):
    (tmp_path / "train.py").write_text(SCHEDULE)
    config = tmp_path / "pyproject.toml"
    config.write_text("[tool.mulint]\n")

    async def scenario():
        async with Session(tmp_path) as session:
            uri = session.open("train.py")
            await session.diagnostics(uri, lambda d: codes(d) == ["MU303"])
            config.write_text('[tool.mulint]\nignore = ["MU303"]\n')
            event = types.FileEvent(uri=config.as_uri(), type=types.FileChangeType.Changed)
            session.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[event]))
            ignored = await session.diagnostics(uri, lambda d: d == [])
            config.write_text("[tool.mulint]\nselct = []\n")  # a typo: the error shows, the server stays
            session.save(session.uri("pyproject.toml"))
            broken = await session.diagnostics(uri, lambda d: any("selct" in x.message for x in d))
            return ignored, broken

    ignored, broken = asyncio.run(scenario())
    assert ignored == []
    assert [d.severity for d in broken] == [types.DiagnosticSeverity.Error]
    assert broken[0].range.start.line == 0 and "unknown key" in broken[0].message


def processes_naming(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and entry.name != str(os.getpid()):
            found.append(cmdline)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the running processes from /proc")
def test_shutting_down_stops_a_running_model_check(tmp_path):
    shutil.copy(EXAMPLES / "nanogpt_sp.py", tmp_path / "model.py")
    log_file = tmp_path / "lsp.log"

    async def scenario():
        async with Session(tmp_path, log_file=log_file) as session:
            session.open("model.py")
            for _ in range(200):
                if processes_naming(str(tmp_path / "model.py")):
                    break
                await asyncio.sleep(0.05)
            return processes_naming(str(tmp_path / "model.py"))

    running = asyncio.run(scenario())
    assert running and "check --format json" in running[0]
    assert processes_naming(str(tmp_path / "model.py")) == []
    assert "model check of" in log_file.read_text() and "cancelled" in log_file.read_text()


# --- the server, model rules (a worker per check) ------------------------------------------------


@pytest.mark.slow
def test_a_sp_model_gets_its_findings_and_a_quick_fix_clears_one(tmp_path):
    shutil.copy(EXAMPLES / "nanogpt_sp.py", tmp_path / "model.py")
    (tmp_path / "pyproject.toml").write_text("[tool.mulint]\n")
    expected = json_findings(tmp_path, "model.py")  # also fills the result cache the server's check reads
    assert "MU201" in {f["code"] for f in expected}

    async def scenario():
        async with Session(tmp_path) as session:
            uri = session.open("model.py")
            found = await session.diagnostics(uri, lambda d: "MU201" in codes(d))
            mu201 = next(d for d in found if d.code == "MU201")
            offered = await session.actions(uri, mu201)
            old = (tmp_path / "model.py").read_text()
            edited = apply_edits(old, offered[0].edit.changes[uri])
            done = run_mulint(tmp_path, "check", "--fix", "--select", "MU201", "model.py")  # writes the file
            session.change(uri, edited)
            session.save(uri)
            after = await session.diagnostics(uri, lambda d: "MU201" not in codes(d) and "MU101" in codes(d))
            return found, offered, old, edited, done, after

    found, offered, old, edited, done, after = asyncio.run(scenario())
    assert mulint_rows(found) == sorted((f["code"], f["line"], f["column"]) for f in expected)
    assert sorted(d.message for d in found) == sorted(f["message"] for f in expected)
    lines = old.splitlines()
    for diagnostic in found:
        line = lines[diagnostic.range.start.line]
        assert diagnostic.range.end.character == len(line.rstrip())  # to the end of the line's code
    assert [a.title.split(":")[0] for a in offered] == ["MU201"] and offered[0].is_preferred
    assert done.returncode in (0, 1), done.stderr
    assert edited == (tmp_path / "model.py").read_text() != old  # exactly what --fix wrote
    assert codes(after) == sorted(f["code"] for f in expected if f["code"] != "MU201")


@pytest.mark.slow
def test_a_model_that_fails_to_import_is_one_error_not_a_crash(tmp_path):
    (tmp_path / "model.py").write_text(
        "import torch.nn as nn\nimport no_such_module_anywhere\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self, width=64):\n        super().__init__()\n        self.l = nn.Linear(width, width)\n\n"
        "    def forward(self, x):\n        return self.l(x)\n"
    )

    async def scenario():
        async with Session(tmp_path) as session:
            uri = session.open("model.py")
            found = await session.diagnostics(uri, lambda d: d != [])
            alive = await session.hover(uri, types.Position(line=0, character=0))
            return found, alive

    found, alive = asyncio.run(scenario())
    assert len(found) == 1 and found[0].severity == types.DiagnosticSeverity.Error
    assert "no_such_module_anywhere" in found[0].message and "hint:" in found[0].message
    assert found[0].range.start.line == 1  # the import's line, as the error names it
    assert alive is None  # the server still answers
