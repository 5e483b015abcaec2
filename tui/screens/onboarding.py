"""First run: what will happen, the base model, who you are, what to import."""

from __future__ import annotations

import dataclasses

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, DataTable, Footer, Header, Input, Static

from mipo_local.addresses import parse_addresses
from mipo_local.errors import MipoError
from mipo_local.modelio.catalog import load_catalog, machine_memory, recommend
from mipo_local.settings import load_settings, save_settings

from ..widgets.import_panel import ImportPanel

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

STEPS = ("step-welcome", "step-model", "step-you", "step-import")


class OnboardingScreen(Screen):
    """Posts `OnboardingScreen.Finished` when the walk-through is done (the app then shows the main screen)."""

    BINDINGS = [("escape", "back", "Back"), ("ctrl+n", "next", "Next step")]
    AUTO_FOCUS = "#next-welcome"        # Enter starts the walk-through

    class Finished(Message):
        """The first steps are done and saved."""

    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial="step-welcome", id="steps"):
            with VerticalScroll(id="step-welcome"):
                yield Static(WELCOME, id="welcome-text")
                yield Button("Start", id="next-welcome", variant="primary")
            with Vertical(id="step-model"):
                yield Static("[b]Pick a base model.[/b] The bundled one works on any machine; larger ones answer "
                             "better and need more memory (and a download).", classes="hint")
                yield DataTable(id="models", cursor_type="row")
                yield Static("", id="model-recommendation", classes="hint")
                yield Button("Next", id="next-model", variant="primary")
            with VerticalScroll(id="step-you"):
                yield Static("[b]About you.[/b] Your addresses tell your emails (your writing) from the ones "
                             "you received (the prompts). Separate them with commas.", classes="hint")
                yield Input(placeholder="your name", id="name")
                yield Input(placeholder="you@example.org, you@work.example", id="addresses")
                yield Button("Next", id="next-you", variant="primary")
            with Vertical(id="step-import"):
                yield Static("[b]Your writing.[/b]", classes="hint")
                yield ImportPanel(id="onboarding-import")
                with Horizontal(classes="buttons"):
                    yield Button("Finish", id="finish", variant="success")
        yield Footer()

    def on_mount(self) -> None:
        settings = load_settings()
        table = self.query_one("#models", DataTable)
        table.add_columns("model", "params", "download", "memory", "on this machine")
        cards = load_catalog()
        best, why = recommend(cards, machine_memory())
        # preselected: the user's earlier choice, else the recommended model where it is on this machine
        # already, else the bundled one (a download is the user's decision)
        wanted = settings.base_model or (best.name if best.available else "")
        chosen = 0
        for row, card in enumerate(cards):
            here = "yes" if card.available else "no"
            table.add_row(card.display_name + (" *" if card.default else "") + (" (recommended)" if card is best else ""),
                          card.parameters, f"{card.size_mb} MB", f"{card.memory_gb:.1f} GB", here, key=card.name)
            if (wanted and card.name == wanted) or (not wanted and card.default):
                chosen = row
        self.query_one("#model-recommendation", Static).update(
            why + ("" if best.available or best.default else "; it is downloaded when you personalize"))
        table.move_cursor(row=chosen)
        self.query_one("#name", Input).value = settings.name
        self.query_one("#addresses", Input).value = ", ".join(settings.addresses)

    @property
    def step(self) -> str:
        return self.query_one(ContentSwitcher).current or STEPS[0]

    def show(self, step: str) -> None:
        self.query_one(ContentSwitcher).current = step
        focus = {"step-welcome": "#next-welcome", "step-model": "#models", "step-you": "#name",
                 "step-import": "#import-path"}[step]
        self.query_one(focus).focus()

    def _save_model(self) -> None:
        table = self.query_one("#models", DataTable)
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        card = next(c for c in load_catalog() if c.name == key)
        if not card.available:
            self.app.notify(f"{card.display_name} is not on this machine yet; it is downloaded when you personalize "
                            f"(or: mipo-local models --download {card.name})", severity="warning")
        save_settings(dataclasses.replace(load_settings(), base_model="" if card.default else card.name))

    def _save_you(self) -> bool:
        try:
            addresses = parse_addresses(self.query_one("#addresses", Input).value)
        except MipoError as exc:
            self.app.notify(str(exc), severity="error")
            return False
        settings = load_settings().with_addresses(addresses)
        save_settings(dataclasses.replace(settings, name=self.query_one("#name", Input).value.strip()))
        return True

    @on(Button.Pressed, "#next-welcome")
    @on(Button.Pressed, "#next-model")
    @on(Button.Pressed, "#next-you")
    @on(DataTable.RowSelected, "#models")
    def action_next(self) -> None:
        step = self.step
        if step == "step-model":
            self._save_model()
        elif step == "step-you" and not self._save_you():
            return
        elif step == "step-import":
            self.finish()
            return
        self.show(STEPS[STEPS.index(step) + 1])

    def action_back(self) -> None:
        i = STEPS.index(self.step)
        if i > 0:
            self.show(STEPS[i - 1])

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        save_settings(dataclasses.replace(load_settings(), onboarded=True))
        self.post_message(self.Finished())
