"""Choose sources (typed or picked) and import them with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, ProgressBar, Static

from ..bridge import notify_error, progress_to_ui
from .picker import PathPicker


class ImportPanel(Vertical):
    """Posts `ImportPanel.Done` when an import finished (successfully)."""

    class Done(Message):
        def __init__(self, summary) -> None:
            super().__init__()
            self.summary = summary

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.paths: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Static("Folders of notes (Markdown, text), an Obsidian vault, mbox/.eml files or a Maildir. "
                     "Your files are only read, never changed.", classes="hint")
        with Horizontal(classes="row"):
            yield Input(placeholder="type a path and press Enter", id="import-path")
            yield Button("Browse…", id="browse")
        yield Static("nothing chosen yet", id="chosen-sources")
        with Horizontal(classes="buttons"):
            yield Button("Import", id="do-import", variant="primary")
            yield Button("Clear", id="clear-sources")
        yield ProgressBar(id="import-progress", show_eta=False)
        yield Static("", id="import-summary")

    def on_mount(self) -> None:
        self.query_one("#import-progress", ProgressBar).display = False   # shown while importing

    def add_path(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if path not in self.paths:
            self.paths.append(path)
        self.query_one("#chosen-sources", Static).update(Text("\n".join(f"• {p}" for p in self.paths)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "import-path":
            self.add_path(event.value)
            event.input.value = ""

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "browse":
            self.app.push_screen(PathPicker(), lambda p: p and self.add_path(str(p)))
        elif event.button.id == "clear-sources":
            self.paths.clear()
            self.query_one("#chosen-sources", Static).update("nothing chosen yet")
        elif event.button.id == "do-import":
            pending = self.query_one("#import-path", Input).value
            if pending.strip():
                self.add_path(pending)
                self.query_one("#import-path", Input).value = ""
            if not self.paths:
                self.app.notify("Choose at least one folder or mail file first.", severity="warning")
                return
            event.button.disabled = True
            self.query_one("#import-progress", ProgressBar).display = True
            self.run_import(list(self.paths))

    def _on_progress(self, event) -> None:
        bar = self.query_one("#import-progress", ProgressBar)
        if event.total:
            bar.update(total=event.total, progress=event.done or 0)
        if event.message:
            self.query_one("#import-summary", Static).update(Text(event.message))

    @work(thread=True, exclusive=True, group="import")
    def run_import(self, paths: list[Path]) -> None:
        from mipo_local.context import import_paths
        from mipo_local.settings import load_settings

        try:
            summary = import_paths(paths, settings=load_settings(),
                                   progress=progress_to_ui(self.app, self._on_progress))
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            notify_error(self.app, exc, "Import failed")
            self.app.call_from_thread(self._finished, None)
            return
        self.app.call_from_thread(self._finished, summary)

    def _finished(self, summary) -> None:
        self.query_one("#do-import", Button).disabled = False
        if summary is None:
            self.query_one("#import-summary", Static).update("nothing was imported")
            return
        self.query_one("#import-summary", Static).update(Text("\n".join(summary.lines())))
        self.paths.clear()
        self.query_one("#chosen-sources", Static).update("nothing chosen yet")
        self.post_message(self.Done(summary))
