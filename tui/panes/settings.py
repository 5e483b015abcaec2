"""Settings: your name and addresses, the base model, where the workspace is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from mipo_local.addresses import parse_addresses
from mipo_local.errors import MipoError
from mipo_local.modelio.catalog import load_catalog

from ..messages import WorkspaceChanged


def _shown(path: Path) -> str:
    """`path` with the home folder written as `~`: shorter, and the same wherever the home folder is."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class SettingsPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        with Grid(id="settings-form"):
            yield Label("name")
            yield Input(id="settings-name")
            yield Label("addresses")
            yield Input(id="settings-addresses", placeholder="you@example.org, …")
            yield Label("base model")
            yield Select([(c.display_name + ("" if c.available else " (download)"), c.name) for c in load_catalog()],
                         allow_blank=False, id="settings-model")
        with Horizontal(classes="buttons"):
            yield Button("Save", id="save-settings", variant="primary")
        yield Static("", id="workspace")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        from mipo_local import workspace
        from mipo_local.modelio.catalog import default_card
        from mipo_local.settings import load_settings

        s = load_settings()
        self.query_one("#settings-name", Input).value = s.name
        self.query_one("#settings-addresses", Input).value = ", ".join(s.addresses)
        self.query_one("#settings-model", Select).value = s.base_model or default_card().name
        self.query_one("#workspace", Static).update(Text(
            f"workspace: {_shown(workspace.home())}\nEverything mipo-local writes is there; nothing leaves this machine."))

    @on(Button.Pressed, "#save-settings")
    def save(self) -> None:
        from mipo_local.modelio.catalog import default_card
        from mipo_local.settings import load_settings, save_settings

        try:
            addresses = parse_addresses(self.query_one("#settings-addresses", Input).value)
        except MipoError as exc:
            self.app.notify(str(exc), severity="error")
            return
        model = self.query_one("#settings-model", Select).value
        settings = dataclasses.replace(load_settings().with_addresses(addresses),
                                       name=self.query_one("#settings-name", Input).value.strip(),
                                       base_model="" if model == default_card().name else model)
        save_settings(settings)
        if addresses:
            from mipo_local.context import ContextStore

            with ContextStore() as store:
                store.set_user_addresses(settings.addresses)
        self.app.notify("Settings saved.")
        self.post_message(WorkspaceChanged())
