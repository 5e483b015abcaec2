"""The mipo-local Textual app. Screens are thin: they call `mipo_local` and render its results and
progress events; long work runs in thread workers so the UI never freezes."""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from textual import on
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.widget import Widget

from .panes.chat import ChatPane
from .panes.context import ContextPane
from .panes.pairs import PairsPane
from .panes.personalize import PersonalizePane
from .panes.results import ResultsPane
from .screens.main import TABS, MainScreen
from .screens.onboarding import OnboardingScreen

P = TypeVar("P", bound=Widget)


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

    @on(OnboardingScreen.Finished)
    def show_main(self) -> None:
        self.switch_screen(MainScreen())

    def _main(self) -> MainScreen | None:
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if main is None:
            self.notify("Finish the first steps first.", severity="warning")
        return main

    def _on_main(self, do: Callable[[MainScreen], object]) -> Callable[[], None]:
        """A palette command that calls `do` with the main screen (after the first steps)."""

        def command() -> None:
            main = self._main()
            if main is not None:
                do(main)

        return command

    def _on_pane(self, pane: type[P], do: Callable[[P], object]) -> Callable[[], None]:
        """A palette command that calls `do` with the main screen's pane of type `pane`."""
        return self._on_main(lambda main: do(main.query_one(pane)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, title, _ in TABS:
            yield SystemCommand(f"Go to {title}", f"show the {title} tab",
                                self._on_main(lambda main, k=key: main.action_tab(k)))
        yield SystemCommand("Personalize: start", "make pairs, train, export and evaluate (continues a stopped run)",
                            self._on_pane(PersonalizePane, lambda p: p.start()))
        yield SystemCommand("Personalize: make pairs only", "stop after the pairs to review them",
                            self._on_pane(PersonalizePane, lambda p: p.start(until="pairs")))
        yield SystemCommand("Personalize: cancel", "stop the running run at the next safe point",
                            self._on_pane(PersonalizePane, lambda p: p.action_cancel()))
        yield SystemCommand("Chat: new conversation", "start a new conversation",
                            self._on_pane(ChatPane, lambda p: p.new_conversation()))
        yield SystemCommand("Chat: use the personal model", "answers from your personal model",
                            self._on_pane(ChatPane, lambda p: p.use_model("personal")))
        yield SystemCommand("Chat: use the base model", "answers from the base model, for comparison",
                            self._on_pane(ChatPane, lambda p: p.use_model("base")))
        yield SystemCommand("Context: re-import the selected source", "read the source again (changed files only)",
                            self._on_pane(ContextPane, lambda p: p.reimport_selected()))
        yield SystemCommand("Context: remove the selected source", "forget it in the store; your files stay",
                            self._on_pane(ContextPane, lambda p: p.remove_selected()))
        yield SystemCommand("Pairs: reload", "show the latest pairs", self._on_pane(PairsPane, lambda p: p.reload()))
        yield SystemCommand("Context: import", "import notes or email", self._on_pane(ContextPane, lambda p: p.open_import()))
        yield SystemCommand("Results: switch back", "make the previous personal model active again",
                            self._on_pane(ResultsPane, lambda p: p.switch_back()))
        yield SystemCommand("Pairs: drop or keep the selected pair", "toggle the pair under the cursor",
                            self._on_pane(PairsPane, lambda p: p.action_toggle()))


def run_app() -> None:
    MipoApp().run()
