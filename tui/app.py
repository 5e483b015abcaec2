"""The mipo-local Textual app. Screens are thin: they call `mipo_local` and render its results and
progress events; long work runs in thread workers so the UI never freezes."""

from __future__ import annotations

from typing import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from .screens.main import TABS, MainScreen
from .screens.onboarding import OnboardingScreen


class MipoApp(App):
    TITLE = "mipo-local"
    SUB_TITLE = "a language model personal to you, on this machine"
    CSS_PATH = "styles.tcss"
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def on_mount(self) -> None:
        from mipo_local.settings import load_settings

        try:
            onboarded = load_settings().onboarded
        except Exception as exc:  # noqa: BLE001 - a damaged settings file: say so, start the walk-through
            from .bridge import notify_error

            notify_error(self, exc, "Settings")
            onboarded = False
        if onboarded:
            self.push_screen(MainScreen())
        else:
            self.push_screen(OnboardingScreen())

    def show_main(self) -> None:
        self.switch_screen(MainScreen())

    def refresh_panes(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.refresh_panes()

    def _main(self) -> MainScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)

    def _on_main(self, method: str, *args) -> None:
        main = self._main()
        if main is None:
            self.notify("Finish the first steps first.", severity="warning")
            return
        getattr(main, method)(*args)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, title, _ in TABS:
            yield SystemCommand(f"Go to {title}", f"show the {title} tab", lambda k=key: self._on_main("action_tab", k))
        yield SystemCommand("Personalize: start", "make pairs, train, export and evaluate (continues a stopped run)",
                            lambda: self._pane("#personalize", "start"))
        yield SystemCommand("Personalize: make pairs only", "stop after the pairs to review them",
                            lambda: self._pane("#personalize", "start", "pairs"))
        yield SystemCommand("Personalize: cancel", "stop the running run at the next safe point",
                            lambda: self._pane("#personalize", "action_cancel"))
        yield SystemCommand("Chat: new conversation", "start a new conversation", lambda: self._pane("#chat", "new_conversation"))
        yield SystemCommand("Chat: use the personal model", "answers from your personal model",
                            lambda: self._pane("#chat", "use_model", "personal"))
        yield SystemCommand("Chat: use the base model", "answers from the base model, for comparison",
                            lambda: self._pane("#chat", "use_model", "base"))
        yield SystemCommand("Context: re-import the selected source", "read the source again (changed files only)",
                            lambda: self._pane("#context", "reimport_selected"))
        yield SystemCommand("Context: remove the selected source", "forget it in the store; your files stay",
                            lambda: self._pane("#context", "remove_selected"))
        yield SystemCommand("Pairs: reload", "show the latest pairs", lambda: self._pane("#pairs", "reload"))
        yield SystemCommand("Context: import", "import notes or email", lambda: self._pane("#context", "open_import"))
        yield SystemCommand("Results: switch back", "make the previous personal model active again",
                            lambda: self._pane("#results", "switch_back"))
        yield SystemCommand("Pairs: drop or keep the selected pair", "toggle the pair under the cursor",
                            lambda: self._pane("#pairs", "action_toggle"))

    def _pane(self, selector: str, method: str, *args) -> None:
        main = self._main()
        if main is None:
            self.notify("Finish the first steps first.", severity="warning")
            return
        getattr(main.query_one(selector), method)(*args)


def run_app() -> None:
    MipoApp().run()
