"""Progress events: library code reports through a callback and never prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class ProgressEvent:
    stage: str                      # e.g. "checkpoint", "write-gguf", "quantize"
    message: str = ""
    done: Optional[float] = None    # units done so far (None: unknown)
    total: Optional[float] = None   # units in all (None: unknown)
    unit: str = ""
    finished: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> Optional[float]:
        if self.done is None or not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


ProgressCallback = Callable[[ProgressEvent], None]


def report(callback: Optional[ProgressCallback], stage: str, message: str = "", **kw: Any) -> None:
    """Send one event to `callback` if there is one."""
    if callback is not None:
        callback(ProgressEvent(stage=stage, message=message, **kw))


def counting(callback: Optional[ProgressCallback], stage: str, message: str,
             unit: str) -> Callable[[int, int], None]:
    """A (done, total) callback that reports `message` in `stage` with its count and an ETA from the
    pace so far: a long loop (reference log-probs, held-out scoring) never looks stuck."""
    import time

    start = time.perf_counter()

    def on(done: int, total: int) -> None:
        took = time.perf_counter() - start
        eta = took / done * (total - done) if done and total else None
        report(callback, stage, message, done=done, total=total, unit=unit, data={"eta_seconds": eta})

    return on
