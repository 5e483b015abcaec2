"""The stages of a run, one function each: given the run so far, the stage's fingerprint (its inputs
and settings), whether its output is still there, and how to make it. The orchestrator
(`pipeline.run`) skips a stage whose fingerprint is unchanged and whose output is there."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..stop import StopFlag
from .incremental import Basis, new_documents, replay_split, write_snapshot
from .runs import RunLog, digest
from .settings import RunSettings


@dataclass
class StageOutcome:
    stopped: bool = False                                 # asked to stop: running again continues
    info: dict = field(default_factory=dict)              # kept in the stage's state
    outputs: dict = field(default_factory=dict)           # merged into the run's outputs


@dataclass
class Step:
    fingerprint: str
    present: bool                                         # the stage's output is still there
    execute: Callable[[], StageOutcome]


@dataclass
class RunContext:
    settings: RunSettings
    base: object                                          # catalog.Base
    run_dir: Path
    state: dict
    log: RunLog
    stop: StopFlag
    data_fp: str
    adopt_pairs: Optional[int] = None                     # train on this pair run instead of making pairs
    accelerate_config: Optional[Path] = None              # train under `accelerate launch` (train.distributed)
    basis: Optional[Basis] = None                         # an incremental run: the run whose model it continues
    before: dict = field(default_factory=dict)            # each stage's state when this call began
    _cache: dict = field(default_factory=dict)

    @property
    def stages(self) -> dict:
        return self.state.setdefault("stages", {})

    @property
    def outputs(self) -> dict:
        return self.state.setdefault("outputs", {})

    def sampler(self) -> Path:
        """The GGUF pairs and answers are sampled from (cached across runs)."""
        if "sampler" not in self._cache:
            from ..modelio.bases import sampling_gguf

            self._cache["sampler"] = sampling_gguf(self.base, progress=self.log)
        return self._cache["sampler"]

    def checkpoint(self) -> Path:
        """The base as a trainable checkpoint (cached across runs)."""
        if "checkpoint" not in self._cache:
            from ..modelio import base_checkpoint

            self._cache["checkpoint"] = base_checkpoint(self.base, progress=self.log)
        return self._cache["checkpoint"]

    def fingerprint_of(self, stage: str) -> str:
        return (self.stages.get(stage) or {}).get("fingerprint", "")


def pairs_step(ctx: RunContext) -> Step:
    """MIPO pairs from the user's writing, committed one by one (or, for `train`, pairs made before)."""
    from ..context import ContextStore

    if ctx.adopt_pairs is not None:
        with ContextStore() as store:
            made = len(store.kept_pair_ids(ctx.adopt_pairs))
        return Step(digest(["adopted", ctx.adopt_pairs]), True,
                    lambda: StageOutcome(info={"pair_run": ctx.adopt_pairs, "made": made, "adopted": True}))
    from ..modelio.gguf_file import cached_sha256

    p = ctx.settings.pairs
    basis = ctx.basis
    fingerprint = digest([p.run_key(cached_sha256(ctx.sampler())), p.examples, p.heldout_pairs, ctx.data_fp]
                         + (["incremental", str(basis.run_dir)] if basis else []))

    def execute() -> StageOutcome:
        from ..pairs import generate_pairs

        with ContextStore(sources=ctx.state.get("sources")) as store:     # a profile's sources only
            write_snapshot(store, ctx.run_dir)      # what this run learns from; the next one's "new" is after it
            select, info = None, {}
            if basis is not None:
                new_docs = new_documents(store, basis.run_dir)
                select = lambda e: not new_docs.isdisjoint(e.documents)  # noqa: E731
                info["new_documents"] = len(new_docs)
                report(ctx.log, "pairs", f"{len(new_docs)} new or changed documents since {basis.run_dir.name}; "
                       "pairs only for the examples made from them")
            summary = generate_pairs(store, ctx.sampler(), p, progress=ctx.log, should_stop=ctx.stop,
                                     base_checkpoint=ctx.checkpoint(), select=select)
            if basis is not None and not summary.stopped:
                from ..workspace import write_text_atomic

                write_text_atomic(ctx.run_dir / "new_examples.json", json.dumps(summary.example_ids))
                new = set(summary.example_ids)
                info["new_examples"] = len(new)
                info["new_train_pairs"] = sum(r["example_id"] in new for r in
                                              store.pairs(summary.run_id, split="train", include_dropped=False))
        if summary.stopped:
            return StageOutcome(stopped=True)
        return StageOutcome(info={"pair_run": summary.run_id, "made": summary.made, "dropped": summary.dropped,
                                  "truncated": summary.truncated, "tokens_per_second": summary.tokens_per_second,
                                  "scoring_seconds": summary.scoring_seconds, **info})

    return Step(fingerprint, True, execute)


def _trainer(ctx: RunContext) -> Callable:
    """`train_lora`, in this process or, with an Accelerate config, under `accelerate launch` (several
    GPUs or machines); the same arguments and result either way."""
    from ..train.trainer import train_lora

    if ctx.accelerate_config is None:
        return train_lora
    import functools

    from ..train.distributed import launch_training

    return functools.partial(launch_training, ctx.accelerate_config)


def train_step(ctx: RunContext) -> Step:
    """LoRA DPO on the run's kept pairs; resumes from its last checkpoint after a stop."""
    from ..context import ContextStore

    pair_run = ctx.stages["pairs"]["pair_run"]
    s = ctx.settings
    chosen = None                      # an incremental run's: its new pairs and the replayed ones
    with ContextStore() as store:      # dropping a pair in review changes what is trained on
        kept = ",".join(str(i) for i in store.kept_pair_ids(pair_run)) or None
        if ctx.basis is not None:
            new_examples = set(json.loads((ctx.run_dir / "new_examples.json").read_text()))
            new, replay = replay_split(store.pairs(pair_run, split="train", include_dropped=False), new_examples,
                                       s.train.replay_fraction, s.train.seed)
            chosen = set(new) | set(replay)
            kept = [new, replay, str(ctx.basis.adapter)]
    fingerprint = digest([ctx.fingerprint_of("pairs"), pair_run, kept, dataclasses.asdict(s.train), s.max_steps,
                          str(ctx.base.path)])
    train_dir = ctx.run_dir / "train"

    def execute() -> StageOutcome:
        from ..train.data import load_pairs_from_store

        with ContextStore() as store:
            records = load_pairs_from_store(store, run_id=pair_run, split="train", mirror=s.train.mirror,
                                            pair_ids=chosen)
            try:
                heldout = load_pairs_from_store(store, run_id=pair_run, split="heldout")
            except MipoError:
                heldout = []
        previous = ctx.before.get("train") or {}
        resume = previous.get("fingerprint") == fingerprint and previous.get("status") in ("running", "stopped") \
            and (train_dir / "train_settings.json").is_file() and not (train_dir / "adapter").is_dir()
        if resume:
            ctx.log.line("[train] continuing from the last checkpoint")
        else:
            shutil.rmtree(train_dir, ignore_errors=True)
        if ctx.basis is not None:
            ctx.log.line(f"[train] continuing {ctx.basis.run_dir.name}'s adapter on {len(new)} new pairs and "
                         f"{len(replay)} replayed earlier ones")
        trained = _trainer(ctx)(ctx.checkpoint(), records, train_dir, s.train, resume=resume, progress=ctx.log,
                             should_stop=ctx.stop, max_steps=s.max_steps, heldout=heldout[:32],
                             init_adapter=ctx.basis.adapter if ctx.basis else None)
        if trained.stopped:
            return StageOutcome(stopped=True)
        extra = {"new_pairs": len(new), "replayed_pairs": len(replay)} if ctx.basis is not None else {}
        return StageOutcome(info={**extra, "steps": trained.steps,
                                  "metrics": {k: v for k, v in trained.metrics.items() if k != "log_history"}},
                            outputs={"adapter": str(trained.adapter_dir)})

    return Step(fingerprint, (train_dir / "adapter").is_dir(), execute)


def export_step(ctx: RunContext) -> Step:
    """The adapter merged and converted: the quantized personal GGUF, checked against the merged model."""
    fingerprint = digest([ctx.fingerprint_of("train"), ctx.settings.quant])

    def execute() -> StageOutcome:
        from ..train.export import export_personal

        exported = export_personal(ctx.base, ctx.checkpoint(), ctx.run_dir / "train" / "adapter", ctx.run_dir,
                                   quant=ctx.settings.quant, progress=ctx.log)
        return StageOutcome(outputs={"model": str(exported.gguf), "merged": str(ctx.run_dir / "merged"),
                                     **{k: v for k, v in exported.as_dict().items() if k != "path"}})

    return Step(fingerprint, Path(ctx.outputs.get("model", "")).is_file(), execute)


def activate_step(ctx: RunContext) -> Step:
    """The new model becomes the active one only once it loads and answers; the previous one stays
    in the history."""
    from ..chat.active_model import activate, active_model

    model = Path(ctx.outputs["model"])
    profile = ctx.state.get("profile")       # a profile's run: its active model (None: the default's)

    def execute() -> StageOutcome:
        report(ctx.log, "activate", "checking that the new model loads and answers")
        if active_model(profile) != model.resolve():
            activate(model, profile=profile)
        mine = f"profile {profile}'s" if profile else "your"
        report(ctx.log, "activate", f"{model.name} is now {mine} active model", finished=True)
        return StageOutcome()

    return Step(digest([ctx.fingerprint_of("export"), str(model)]), active_model(profile) is not None, execute)


def evaluate_step(ctx: RunContext) -> Step:
    """Personal vs base on the held-out examples: report.json and report.md in the run folder."""
    evaluation = ctx.settings.evaluation
    fingerprint = digest([ctx.fingerprint_of("export"), dataclasses.asdict(evaluation),
                          str(ctx.basis.run_dir) if ctx.basis else None])

    def execute() -> StageOutcome:
        result, _ = evaluate_personal(ctx.run_dir, ctx.state, evaluation, progress=ctx.log, should_stop=ctx.stop,
                                      previous=ctx.basis)
        if result is None:
            return StageOutcome(stopped=True)
        ctx.log.line(f"[evaluate] {result['headline']}")
        return StageOutcome()

    return Step(fingerprint, (ctx.run_dir / "report.json").is_file(), execute)


# the run's stages in order, each with the function that plans it ("import" happens before a run is picked)
STEPS: tuple[tuple[str, Callable[[RunContext], Step]], ...] = (
    ("pairs", pairs_step), ("train", train_step), ("export", export_step), ("activate", activate_step),
    ("evaluate", evaluate_step))


def evaluate_personal(run_dir: Path, state: dict, settings, *, progress: Optional[ProgressCallback] = None,
                      should_stop: Optional[Callable[[], bool]] = None,
                      previous: Optional[Basis] = None) -> tuple[Optional[dict], Optional[Path]]:
    """The one evaluation entry: a run's personal model (its outputs in `state`) against its base,
    and against the `previous` model (an incremental run's) when it is still there, written as the
    run's report. Returns (report, report.md path), or (None, None) when stopped."""
    from ..context import ContextStore
    from ..evaluation.own_writing import writing_documents
    from ..evaluation.report import write_report
    from ..evaluation.stage import evaluate_models, heldout_examples
    from ..modelio import base_checkpoint
    from ..modelio.bases import sampling_gguf
    from ..modelio.catalog import resolve_base

    outputs = state.get("outputs") or {}
    if not outputs.get("model") or not Path(outputs["model"]).is_file() or not Path(outputs.get("merged", "")).is_dir():
        raise MipoError(f"{run_dir} has no exported model yet; finish it with `mipo-local run`")
    run_settings = RunSettings.from_dict(state["settings"])
    base = resolve_base(state.get("base") or run_settings.base or None)   # the base the run trained from
    sampler = sampling_gguf(base, progress=progress)
    with ContextStore(sources=state.get("sources")) as store:     # a profile's run: its sources' examples
        examples = heldout_examples(store, run_settings.pairs, settings.examples, settings.contexts)
        writing = writing_documents(store, run_settings.pairs, settings.writing, settings.writing_tokens)
    result = evaluate_models(Path(outputs["model"]), Path(outputs["merged"]), sampler,
                             base_checkpoint(base, progress=progress), examples, settings, run_settings.pairs,
                             progress=progress, should_stop=should_stop, previous=_previous_model(previous),
                             writing=writing)
    if result is None:
        return None, None
    result["run"] = {"folder": str(run_dir), "settings": state["settings"], "model": outputs["model"],
                     "stage_seconds": {k: v.get("seconds") for k, v in (state.get("stages") or {}).items()}}
    _, md = write_report(result, Path(run_dir))
    return result, md


def _previous_model(previous: Optional[Basis]) -> Optional[tuple[Path, Path]]:
    """(GGUF, merged checkpoint) of the model an incremental run continued, while both are there."""
    if previous is None or not previous.model.is_file() or not previous.merged.is_dir():
        return None
    return previous.model, previous.merged


def read_report(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None
