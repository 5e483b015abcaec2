"""Choose sources (typed or picked) and import them with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, ProgressBar, Static

from ..bridge import Progress, notify_error, post_progress
from .picker import PathPicker



def summary_lines(summary) -> list[str]:
    """An import's summary in the app's words (the command line's flags mean nothing here)."""
    return summary.lines(change_addresses="change them in Settings (F6)", list_all=None)

class ImportPanel(Vertical):
    """Posts `ImportPanel.Done` when an import finished successfully, `ImportPanel.Failed` when not."""

    class Done(Message):
        """The import finished: what it did."""

        def __init__(self, summary) -> None:
            super().__init__()
            self.summary = summary

    class Failed(Message):
        """The import stopped on an error (already shown as a notification)."""

        def __init__(self, error: BaseException) -> None:
            super().__init__()
            self.error = error

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

    @on(Input.Submitted, "#import-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        self.add_path(event.value)
        event.input.value = ""

    @on(Button.Pressed, "#browse")
    def browse(self) -> None:
        self.app.push_screen(PathPicker(), lambda p: p and self.add_path(str(p)))

    @on(Button.Pressed, "#clear-sources")
    def clear(self) -> None:
        self.paths.clear()
        self.query_one("#chosen-sources", Static).update("nothing chosen yet")

    @on(Button.Pressed, "#do-import")
    def start_import(self) -> None:
        pending = self.query_one("#import-path", Input).value
        if pending.strip():
            self.add_path(pending)
            self.query_one("#import-path", Input).value = ""
        if not self.paths:
            self.app.notify("Choose at least one folder or mail file first.", severity="warning")
            return
        self.query_one("#do-import", Button).disabled = True
        self.query_one("#import-progress", ProgressBar).display = True
        self.run_import(list(self.paths))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        event = message.event
        bar = self.query_one("#import-progress", ProgressBar)
        if event.total:
            bar.update(total=event.total, progress=event.done or 0)
        if event.message:
            self.query_one("#import-summary", Static).update(Text(event.message))

    @work(thread=True, exclusive=True, exit_on_error=False, group="import")
    def run_import(self, paths: list[Path]) -> None:
        from mipo_local.context import import_paths
        from mipo_local.settings import load_settings

        try:
            summary = import_paths(paths, settings=load_settings(), progress=post_progress(self))
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            notify_error(self.app, exc, "Import failed")
            self.post_message(self.Failed(exc))
            return
        self.post_message(self.Done(summary))

    @on(Failed)
    def _failed(self) -> None:
        self.query_one("#do-import", Button).disabled = False
        self.query_one("#import-summary", Static).update("nothing was imported")

    @on(Done)
    def _done(self, message: Done) -> None:
        self.query_one("#do-import", Button).disabled = False
        self.query_one("#import-summary", Static).update(Text("\n".join(summary_lines(message.summary))))
        self.clear()
