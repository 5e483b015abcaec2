"""The first screen: what will happen, that nothing leaves the machine, and the base models."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mipo_local.catalog import load_catalog

WELCOME = """\
[b]Welcome to mipo-local.[/b]

It makes a small language model personal to you, entirely on this computer:
  1. [b]Context[/b]  import your notes and email into a local store
  2. [b]Pairs[/b]    the model answers prompts with and without your context
  3. [b]Train[/b]    a LoRA learns to prefer the answers that use your context
  4. [b]Export[/b]   the personal model is written as a GGUF file
  5. [b]Chat[/b]     talk to it, with your notes retrieved into each turn

[i]Nothing you import or write leaves this machine.[/i]
"""


class WelcomeScreen(Screen):
    BINDINGS = [("q", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="welcome"):
            yield Static(WELCOME, id="welcome-text")
            yield Static("[b]Base models[/b]", id="models-title")
            yield DataTable(id="models", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("model", "arch", "params", "memory", "on this machine")
        for card in load_catalog():
            here = "yes" if card.available else "no (download)"
            table.add_row(card.display_name + (" *" if card.default else ""), card.architecture, card.parameters,
                          f"{card.memory_gb:.1f} GB", here, key=card.name)
