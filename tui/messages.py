"""The app's own messages that travel between widgets: posted upward, met by `@on(...)` handlers."""

from __future__ import annotations

from textual.message import Message


class WorkspaceChanged(Message):
    """The workspace changed (an import, a run, a switch of model, saved settings): the main screen
    reloads what its tabs show."""
