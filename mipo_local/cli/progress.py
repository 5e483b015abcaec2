"""Render progress events on the terminal (stderr): one updating line per stage."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from ..context.text import for_terminal
from ..progress import ProgressEvent


class TerminalProgress:
    def __init__(self, stream: Optional[TextIO] = None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._stage: Optional[str] = None
        self._stage_start = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.perf_counter()
        if event.stage != self._stage:
            self._end_line()
            self._stage, self._stage_start = event.stage, now
        if not event.finished and now - self._last < self.min_interval:
            return
        self._last = now
        frac = event.fraction
        bar = ""
        if frac is not None:
            filled = int(frac * 24)
            bar = f"[{'#' * filled}{'.' * (24 - filled)}] {frac:5.1%} "
        counts = ""
        if event.done is not None and event.total and event.unit in ("pairs", "steps", "batches", "prompts", "texts"):
            counts = f"{event.done:.0f}/{event.total:.0f} {event.unit} "
        eta = event.data.get("eta_seconds") if not event.finished else None
        suffix = f" ETA {int(eta) // 60}m{int(eta) % 60:02d}s" if isinstance(eta, (int, float)) else ""
        line = f"{event.stage:>11}: {bar}{counts}{for_terminal(event.message, single_line=True)}{suffix}"[:110]
        if event.finished:
            line += f" ({now - self._stage_start:.1f} s)"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if event.finished:
                self.stream.write("\n")
                self._stage = None
        elif event.finished:
            self.stream.write(line + "\n")
            self._stage = None
        self.stream.flush()

    def _end_line(self) -> None:
        if self.tty and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
