"""Personalize: the run's settings (the library's defaults), Start / Make pairs / Cancel, live progress.
With profiles (`mipo_local.chat.profiles`), a picker chooses whose run it is: the profile's sources, runs and
active model."""

from __future__ import annotations

import dataclasses
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Select, Sparkline, Static

from mipo_local.options import choices_of, described, kind_of
from mipo_local.pipeline import STAGES, RunSettings
from mipo_local.stop import StopFlag

from ..bridge import Progress, notify_error, post_progress
from ..messages import WorkspaceChanged
from ..widgets.profile_choice import refresh_profile_choice

# the run form: (label, part of RunSettings or None for its own fields, field, widget id); each field's
# default, choices and help (the widget's tooltip) come from its settings dataclass
FORM = (("examples", "pairs", "examples", "examples"), ("negative", "pairs", "strategy", "strategy"),
        ("epochs", "train", "epochs", "epochs"), ("answer tokens", "pairs", "max_new_tokens", "max-new-tokens"),
        ("quantization", None, "quant", "quant"), ("device", "train", "device", "device"))
AUTO = "auto"   # a Select's value for a field left to the library (None)

# progress events of sub-steps, shown under the stage they belong to
STAGE_OF = {"checkpoint": "pairs", "write-gguf": "export", "quantize": "export", "merge": "export", "verify": "export"}


class PersonalizePane(VerticalScroll):
    class RunFinished(Message):
        """The run's worker is done: the pipeline's result, or the error that ended it."""

        def __init__(self, result, error: BaseException | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.cancel = StopFlag()             # the same stop contract as Ctrl-C in the terminal
        self.status = {s: "·" for s in STAGES}
        self.losses: list[float] = []
        self.margins: list[float] = []
        self.running = False
        self.pairs_started = None

    def compose(self) -> ComposeResult:
        d = RunSettings()
        yield Static("Make pairs from your writing, train, export and evaluate. Defaults are the library's; "
                     "an interrupted run continues where it stopped.", classes="hint")
        with Grid(id="run-form"):
            for label, part, name, widget_id in FORM:
                owner = getattr(d, part) if part else d
                field = described(type(owner))[name]
                value = getattr(owner, name)
                yield Label(label)
                if field.metadata["choices"]:
                    options = list(choices_of(type(owner), name))
                    if field.default is None:
                        options.insert(0, ("by model size", AUTO))
                    widget = Select(options, value=AUTO if value is None else value, allow_blank=False, id=widget_id)
                else:
                    widget = Input(str(value), id=widget_id, type="integer" if kind_of(field) is int else "number")
                widget.tooltip = field.metadata["help"]
                yield widget
            yield Label("profile", id="run-profile-label")
            picker = Select([("all sources", "default")], value="default", allow_blank=False, id="run-profile")
            picker.tooltip = "whose run: a profile's own sources, runs and active model (mipo-local profile)"
            yield picker
        with Horizontal(classes="buttons"):
            yield Button("Start", id="start", variant="primary")
            yield Button("Make pairs", id="pairs-only")
            yield Button("Cancel", id="cancel", disabled=True)
        yield Static(self._stage_line(), id="stages")
        yield ProgressBar(id="stage-progress", show_eta=False)
        yield Static("", id="stage-detail")
        with Vertical(id="plots"):
            yield Label("training loss", classes="plot-label")
            yield Sparkline([], id="loss-plot")
            yield Label("reward margin", classes="plot-label")
            yield Sparkline([], id="margin-plot")

    def on_mount(self) -> None:
        self.query_one("#stage-progress", ProgressBar).display = False   # shown while a run goes
        self.refresh_profiles()

    def refresh_profiles(self) -> None:
        refresh_profile_choice(self.query_one("#run-profile", Select), self.query_one("#run-profile-label", Label))

    def profile(self) -> str | None:
        """The chosen profile, None for the default (every source)."""
        from mipo_local.chat.profile_names import normalize

        return normalize(str(self.query_one("#run-profile", Select).value))

    def _stage_line(self) -> str:
        return "  ".join(f"{self.status[s]} {s}" for s in STAGES)

    def settings(self) -> RunSettings:
        """The library's defaults with what the form holds."""
        from mipo_local.errors import MipoError

        d = RunSettings()
        given: dict[str | None, dict] = {}
        for label, part, name, widget_id in FORM:
            owner = getattr(d, part) if part else d
            field = described(type(owner))[name]
            widget = self.query_one(f"#{widget_id}")
            if isinstance(widget, Select):
                value = None if field.default is None and widget.value == AUTO else widget.value
            else:
                text = widget.value.strip()
                try:
                    value = kind_of(field)(text) if text else getattr(owner, name)
                except ValueError:
                    raise MipoError(f"{label}: {text!r} is not a number") from None
                if value <= 0:
                    raise MipoError(f"{label} must be above 0")
            given.setdefault(part, {})[name] = value
        return dataclasses.replace(d, **given.get(None, {}),
                                   pairs=dataclasses.replace(d.pairs, **given.get("pairs", {})),
                                   train=dataclasses.replace(d.train, **given.get("train", {})))

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.start()

    @on(Button.Pressed, "#pairs-only")
    def _pairs_only_pressed(self) -> None:
        self.start(until="pairs")

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def start(self, until: str | None = None) -> None:
        """Start (or continue) a run; `until="pairs"` stops after the pairs, for review."""
        if self.running:
            self.app.notify("A run is already going; cancel it first.", severity="warning")
            return
        try:
            settings = self.settings()
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc, "Settings")
            return
        self.cancel = StopFlag()             # a new run, a new flag (once asked, a stop stays asked)
        self.running = True
        self.status = {s: "·" for s in STAGES}
        self.losses, self.margins = [], []
        self.pairs_started = None
        self._set_running(True)
        self.query_one("#stage-progress", ProgressBar).display = True
        self.query_one("#stages", Static).update(self._stage_line())
        self.run_worker_thread(settings, until, self.profile())

    def action_cancel(self) -> None:
        if self.running:
            self.cancel.request()
            self.query_one("#stage-detail", Static).update("stopping at the next safe point…")

    def _set_running(self, running: bool) -> None:
        self.query_one("#start", Button).disabled = running
        self.query_one("#pairs-only", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        event = message.event
        stage = STAGE_OF.get(event.stage, event.stage)
        if event.stage != stage and self.status.get(stage) == "✓":
            stage = None   # a sub-step (e.g. the cached checkpoint) of a stage already done
        if stage in self.status:
            if event.data.get("skipped"):
                self.status[stage] = "✓"
            elif event.finished and event.stage == stage:
                self.status[stage] = "✓"
            else:
                self.status[stage] = "…"
                for earlier in STAGES[: STAGES.index(stage)]:
                    if self.status[earlier] != "✓":
                        self.status[earlier] = "✓"
            self.query_one("#stages", Static).update(self._stage_line())
        bar = self.query_one("#stage-progress", ProgressBar)
        if event.total:
            bar.update(total=event.total, progress=event.done or 0)
        detail = f"{event.stage}: {event.message}"
        if event.done is not None and event.total:
            detail += f"  ({event.done:g}/{event.total:g} {event.unit})"
        rate = event.data.get("pairs_per_second")
        if event.stage == "pairs" and event.done is not None:
            first = self.pairs_started or (time.monotonic(), event.done)
            self.pairs_started = first
            elapsed = time.monotonic() - first[0]
            if elapsed > 0 and event.done > first[1]:
                rate = (event.done - first[1]) / elapsed
            if event.data.get("tokens_per_second"):
                detail += f"  {event.data['tokens_per_second']:.0f} tok/s"
        if rate:
            detail += f"  {rate:.2f} pairs/s"
        eta = event.data.get("eta_seconds")
        if eta:
            detail += f"  ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"
        self.query_one("#stage-detail", Static).update(Text(detail))
        if event.stage == "train" and event.data.get("loss") is not None:
            self.losses.append(float(event.data["loss"]))
            self.query_one("#loss-plot", Sparkline).data = list(self.losses)
            if event.data.get("reward_margin") is not None:
                self.margins.append(float(event.data["reward_margin"]))
                self.query_one("#margin-plot", Sparkline).data = list(self.margins)

    @work(thread=True, exclusive=True, exit_on_error=False, group="personalize")
    def run_worker_thread(self, settings: RunSettings, until, profile: str | None = None) -> None:
        from mipo_local.pipeline import run_pipeline

        result, error = None, None
        try:
            result = run_pipeline((), settings, until=until, progress=post_progress(self),
                                  should_stop=self.cancel, profile=profile)
        except Exception as exc:  # noqa: BLE001 - shown, the app keeps running
            error = exc
            notify_error(self.app, exc, "Personalize failed")
        self.post_message(self.RunFinished(result, error))

    @on(RunFinished)
    def _finished(self, message: RunFinished) -> None:
        result, error = message.result, message.error
        self.running = False
        self._set_running(False)
        detail = self.query_one("#stage-detail", Static)
        if error is not None:
            failed = next((s for s in STAGES if self.status[s] != "✓"), None)
            if failed:
                self.status[failed] = "✗"
            self.query_one("#stages", Static).update(self._stage_line())
            detail.update(Text(f"stopped by an error: {error}"))
        elif result.stopped:
            detail.update("cancelled; Start continues where it stopped")
        elif not result.finished:
            detail.update("pairs are ready: review them in Pairs, then Start to train")
            self.app.notify("Pairs are ready for review.")
        else:
            from mipo_local.evaluation.report import gain_label

            shown = gain_label(result.report)
            text = "done"
            if result.nothing_new:
                text = result.mode_reason
            elif result.up_to_date:
                text = "nothing changed since the last run; its model is active"
            elif shown:
                text = f"done: {shown} on your held-out writing (see Results)"
            if result.mode == "incremental" and not result.up_to_date:
                text = f"{text} (incremental: {result.mode_reason})"
            detail.update(text)
            if not result.nothing_new:
                self.app.notify("Your personal model is ready and active.")
        self.post_message(WorkspaceChanged())
