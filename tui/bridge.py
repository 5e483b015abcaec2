"""From library progress events (worker threads) to the UI as messages, and errors as notifications."""

from __future__ import annotations

from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump

from mipo_local.errors import MipoError
from mipo_local.progress import ProgressCallback, ProgressEvent


class Progress(Message, bubble=False):
    """A library progress event, delivered to the widget whose work it reports."""

    def __init__(self, event: ProgressEvent) -> None:
        super().__init__()
        self.event = event


def post_progress(widget: MessagePump) -> ProgressCallback:
    """A progress callback for `mipo_local` that posts each event to `widget` as a `Progress` message
    (posting is thread-safe: a worker thread may call it)."""

    def callback(event: ProgressEvent) -> None:
        widget.post_message(Progress(event))

    return callback


def error_text(exc: BaseException) -> str:
    """One line that names the cause: the library's own message, or the exception's type and text."""
    if isinstance(exc, MipoError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def notify_error(app: App, exc: BaseException, title: str = "Error") -> None:
    """Show `exc` as an error notification (`App.notify` is thread-safe: from any thread); the app
    keeps running."""
    app.notify(error_text(exc), title=title, severity="error", timeout=12)
