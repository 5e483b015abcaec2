"""Results: each run's evaluation report, which model is active, switching back to an earlier one."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from ..bridge import notify_error
from ..messages import WorkspaceChanged


class ResultsPane(Vertical):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.runs: dict = {}        # option id → RunSummary

    def compose(self) -> ComposeResult:
        yield Static("", id="active-model")
        with Horizontal(classes="buttons"):
            yield Button("Switch back", id="switch-back")
        with Horizontal(id="results-body"):
            yield OptionList(id="runs")
            yield Markdown("", id="report")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        from mipo_local.chat.active_model import active_model, history
        from mipo_local.pipeline.summary import run_summaries

        active = active_model()
        earlier = history()
        self.query_one("#active-model", Static).update(Text(
            f"active model: {active.parent.name}/{active.name}" if active else "active model: none yet (Personalize makes one)")
            + Text(f"\nearlier models: {len(earlier)}"))
        self.query_one("#switch-back", Button).disabled = not earlier
        runs = self.query_one("#runs", OptionList)
        runs.clear_options()
        self.runs = {str(s.folder): s for s in run_summaries()}
        for key, summary in self.runs.items():
            runs.add_option(Option(Text(summary.label), id=key))
        if runs.option_count:
            runs.highlighted = 0
            self._show(runs.get_option_at_index(0).id)
        else:
            self.query_one("#report", Markdown).update("No runs yet. Start one in **Personalize**.")

    def _show(self, key: str) -> None:
        summary = self.runs.get(key)
        report = summary.report_markdown() if summary else None
        self.query_one("#report", Markdown).update(report if report is not None else
                                                   "This run has no report yet (unfinished).")

    @on(OptionList.OptionHighlighted, "#runs")
    def _run_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option and event.option.id:
            self._show(event.option.id)

    @on(Button.Pressed, "#switch-back")
    def switch_back(self) -> None:
        from mipo_local.chat.active_model import switch_back

        try:
            model = switch_back()
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc)
            return
        self.app.notify(f"Switched back to {model.parent.name}/{model.name}")
        self.post_message(WorkspaceChanged())
