"""What a list of runs shows (the app's Results tab): one summary per run, newest first.

A view reads runs through this module, never a run's state file or its report's JSON layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..evaluation.report import gain_label


@dataclass(frozen=True)
class RunSummary:
    name: str             # the run's folder name, e.g. run-20261104-101500
    folder: Path
    finished: bool        # every stage done
    gain: str             # `gain_label` of its report, "" while it has none

    @property
    def label(self) -> str:
        """The run's line in a list: its name and gain, or that it is unfinished."""
        if self.gain:
            return f"{self.name}  {self.gain}"
        return self.name if self.finished else f"{self.name}  (unfinished)"

    def report_markdown(self) -> Optional[str]:
        """The run's report as Markdown, or None while it has none (an unfinished run)."""
        path = self.folder / "report.md"
        return path.read_text(encoding="utf-8") if path.is_file() else None


def summarize_run(folder: Path) -> RunSummary:
    from . import load_state

    folder = Path(folder)
    state = load_state(folder)
    return RunSummary(folder.name, folder, bool(state.get("finished")), gain_label(state.get("report")))


def run_summaries() -> list[RunSummary]:
    """Every run in the workspace, the newest first."""
    from . import list_runs

    return [summarize_run(run) for run in reversed(list_runs())]
