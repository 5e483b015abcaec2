"""Your writing: counts, sources (re-import, remove), search, and importing more."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from ..bridge import notify_error
from ..messages import WorkspaceChanged
from ..widgets.import_panel import ImportPanel, summary_lines


class ImportScreen(ModalScreen[None]):
    BINDINGS = [("escape", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="import-dialog"):
            yield Static("[b]Import your writing[/b]")
            yield ImportPanel(id="dialog-import")
            yield Button("Close", id="close-import")

    @on(Button.Pressed, "#close-import")
    def action_close(self) -> None:
        self.dismiss(None)


class ContextPane(VerticalScroll):
    class Reimported(Message):
        """A source was read again (in a worker): what the import did."""

        def __init__(self, summary) -> None:
            super().__init__()
            self.summary = summary

    def compose(self) -> ComposeResult:
        yield Static("", id="context-counts")
        yield DataTable(id="sources", cursor_type="row")
        with Horizontal(classes="buttons"):
            yield Button("Import…", id="import-more", variant="primary")
            yield Button("Re-import", id="reimport")
            yield Button("Remove", id="remove-source", variant="error")
        yield Input(placeholder="search your writing", id="search")
        yield Static("", id="search-results")

    def on_mount(self) -> None:
        self.query_one("#sources", DataTable).add_columns("#", "source", "kind", "files", "documents")
        self.reload()

    def reload(self) -> None:
        from mipo_local.context import ContextStore
        from mipo_local.settings import load_settings

        with ContextStore() as store:
            counts = store.counts()
            sources = store.sources()
        addresses = ", ".join(load_settings().addresses) or "none set (Settings)"
        self.query_one("#context-counts", Static).update(Text(
            f"{counts['notes']} notes, {counts['emails']} emails ({counts['own_emails']} yours), {counts['chunks']} chunks, "
            f"{counts['reply_links']} replies linked, from {counts['sources']} sources\nyour addresses: {addresses}"))
        table = self.query_one("#sources", DataTable)
        table.clear()
        self.sources = {str(s.id): s for s in sources}
        for s in sources:
            table.add_row(str(s.id), Text(str(s.path)), s.kind, str(s.files), str(s.documents), key=str(s.id))

    def _selected(self):
        table = self.query_one("#sources", DataTable)
        if not table.row_count:
            self.app.notify("There are no sources yet; Import… adds some.", severity="warning")
            return None
        return self.sources[table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value]

    @on(Button.Pressed, "#import-more")
    def open_import(self) -> None:
        self.app.push_screen(ImportScreen(), lambda _: self.post_message(WorkspaceChanged()))

    @on(Button.Pressed, "#reimport")
    def reimport_selected(self) -> None:
        source = self._selected()
        if source:
            self.reimport(source.path)

    @on(Button.Pressed, "#remove-source")
    def remove_selected(self) -> None:
        from mipo_local.context import ContextStore

        source = self._selected()
        if not source:
            return
        try:
            with ContextStore() as store:
                store.remove_source(str(source.id))
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc)
            return
        self.app.notify(f"Removed {source.path} from the store; your files were not touched.")
        self.reload()

    @work(thread=True, exit_on_error=False, group="import")
    def reimport(self, path) -> None:
        from mipo_local.context import import_paths
        from mipo_local.settings import load_settings

        try:
            summary = import_paths([path], settings=load_settings())
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc, "Re-import failed")
            return
        self.post_message(self.Reimported(summary))

    @on(Reimported)
    def _reimported(self, message: Reimported) -> None:
        self.app.notify(Text("\n".join(summary_lines(message.summary))).plain)
        self.reload()

    @on(Input.Submitted, "#search")
    def search(self, event: Input.Submitted) -> None:
        from mipo_local.context import ContextStore

        with ContextStore() as store:
            hits = store.search(event.value, 6)
        text = Text()
        for h in hits:
            text.append(f"{h.title}", style="bold")
            text.append(f" ({h.kind})\n{' '.join(h.text.split())[:240]}\n\n")
        self.query_one("#search-results", Static).update(text if hits else Text("nothing found"))
