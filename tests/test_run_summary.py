"""What a list of runs shows, from the library: a run's label, its report, the estimates' one format."""

from __future__ import annotations

import json

from mipo_local import workspace
from mipo_local.evaluation.report import format_estimate
from mipo_local.pipeline.summary import run_summaries


def _run(name: str, state: dict, report_md: str | None = None) -> None:
    folder = workspace.subdir("runs") / name
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps(state))
    if report_md is not None:
        (folder / "report.md").write_text(report_md)


def test_runs_newest_first_with_their_gain_or_unfinished():
    gain = {"mean": 0.13, "ci95": [0.05, 0.2], "n": 12}
    _run("run-20261101-090000", {"finished": True, "report": {"identification": {"gain": gain}}}, "# Report\n")
    _run("run-20261102-090000", {"finished": False})
    newest, oldest = run_summaries()
    assert (newest.label, newest.report_markdown()) == ("run-20261102-090000  (unfinished)", None)
    assert oldest.label == "run-20261101-090000  identification +13 pts"
    assert oldest.report_markdown() == "# Report\n"


def test_an_estimate_is_written_one_way():
    stat = {"mean": 0.2, "ci95": [0.1, 0.3], "n": 20}
    assert format_estimate(stat, 1, 100) == "+20.0 (95% CI +10.0 to +30.0, n=20)"
    assert format_estimate(stat, 3, compact=True) == "+0.200 (+0.100 … +0.300)"
    assert format_estimate({"n": 0}) == "n/a (no examples)"
