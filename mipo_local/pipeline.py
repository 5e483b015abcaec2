"""`mipo-local run`: import → pairs → train → export → activate → evaluate, as one resumable run.

Each run has a folder under the workspace's `runs/` with its settings, a log, its stage state, the
personal model and the report. A stage records a fingerprint of its inputs and settings when it
finishes; a stage whose fingerprint is unchanged is skipped. Running again with the same settings
continues the latest unfinished run where it stopped (pairs are committed one by one, training
resumes from its last checkpoint); when a run with these settings finished and the user's data has
not changed since, there is nothing to do. The new model becomes active only after it loads and
answers; the previous one stays in the history and can be switched back to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import workspace
from .errors import MipoError
from .eval_report import EvalSettings
from .pairs.stage import PairSettings
from .progress import ProgressCallback, ProgressEvent, report
from .train.settings import TrainSettings

STAGES = ("import", "pairs", "train", "export", "activate", "evaluate")


@dataclass(frozen=True)
class RunSettings:
    base: Optional[str] = None           # catalog name, GGUF path or model folder; None: the chosen/bundled one
    pairs: PairSettings = PairSettings()
    train: TrainSettings = TrainSettings()
    quant: Optional[str] = None          # None: by the model's widths
    max_steps: Optional[int] = None      # stop training after this many steps (quick runs)
    evaluation: EvalSettings = EvalSettings()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSettings":
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in names})

        return cls(base=data.get("base"), pairs=build(PairSettings, data.get("pairs")),
                   train=build(TrainSettings, data.get("train")), quant=data.get("quant"),
                   max_steps=data.get("max_steps"), evaluation=build(EvalSettings, data.get("evaluation")))

    def key(self) -> str:
        return _hash(self.to_dict())


def demo_settings() -> RunSettings:
    """Settings for `run --demo`: the whole pipeline on the demo corpus in a few minutes on 2 cores."""
    return RunSettings(
        pairs=PairSettings(examples=40, heldout_pairs=8, max_new_tokens=64, heldout_fraction=0.3, context_tokens=256),
        train=TrainSettings(max_length=768),
        quant="Q8_0",
        evaluation=EvalSettings(examples=24),
    )


@dataclass
class RunResult:
    run_dir: Path
    finished: bool                        # all stages done
    stopped: bool                         # interrupted; `run` again continues
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    report: Optional[dict] = None
    model: Optional[Path] = None
    up_to_date: bool = False              # nothing changed since the last finished run


def _hash(value) -> str:
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


def _save_state(run_dir: Path, state: dict) -> None:
    workspace.write_text_atomic(run_dir / "state.json", json.dumps(state, indent=2, default=str))


def latest_finished_run() -> Optional[Path]:
    done = [p for p in list_runs() if load_state(p).get("finished")]
    return done[-1] if done else None


def store_fingerprint(store) -> str:
    """Changes whenever the user's imported writing (or their addresses) changes."""
    row = store.db.execute("SELECT count(*), coalesce(max(id), 0), coalesce(sum(length(text)), 0) FROM chunks").fetchone()
    own = store.db.execute("SELECT count(*) FROM documents WHERE author_is_user = 1").fetchone()
    return _hash([list(row), own[0]])


class _Log:
    """Progress events go to the caller and, one line each, to the run's log.txt."""

    def __init__(self, run_dir: Path, progress: Optional[ProgressCallback]) -> None:
        self.path = run_dir / "log.txt"
        self.progress = progress
        self._last: dict[str, float] = {}

    def line(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{dt.datetime.now().isoformat(timespec='seconds')} {text}\n")

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.finished or now - self._last.get(event.stage, 0.0) > 5.0:   # at most one line per 5 s per stage
            self._last[event.stage] = now
            counts = f" {event.done:g}/{event.total:g} {event.unit}" if event.done is not None and event.total else ""
            self.line(f"[{event.stage}] {event.message}{counts}")
        if self.progress is not None:
            self.progress(event)


def _pick_run(settings: RunSettings, data_fp: str, new: bool) -> tuple[Path, bool]:
    """(run folder, up_to_date)."""
    same = [p for p in list_runs() if load_state(p).get("key") == settings.key()]
    if same and not new:
        state = load_state(same[-1])
        if not state.get("finished"):
            return same[-1], False
        if state.get("data") == data_fp and (state.get("outputs") or {}).get("model") and \
                Path(state["outputs"]["model"]).is_file():
            return same[-1], True
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir() / f"run-{stamp}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir() / f"run-{stamp}-{n}"
    run_dir.mkdir(parents=True)
    _save_state(run_dir, {"key": settings.key(), "settings": settings.to_dict(), "data": data_fp,
                          "created": dt.datetime.now().isoformat(timespec="seconds"), "stages": {},
                          "outputs": {}, "finished": False})
    workspace.write_text_atomic(run_dir / "settings.json", json.dumps(settings.to_dict(), indent=2))
    return run_dir, False


class _StopFlag:
    """Ctrl-C asks the run to stop at the next safe point (only installable on the main thread)."""

    def __init__(self, extra: Optional[Callable[[], bool]]) -> None:
        self.extra = extra
        self.flag = threading.Event()
        self.previous = None

    def __call__(self) -> bool:
        return self.flag.is_set() or bool(self.extra and self.extra())

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda *_: self.flag.set())
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run_pipeline(
    sources: Sequence[Path] = (),
    settings: RunSettings = RunSettings(),
    *,
    addresses: Sequence[str] = (),
    new: bool = False,
    until: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> RunResult:
    """Run (or continue) the whole pipeline. See the module docstring. `until="pairs"` stops after
    the pairs (to review them before training); running again continues with training."""
    if until not in (None, "pairs"):
        raise MipoError(f"a run can only be stopped early after the pairs (until='pairs'), not {until!r}")
    from .catalog import resolve_base
    from .context import ContextStore, import_paths
    from .settings import load_settings, save_settings

    user = load_settings()
    if addresses:
        user = user.with_addresses(list(user.addresses) + list(addresses))
        save_settings(user)
    base = resolve_base(settings.base or user.base_model or None)   # a clear error before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    import_summary = None
    if sources:
        import_summary = import_paths(list(sources), settings=user, progress=progress)   # applies the addresses
    elif addresses:
        with ContextStore() as store:
            store.set_user_addresses(user.addresses)
    timings["import"] = time.perf_counter() - t0
    with ContextStore() as store:
        data_fp = store_fingerprint(store)
        if not store.counts()["chunks"]:
            raise MipoError("the context store holds none of your writing yet; give folders or mail files to import "
                            "(`mipo-local run ~/notes`) or try `mipo-local run --demo`")
    run_dir, up_to_date = _pick_run(settings, data_fp, new)
    state = load_state(run_dir)
    log = _Log(run_dir, progress)
    if up_to_date:
        log.line("nothing changed since this run finished; nothing to do")
        return RunResult(run_dir, True, False, skipped=list(STAGES), report=state.get("report"),
                         model=Path(state["outputs"]["model"]), up_to_date=True)
    log.line(f"run {run_dir.name}: base {base.path}")
    if import_summary is not None:
        for text in import_summary.lines():
            log.line(f"[import] {text}")
    stages = state.setdefault("stages", {})
    stages["import"] = {"status": "done", "seconds": timings["import"], "fingerprint": data_fp}
    result = RunResult(run_dir, False, False, seconds=timings)
    outputs = state.setdefault("outputs", {})

    def done(name: str, fingerprint: str, still_there: bool = True) -> bool:
        """Skip a stage that finished with these inputs and whose output is still there."""
        s = stages.get(name) or {}
        if s.get("status") == "done" and s.get("fingerprint") == fingerprint and still_there:
            result.skipped.append(name)
            report(log, name, "done before; skipped", finished=True, data={"skipped": True})
            return True
        return False

    def finish(name: str, fingerprint: str, started: float, **extra) -> None:
        seconds = time.perf_counter() - started
        timings[name] = seconds
        stages[name] = {"status": "done", "fingerprint": fingerprint, "seconds": seconds, **extra}
        _save_state(run_dir, state)
        log.line(f"[{name}] finished in {seconds:.1f} s")

    def stopped(name: str) -> RunResult:
        stages.setdefault(name, {})["status"] = "stopped"
        _save_state(run_dir, state)
        log.line(f"[{name}] stopped; `mipo-local run` again continues here")
        result.stopped = True
        return result

    with _StopFlag(should_stop) as stop:
        # pairs (the base's checkpoint and sampling copy are cached across runs)
        from .modelio import base_checkpoint
        from .modelio.bases import sampling_gguf
        from .modelio.gguf_file import cached_sha256

        started = time.perf_counter()
        sampler = sampling_gguf(base, progress=log)
        pairs_fp = _hash([settings.pairs.run_key(cached_sha256(sampler)), settings.pairs.examples,
                          settings.pairs.heldout_pairs, data_fp])
        if not done("pairs", pairs_fp):
            from .pairs import generate_pairs

            stages["pairs"] = {"status": "running", "fingerprint": pairs_fp}
            _save_state(run_dir, state)
            with ContextStore() as store:
                summary = generate_pairs(store, sampler, settings.pairs, progress=log, should_stop=stop,
                                         base_checkpoint=base_checkpoint(base, progress=log))
            if stop():
                return stopped("pairs")
            finish("pairs", pairs_fp, started, pair_run=summary.run_id, made=summary.made,
                   dropped=summary.dropped, truncated=summary.truncated, tokens_per_second=summary.tokens_per_second,
                   scoring_seconds=summary.scoring_seconds)
        pair_run = stages["pairs"]["pair_run"]
        if until == "pairs":
            _save_state(run_dir, state)
            log.line("[pairs] stopping here as asked; review the pairs, then run again to train")
            return result

        # train
        from .train.data import load_pairs_from_store
        from .train.trainer import train_lora

        with ContextStore() as store:
            records = load_pairs_from_store(store, run_id=pair_run, split="train", mirror=settings.train.mirror)
            try:
                heldout = load_pairs_from_store(store, run_id=pair_run, split="heldout")
            except MipoError:
                heldout = []
        train_dir = run_dir / "train"
        with ContextStore() as store:   # dropping a pair in review changes what is trained on
            kept = store.db.execute("SELECT group_concat(id) FROM (SELECT id FROM pairs WHERE run_id = ? AND status = 'ok' "
                                    "ORDER BY id)", (pair_run,)).fetchone()[0]
        train_fp = _hash([pairs_fp, pair_run, kept, dataclasses.asdict(settings.train), settings.max_steps,
                          str(base.path)])
        started = time.perf_counter()
        checkpoint = base_checkpoint(base, progress=log)
        if not done("train", train_fp, (train_dir / "adapter").is_dir()):
            previous = stages.get("train") or {}
            resume = previous.get("fingerprint") == train_fp and (train_dir / "train_settings.json").is_file() \
                and not (train_dir / "adapter").is_dir()
            if not resume:
                shutil.rmtree(train_dir, ignore_errors=True)
            else:
                log.line("[train] continuing from the last checkpoint")
            stages["train"] = {"status": "running", "fingerprint": train_fp}
            _save_state(run_dir, state)
            trained = train_lora(checkpoint, records, train_dir, settings.train, resume=resume, progress=log,
                                 should_stop=stop, max_steps=settings.max_steps, heldout=heldout[:32])
            if trained.stopped:
                return stopped("train")
            finish("train", train_fp, started, steps=trained.steps, metrics={
                k: v for k, v in trained.metrics.items() if k != "log_history"})
            outputs["adapter"] = str(trained.adapter_dir)

        # export
        from .train.run import export_personal

        export_fp = _hash([train_fp, settings.quant])
        started = time.perf_counter()
        if not done("export", export_fp, Path(outputs.get("model", "")).is_file()):
            stages["export"] = {"status": "running", "fingerprint": export_fp}
            _save_state(run_dir, state)
            exported = export_personal(base, checkpoint, train_dir / "adapter", run_dir, quant=settings.quant,
                                       progress=log)
            outputs.update(model=str(exported.gguf), merged=str(run_dir / "merged"), **{
                k: v for k, v in exported.as_dict().items() if k != "path"})
            finish("export", export_fp, started)
        model = Path(outputs["model"])
        result.model = model
        if stop():
            return stopped("activate")

        # activate: only a model that loads and answers; the previous one stays in the history
        from .active_model import activate, active_model

        started = time.perf_counter()
        activate_fp = _hash([export_fp, str(model)])
        if not done("activate", activate_fp, active_model() is not None):
            report(log, "activate", "checking that the new model loads and answers")
            if active_model() != model.resolve():
                activate(model)
            report(log, "activate", f"{model.name} is now your active model", finished=True)
            finish("activate", activate_fp, started)

        # evaluate
        from .eval_report import evaluate_models, heldout_examples, write_report

        eval_fp = _hash([export_fp, dataclasses.asdict(settings.evaluation)])
        started = time.perf_counter()
        if not done("evaluate", eval_fp, (run_dir / "report.json").is_file()):
            stages["evaluate"] = {"status": "running", "fingerprint": eval_fp}
            _save_state(run_dir, state)
            with ContextStore() as store:
                examples = heldout_examples(store, settings.pairs, settings.evaluation.examples,
                                            settings.evaluation.contexts)
            evaluation = evaluate_models(model, Path(outputs["merged"]), sampler, checkpoint, examples,
                                         settings.evaluation, settings.pairs, progress=log)
            evaluation["run"] = {"folder": str(run_dir), "settings": settings.to_dict(), "model": str(model),
                                 "stage_seconds": {k: v.get("seconds") for k, v in stages.items()}}
            write_report(evaluation, run_dir)
            finish("evaluate", eval_fp, started)
            log.line(f"[evaluate] {evaluation['headline']}")
        result.report = json.loads((run_dir / "report.json").read_text())

    state["finished"] = True
    state["report"] = {k: result.report.get(k) for k in ("headline", "identification", "fixed_text_mi_per_token",
                                                          "neutral_perplexity")}
    state["total_seconds"] = sum(v.get("seconds") or 0 for v in stages.values())
    _save_state(run_dir, state)
    result.finished = True
    return result


def evaluate_run(run_dir: Optional[Path] = None, settings: Optional[EvalSettings] = None, *,
                 progress: Optional[ProgressCallback] = None) -> tuple[dict, Path]:
    """Evaluate (again) a finished run's personal model against its base; writes its report.
    Returns (report, report.md path)."""
    from .catalog import resolve_base
    from .context import ContextStore
    from .eval_report import evaluate_models, heldout_examples, write_report
    from .modelio import base_checkpoint
    from .modelio.bases import sampling_gguf

    run_dir = Path(run_dir) if run_dir else latest_finished_run()
    if run_dir is None:
        raise MipoError("no finished run to evaluate; personalize first with `mipo-local run`")
    state = load_state(run_dir)
    outputs = state.get("outputs") or {}
    if not outputs.get("model") or not Path(outputs["model"]).is_file() or not Path(outputs.get("merged", "")).is_dir():
        raise MipoError(f"{run_dir} has no exported model yet; finish it with `mipo-local run`")
    run_settings = RunSettings.from_dict(state["settings"])
    settings = settings or run_settings.evaluation
    base = resolve_base(run_settings.base or None)
    sampler = sampling_gguf(base, progress=progress)
    with ContextStore() as store:
        examples = heldout_examples(store, run_settings.pairs, settings.examples, settings.contexts)
    evaluation = evaluate_models(Path(outputs["model"]), Path(outputs["merged"]), sampler,
                                 base_checkpoint(base, progress=progress), examples, settings, run_settings.pairs,
                                 progress=progress)
    evaluation["run"] = {"folder": str(run_dir), "settings": state["settings"], "model": outputs["model"],
                         "stage_seconds": {k: v.get("seconds") for k, v in state.get("stages", {}).items()}}
    _, md = write_report(evaluation, run_dir)
    return evaluation, md
