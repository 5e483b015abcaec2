"""The one way to stop a long run at its next safe point.

Ctrl-C in the terminal and the app's Cancel button both set a `StopFlag`; every stage polls it and,
at a safe point (a committed pair, a training checkpoint, a finished answer), returns "stopped"
instead of raising. Running again continues where it stopped. A second Ctrl-C while stopping is the
hard way out (KeyboardInterrupt); that is safe too: every write is atomic and pairs are committed
one by one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator, Optional


class StopFlag:
    """Callable: true once a stop was asked for (by `request()`, Ctrl-C under `on_sigint()`, or the
    optional `also` callable, e.g. a caller's own cancel check)."""

    def __init__(self, also: Optional[Callable[[], bool]] = None) -> None:
        self._event = threading.Event()
        self._also = also

    def request(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        if not self._event.is_set() and self._also is not None and self._also():
            self._event.set()
        return self._event.is_set()

    @contextlib.contextmanager
    def on_sigint(self) -> Iterator["StopFlag"]:
        """While inside, the first Ctrl-C asks for a stop and the second raises KeyboardInterrupt.
        Signal handlers live on the main thread only; elsewhere (the app's worker) this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum, frame) -> None:
            if self._event.is_set():
                raise KeyboardInterrupt
            self.request()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def as_stop_flag(stop: Optional[Callable[[], bool]]) -> StopFlag:
    """A StopFlag for whatever the caller passed (a StopFlag, any callable, or nothing)."""
    return stop if isinstance(stop, StopFlag) else StopFlag(stop)
