"""The main screen: one tab per part of the work."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from ..messages import WorkspaceChanged
from ..panes.chat import ChatPane
from ..panes.context import ContextPane
from ..panes.pairs import PairsPane
from ..panes.personalize import PersonalizePane
from ..panes.results import ResultsPane
from ..panes.settings import SettingsPane

TABS = (("context", "Context", ContextPane), ("personalize", "Personalize", PersonalizePane), ("pairs", "Pairs", PairsPane),
        ("chat", "Chat", ChatPane), ("results", "Results", ResultsPane), ("settings", "Settings", SettingsPane))


class MainScreen(Screen):
    BINDINGS = [Binding(f"f{n}", f"tab('{key}')", title, show=n <= 4) for n, (key, title, _) in enumerate(TABS, 1)]

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs", initial="tab-context"):
            for key, title, pane in TABS:
                with TabPane(title, id=f"tab-{key}"):
                    yield pane(id=key)
        yield Footer()

    def action_tab(self, key: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{key}"      # TabActivated focuses the pane's input

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_pane((event.pane.id or "").removeprefix("tab-"))

    def _focus_pane(self, key: str) -> None:
        """What one types on a tab goes where it is meant to (in Chat: the message box)."""
        if key == "chat":
            self.call_after_refresh(self.query_one("#chat-input").focus)

    @on(WorkspaceChanged)
    def refresh_panes(self) -> None:
        """Reload what every tab shows from the workspace."""
        self.query_one(ContextPane).reload()
        self.query_one(PairsPane).reload()
        self.query_one(ResultsPane).reload()
        self.query_one(SettingsPane).reload()
        self.query_one(ChatPane).refresh_conversations()
        self.query_one(PersonalizePane).refresh_profiles()
