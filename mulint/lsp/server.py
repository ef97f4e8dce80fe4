"""`mulint lsp`: the Language Server Protocol over stdio (pygls), for findings in the editor.

Per open Python file: the static rules on every change (debounced), the model rules on open and on
save (debounced; a newer save cancels the older check), both published as one set of diagnostics.
Quick fixes make `--fix`'s edits, hover shows the rule's page, `[tool.mulint]` is read as `mulint
check` reads it and again when a pyproject.toml changes. Nothing a check does may crash the server: a
failure becomes a diagnostic and a log line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from mulint.errors import MulintError
from mulint.findings import Finding
from mulint.lsp import actions, convert
from mulint.lsp.checks import (
    ModelCheck,
    ProjectSettings,
    defines_models,
    model_check,
    static_codes,
    static_findings,
)
from mulint.version import __version__

log = logging.getLogger("mulint.lsp")

DEBOUNCE = 0.3  # seconds of quiet before a check starts: typing and save bursts run one check
CONFIG_FILES = ("pyproject.toml",)  # where `[tool.mulint]` lives


class MulintServer(LanguageServer):
    def __init__(self, daemon: bool = False) -> None:
        super().__init__("mulint", __version__)
        self.daemon = daemon  # pass `--daemon` to `mulint check`: the warm server runs the model
        self.project = ProjectSettings()
        self.unsafe_fixes = False
        self.static: dict[str, list[Finding]] = {}  # uri -> static findings on the buffer's text
        self.config_error: dict[str, tuple[str, str]] = {}  # uri -> a bad [tool.mulint]: (message, hint)
        self.model: dict[str, ModelCheck] = {}  # uri -> the last model check of the saved file
        self.published: dict[str, list[tuple[types.Diagnostic, Finding | None]]] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}  # (kind, uri) -> its pending or running check
        self.opened: set[str] = set()  # the open Python files, by the URI the client spells
        self.closing = False  # after `shutdown`: no more messages to the client, no new checks
        self._static_codes = static_codes()

    # --- scheduling -----------------------------------------------------------------------------

    def schedule(self, kind: str, uri: str, work) -> None:
        """Run `work()` after DEBOUNCE, cancelling the same kind of check still pending or running."""
        old = self.tasks.pop((kind, uri), None)
        if old is not None:
            old.cancel()
        if self.closing:
            return

        async def later():
            await asyncio.sleep(DEBOUNCE)
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must cost one check, never the server
                log.exception("%s check of %s failed", kind, uri)

        task = asyncio.get_running_loop().create_task(later())
        self.tasks[(kind, uri)] = task
        task.add_done_callback(
            lambda t: self.tasks.pop((kind, uri), None) if self.tasks.get((kind, uri)) is t else None
        )

    def stop_checks(self) -> None:
        """At shutdown: every pending or running check cancelled (a running one's process ended)."""
        self.closing = True
        for task in list(self.tasks.values()):
            task.cancel()

    def cancel(self, uri: str) -> None:
        for kind in ("static", "model"):
            task = self.tasks.pop((kind, uri), None)
            if task is not None:
                task.cancel()

    # --- the checks -----------------------------------------------------------------------------

    def document(self, uri: str):
        return self.workspace.text_documents.get(unquote(uri))  # pygls keys them unquoted

    async def check_static(self, uri: str) -> None:
        document = self.document(uri)
        if document is None:
            return
        path, text = Path(to_fs_path(uri) or uri), document.source
        loop = asyncio.get_running_loop()
        try:
            settings = await loop.run_in_executor(None, self.project.of, path)
        except MulintError as exc:
            self.config_error[uri] = (exc.message, exc.hint)
            self.static[uri] = []
            self.publish(uri)
            return
        self.config_error.pop(uri, None)
        try:
            self.static[uri] = await loop.run_in_executor(None, static_findings, text, path, settings)
        except MulintError as exc:  # a syntax error while typing: keep the last findings until it parses
            log.debug("static rules skipped on %s: %s", path, exc.message)
        self.publish(uri)

    async def check_model(self, uri: str) -> None:
        if self.document(uri) is None:
            return
        path = Path(to_fs_path(uri) or uri)
        if not path.is_file() or not await asyncio.get_running_loop().run_in_executor(None, defines_models, path):
            self.model[uri] = ModelCheck()
            self.publish(uri)
            return
        try:
            result = await model_check(path, self.check_directory(path), self.daemon)
        except OSError as exc:
            result = ModelCheck(errors=[(f"could not run mulint check: {exc}", "")])
        self.model[uri] = result
        self.publish(uri)

    def check_directory(self, path: Path) -> Path:
        """Where `mulint check` runs: the config's directory, else the workspace folder holding the
        file, else the file's own directory (a finding's paths and the result cache are relative to it)."""
        try:
            settings = self.project.of(path)
            if settings.config_path is not None:
                return settings.root
        except MulintError:
            pass
        folders = [Path(to_fs_path(f.uri) or "") for f in self.workspace.folders.values()]
        holding = [f for f in folders if f in path.parents]
        return max(holding, key=lambda f: len(f.parts)) if holding else path.parent

    def publish(self, uri: str) -> None:
        document = self.document(uri)
        if document is None:
            return
        path = Path(to_fs_path(uri) or uri)
        lines = document.source.splitlines()
        pages = _pages()
        model = self.model.get(uri, ModelCheck())
        findings = self.static.get(uri, []) + [f for f in model.findings if f.code not in self._static_codes]
        entries: list[tuple[types.Diagnostic, Finding | None]] = [
            (convert.finding_diagnostic(f, lines, pages), f) for f in findings
        ]
        errors = ([self.config_error[uri]] if uri in self.config_error else []) + model.errors
        for message, hint in dict.fromkeys(errors):
            entries.append((convert.error_diagnostic(message, hint, path, lines), None))
        for reason, hint in dict.fromkeys(model.notes):
            info = types.DiagnosticSeverity.Information
            entries.append((convert.error_diagnostic(f"not analysed: {reason}", hint, path, lines, info), None))
        self.published[uri] = entries
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[d for d, _ in entries], version=document.version)
        )

    def recheck_all(self) -> None:
        """After a config change: every open Python file, both checks."""
        self.project.clear()
        for uri in sorted(self.opened):
            self.schedule("static", uri, lambda uri=uri: self.check_static(uri))
            self.schedule("model", uri, lambda uri=uri: self.check_model(uri))

    # --- client settings ------------------------------------------------------------------------

    def take_options(self, options) -> None:
        """`{"unsafeFixes": true}` or `{"mulint": {"unsafeFixes": true}}`."""
        if isinstance(options, dict):
            options = options.get("mulint", options)
            if isinstance(options, dict) and isinstance(options.get("unsafeFixes"), bool):
                self.unsafe_fixes = options["unsafeFixes"]
                log.info("unsafe fixes %s", "offered" if self.unsafe_fixes else "not offered")

    async def pull_configuration(self) -> None:
        capabilities = self.client_capabilities.workspace
        if capabilities is None or not capabilities.configuration:
            return
        try:
            found = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section="mulint")])
            )
        except Exception as exc:  # a client that cannot answer keeps the initialization options
            log.info("workspace/configuration failed: %s", exc)
            return
        if found:
            self.take_options({"mulint": found[0]} if isinstance(found[0], dict) else None)


def _pages() -> Path:
    from mulint.rules.pages import pages_dir

    return pages_dir()


def is_python(uri: str) -> bool:
    """A Python file on disk (not an editor's untitled buffer): mulint checks files."""
    return uri.startswith("file:") and uri.endswith(".py")


def is_config(uri: str) -> bool:
    return uri.rsplit("/", 1)[-1] in CONFIG_FILES


def build_server(daemon: bool = False) -> MulintServer:
    server = MulintServer(daemon)

    @server.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        server.take_options(params.initialization_options)

    @server.feature(types.INITIALIZED)
    async def initialized(params: types.InitializedParams) -> None:
        log.info(
            "mulint %s language server ready (model checks %s)", __version__, "via --daemon" if daemon else "direct"
        )
        await server.pull_configuration()
        watch = server.client_capabilities.workspace
        if watch and watch.did_change_watched_files and watch.did_change_watched_files.dynamic_registration:
            watchers = [types.FileSystemWatcher(glob_pattern=f"**/{name}") for name in CONFIG_FILES]
            options = types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers)
            registration = types.Registration(
                id="mulint-config", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
            )
            try:
                await server.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
            except Exception as exc:
                log.info("cannot watch the config files: %s", exc)

    @server.feature(types.SHUTDOWN)
    def shutdown(params: None) -> None:
        log.info("shutting down")
        server.stop_checks()

    @server.feature(types.EXIT)
    def exit_(params: None) -> None:
        server.stop_checks()  # an exit without shutdown, too

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
        server.take_options(params.settings)
        await server.pull_configuration()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_python(uri):
            server.opened.add(uri)
            server.schedule("static", uri, lambda: server.check_static(uri))
            server.schedule("model", uri, lambda: server.check_model(uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_python(uri):
            server.schedule("static", uri, lambda: server.check_static(uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if is_config(uri):
            log.info("%s saved: settings read again, open files checked again", uri)
            server.recheck_all()
        elif is_python(uri):
            server.schedule("static", uri, lambda: server.check_static(uri))
            server.schedule("model", uri, lambda: server.check_model(uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        server.cancel(uri)
        server.opened.discard(uri)
        for state in (server.static, server.model, server.published, server.config_error):
            state.pop(uri, None)
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(params: types.DidChangeWatchedFilesParams) -> None:
        if any(is_config(change.uri) for change in params.changes):
            log.info("a config file changed: settings read again, open files checked again")
            server.recheck_all()

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, actions.FIX_ALL]),
    )
    async def code_action(params: types.CodeActionParams) -> list[types.CodeAction] | None:
        # libcst parses the file for the fixes: in a thread, so the server keeps answering meanwhile
        return await asyncio.get_running_loop().run_in_executor(None, _code_actions, server, params)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(params: types.HoverParams) -> types.Hover | None:
        position = params.position
        codes = [
            d.code
            for d, _ in server.published.get(params.text_document.uri, [])
            if isinstance(d.code, str) and _contains(d.range, position)
        ]
        texts = [text for code in dict.fromkeys(codes) if (text := actions.hover_text(code))]
        if not texts:
            return None
        content = types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(texts))
        return types.Hover(contents=content)

    return server


def _contains(span: types.Range, position: types.Position) -> bool:
    start, end = (span.start.line, span.start.character), (span.end.line, span.end.character)
    return start <= (position.line, position.character) <= end


def _code_actions(server: MulintServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    document = server.document(uri)
    if document is None or not is_python(uri):
        return None
    path = Path(to_fs_path(uri) or uri)
    try:
        saved = path.read_bytes().decode("utf-8")  # its line ends as they are, as the buffer holds them
    except (OSError, UnicodeError):
        return None
    if saved != document.source:  # findings and fixes are for the saved text
        log.info("no fixes offered for %s: the buffer differs from the saved file", path)
        return None
    only = params.context.only
    unsafe = server.unsafe_fixes
    fixable = [
        (d, f, f.fix)
        for d, f in server.published.get(uri, [])
        if f is not None and f.fix is not None and f.fix.edits and (unsafe or f.fix.applicability == "safe")
    ]
    found = []
    if only is None or types.CodeActionKind.QuickFix in only:
        for diagnostic, finding, fix in fixable:
            if not (_contains(params.range, diagnostic.range.start) or _contains(diagnostic.range, params.range.start)):
                continue
            new = actions.fixed_text([finding], path, unsafe=unsafe)
            if new is None:
                continue
            label = "" if fix.applicability == "safe" else " (unsafe)"
            found.append(
                actions.code_action(
                    f"{finding.code}: {fix.message}{label}",
                    types.CodeActionKind.QuickFix,
                    uri,
                    actions.text_edits(saved, new),
                    [diagnostic],
                    preferred=fix.applicability == "safe",
                )
            )
    if fixable and (only is None or any(actions.FIX_ALL.startswith(kind) for kind in only)):
        new = actions.fixed_text([f for _, f, _ in fixable], path, unsafe=unsafe)
        if new is not None:
            found.append(
                actions.code_action(
                    "mulint: fix all" + (" (with unsafe fixes)" if unsafe else ""),
                    actions.FIX_ALL,
                    uri,
                    actions.text_edits(saved, new),
                    [],
                    preferred=False,
                )
            )
    return found or None
