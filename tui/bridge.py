"""From library progress events (worker threads) to the UI thread, and errors as notifications."""

from __future__ import annotations

from typing import Callable

from textual.app import App

from mipo_local.errors import MipoError
from mipo_local.progress import ProgressEvent


def progress_to_ui(app: App, handler: Callable[[ProgressEvent], None]) -> Callable[[ProgressEvent], None]:
    """A progress callback for `mipo_local` that runs `handler` on the UI thread."""

    def callback(event: ProgressEvent) -> None:
        app.call_from_thread(handler, event)

    return callback


def error_text(exc: BaseException) -> str:
    """One line that names the cause: the library's own message, or the exception's type and text."""
    if isinstance(exc, MipoError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def notify_error(app: App, exc: BaseException, title: str = "Error") -> None:
    """Show `exc` as an error notification (from any thread); the app keeps running."""
    import threading

    message = error_text(exc)
    if threading.get_ident() == app._thread_id:
        app.notify(message, title=title, severity="error", timeout=12)
    else:
        app.call_from_thread(app.notify, message, title=title, severity="error", timeout=12)
