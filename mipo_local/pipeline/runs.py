"""Run folders: where a run keeps its settings, state, log and outputs, and how a run is found again.

`state.json` holds, per stage, its status ("running", "stopped", "done"), the fingerprint of its
inputs and settings, its time and what it made; `outputs` holds the paths later stages and the app
read (adapter, model, merged checkpoint).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, ProgressEvent


def digest(value) -> str:
    """A short stable hash of any JSON-able value (settings, fingerprints)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runs_dir() -> Path:
    return workspace.subdir("runs")


def list_runs() -> list[Path]:
    return sorted(p for p in runs_dir().glob("run-*") if (p / "state.json").is_file())


def load_state(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "state.json").read_text())
    except (OSError, ValueError):
        raise MipoError(f"{run_dir} is not a run folder (no readable state.json)") from None


def save_state(run_dir: Path, state: dict) -> None:
    workspace.write_text_atomic(Path(run_dir) / "state.json", json.dumps(state, indent=2, default=str))


def latest_finished_run() -> Optional[Path]:
    done = [p for p in list_runs() if load_state(p).get("finished") and not load_state(p).get("nothing_new")]
    return done[-1] if done else None


def data_fingerprint(store) -> str:
    """Changes whenever the user's imported writing (or their addresses) changes."""
    return digest(store.fingerprint())


def pick_run(key: str, settings: dict, data_fp: str, new: bool, *, continue_only: bool = False) -> tuple[Path, bool]:
    """(run folder, up_to_date): `find_run`'s, else a new folder (refused with `continue_only`)."""
    found, up_to_date = find_run(key, data_fp, new, continue_only=continue_only)
    return (found, up_to_date) if found is not None else (new_run(key, settings, data_fp), False)


def find_run(key: str, data_fp: str, new: bool, *, continue_only: bool = False) -> tuple[Optional[Path], bool]:
    """(run folder or None, up_to_date): the latest unfinished run with this key continues; a finished
    one whose data has not changed and whose model is still there is up to date; else None (refused
    with `continue_only`)."""
    same = [p for p in list_runs() if load_state(p).get("key") == key]
    if continue_only and not (same and not load_state(same[-1]).get("finished")):
        raise MipoError("there is no stopped run with these settings to continue; start one without --resume")
    if same and not new:
        state = load_state(same[-1])
        if not state.get("finished"):
            return same[-1], False
        model = (state.get("outputs") or {}).get("model")
        if state.get("data") == data_fp and model and Path(model).is_file():
            return same[-1], True
    return None, False


def new_run(key: str, settings: dict, data_fp: str) -> Path:
    """A new run folder with its state and settings."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir() / f"run-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir() / f"run-{stamp}-{n}"
    workspace.make_private_dir(run_dir)
    save_state(run_dir, {"key": key, "settings": settings, "data": data_fp,
                         "created": dt.datetime.now().isoformat(timespec="seconds"), "stages": {},
                         "outputs": {}, "finished": False})
    workspace.write_text_atomic(run_dir / "settings.json", json.dumps(settings, indent=2))
    return run_dir


class RunLog:
    """Progress events go to the caller and, one line each, to the run's log.txt."""

    def __init__(self, run_dir: Path, progress: Optional[ProgressCallback]) -> None:
        self.path = Path(run_dir) / "log.txt"
        workspace.create_private_file(self.path)
        self.progress = progress
        self._last: dict[str, float] = {}
        self._kind: dict[str, str] = {}

    def line(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{dt.datetime.now().isoformat(timespec='seconds')} {text}\n")

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        kind = re.sub(r"\d+(\.\d+)?", "#", (event.message.split() or [""])[0])   # "loss 0.69", "loss 0.71": one kind
        # a new kind of work always gets its line; more of the same at most one per 5 s per stage
        if event.finished or kind != self._kind.get(event.stage) or now - self._last.get(event.stage, 0.0) > 5.0:
            self._last[event.stage], self._kind[event.stage] = now, kind
            counts = f" {event.done:g}/{event.total:g} {event.unit}" if event.done is not None and event.total else ""
            self.line(f"[{event.stage}] {event.message}{counts}")
        if self.progress is not None:
            self.progress(event)
