"""The mipo-local Textual app. Screens are thin: they call `mipo_local` and render its results."""

from __future__ import annotations

from textual.app import App

from .screens.welcome import WelcomeScreen


class MipoApp(App):
    TITLE = "mipo-local"
    SUB_TITLE = "a language model personal to you, on this machine"
    CSS_PATH = "styles.tcss"
    BINDINGS = [("q", "quit", "Quit")]

    def on_mount(self) -> None:
        self.push_screen(WelcomeScreen())


def run_app() -> None:
    MipoApp().run()
