"""`mipo-local run`: import → pairs → train → export → activate → evaluate, as one resumable run.

Each run has a folder under the workspace's `runs/` with its settings, a log, its stage state, the
personal model and the report (`pipeline.runs`). A stage records a fingerprint of its inputs and
settings when it finishes; a stage whose fingerprint is unchanged and whose output is there is
skipped (`pipeline.stages`). Running again with the same settings continues the latest unfinished
run where it stopped (pairs are committed one by one, training resumes from its last checkpoint);
when a run with these settings finished and the user's data has not changed since, there is nothing
to do. The new model becomes active only after it loads and answers; the previous one stays in the
history and can be switched back to. Ctrl-C and the app's Cancel stop at the next safe point (`stop`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..stop import as_stop_flag
from .incremental import Basis, find_basis, new_documents
from .runs import RunLog, data_fingerprint, digest, find_run, latest_finished_run, load_state, new_run, save_state
from .settings import RunSettings
from .stages import STEPS, RunContext, Step, evaluate_personal, read_report

STAGES = ("import",) + tuple(name for name, _ in STEPS)


@dataclass
class RunResult:
    run_dir: Path
    finished: bool                        # all stages asked for are done
    stopped: bool                         # interrupted; running again continues
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    report: Optional[dict] = None
    model: Optional[Path] = None
    up_to_date: bool = False              # nothing changed since the last finished run
    outputs: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)   # each stage's state (status, seconds, what it made)
    mode: str = "full"                    # "incremental": continued the active model on what is new
    mode_reason: str = ""                 # why this mode, one line
    nothing_new: bool = False             # the active model's run already saw all of the user's writing


def run_pipeline(
    sources: Sequence[Path] = (),
    settings: RunSettings = RunSettings(),
    *,
    addresses: Sequence[str] = (),
    new: bool = False,
    until: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    pairs_run: Optional[int] = None,
    continue_only: bool = False,
    accelerate_config: Optional[Path] = None,
    from_scratch: bool = False,
    profile: Optional[str] = None,
) -> RunResult:
    """Run (or continue) the whole pipeline. See the module docstring.

    `until` ends the run after that stage: "pairs" to review them before training (running again
    without it continues with training); "activate" or "train" for the `train` command.
    `pairs_run` trains on pairs made before (by `mipo-local pairs`) instead of making them.
    `should_stop` (a `stop.StopFlag` or any callable) is polled at safe points; Ctrl-C sets it too.
    `continue_only` refuses to start a new run when no unfinished one with these settings exists.
    A new run is incremental (`pipeline.incremental`) when the active model comes from a run with
    compatible settings and the data changed since; `from_scratch` makes it a full one.
    `profile` (`mipo_local.chat.profiles`): examples only from its sources, its own runs, and the model
    becomes its active model; None is the default profile (every source)."""
    _check_arguments(settings, until, accelerate_config)
    inputs = _gather_inputs(sources, settings, addresses, profile, progress)
    plan = _plan_run(inputs, settings, new=new, until=until, pairs_run=pairs_run, continue_only=continue_only,
                     from_scratch=from_scratch)
    if plan.nothing_new:
        return _nothing_new(plan.basis, plan.nothing_new)
    run_dir = plan.found or new_run(plan.key, settings.to_dict(), inputs.data_fp)
    state = load_state(run_dir)
    log = RunLog(run_dir, progress)
    if plan.up_to_date:
        return _up_to_date(state, log)
    ctx = _open_run(run_dir, state, log, plan, inputs, settings, pairs_run=pairs_run,
                    accelerate_config=accelerate_config, should_stop=should_stop)
    return _StageRunner(ctx, inputs.timings, until).run()


# --- preparing a run: its arguments, base, profile, settings and the user's writing


@dataclass
class _Inputs:
    """What a run works from, known before its folder is chosen."""
    profile: Optional[str]                # normalized; None is the default profile
    scope: object                         # the profile's sources (`chat.profiles.profile_sources`)
    base: object                          # catalog.Base
    data_fp: str                          # the user's writing in scope (`runs.data_fingerprint`)
    import_summary: object                # what importing `sources` did, or None
    timings: dict[str, float]             # seconds per stage; the run's result shares it


def _check_arguments(settings: RunSettings, until: Optional[str], accelerate_config: Optional[Path]) -> None:
    """Clear errors for bad arguments before any work."""
    from ..options import check_choices

    for part in (settings, settings.pairs, settings.train, settings.evaluation):   # the app's forms too
        check_choices(part)
    stage_names = STAGES[1:]
    if until is not None and until not in stage_names:
        raise MipoError(f"a run can end after one of {', '.join(stage_names)}, not {until!r}")
    if accelerate_config is not None:    # `accelerate_config`: the training stage under `accelerate launch`
        from ..train.distributed import check_config

        check_config(accelerate_config)


def _gather_inputs(sources: Sequence[Path], settings: RunSettings, addresses: Sequence[str],
                   profile: Optional[str], progress: Optional[ProgressCallback]) -> _Inputs:
    """The profile and its sources, the user's settings (with new addresses), the base, then the
    import stage (always run: it only adds what is new) and the fingerprint of the writing in scope."""
    from ..chat.profile_names import normalize
    from ..chat.profiles import profile_sources
    from ..context import ContextStore, import_paths
    from ..modelio.catalog import resolve_base
    from ..settings import load_settings, save_settings

    profile = normalize(profile)
    scope = profile_sources(profile)          # a clear error for an unknown profile before any work

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
    return _Inputs(profile, scope, base, _writing_fingerprint(scope, profile), import_summary, timings)


def _writing_fingerprint(scope, profile: Optional[str]) -> str:
    """The fingerprint of the user's writing in scope; an error when there is none."""
    from ..context import ContextStore

    with ContextStore(sources=scope) as store:
        data_fp = data_fingerprint(store)
        if not store.counts()["chunks"]:
            if profile:
                raise MipoError(f"profile {profile!r}'s sources hold none of your writing; import them again "
                                "(`mipo-local import PATH`)")
            raise MipoError("the context store holds none of your writing yet; give folders or mail files to import "
                            "(`mipo-local run ~/notes`) or try `mipo-local run --demo`")
    return data_fp


# --- deciding which run to continue or start, and in which mode


@dataclass
class _Plan:
    """Which run this call continues or starts, and whether it is incremental."""
    key: str                              # the run's settings key (`runs.find_run`)
    found: Optional[Path]                 # a run with this key to continue (or, up to date, to return)
    up_to_date: bool                      # `found` finished and the data has not changed since
    basis: Optional[Basis] = None         # a new incremental run: the run whose model it continues
    mode_reason: str = ""
    nothing_new: str = ""                 # why there is nothing to do: the active model saw all the writing


def _plan_run(inputs: _Inputs, settings: RunSettings, *, new: bool, until: Optional[str],
              pairs_run: Optional[int], continue_only: bool, from_scratch: bool) -> _Plan:
    """The run with these settings to continue, else a new one: full, or incremental on the active model."""
    plain = pairs_run is None and until in (None, "pairs")      # not the `train` command's runs
    key = settings.key() if plain else digest([settings.key(), "pairs", pairs_run, "until", until])
    if inputs.profile:
        key = digest([key, "profile", inputs.profile])
    found, up_to_date = find_run(key, inputs.data_fp, new, continue_only=continue_only)
    if from_scratch and found is not None and (up_to_date or load_state(found).get("mode") == "incremental"):
        found, up_to_date = None, False          # a full run asked for: neither this model nor this run will do
    plan = _Plan(key, found, up_to_date, mode_reason="--from-scratch asked for a full run" if from_scratch else "")
    if found is None and plain and not from_scratch:
        _choose_basis(plan, inputs, settings, new)
    return plan


def _choose_basis(plan: _Plan, inputs: _Inputs, settings: RunSettings, new: bool) -> None:
    """A new run continues the active model (`pipeline.incremental`) when its run's settings are
    compatible and there is new or changed writing; with none, there is nothing to do unless `new`."""
    from ..context import ContextStore

    plan.basis, plan.mode_reason = find_basis(settings, str(inputs.base.path), profile=inputs.profile)
    if plan.basis is None:
        return
    with ContextStore(sources=inputs.scope) as store:
        fresh = new_documents(store, plan.basis.run_dir)
    if not fresh and not new:
        plan.nothing_new = f"nothing new or changed since {plan.basis.run_dir.name}; its model stays active"
    elif not fresh:
        plan.basis, plan.mode_reason = None, "nothing new since the active model's run; --new asked for a full run"


# --- opening the run folder


def _up_to_date(state: dict, log: RunLog) -> RunResult:
    """The result of a run that finished with these settings, the data unchanged since."""
    log.line("nothing changed since this run finished; nothing to do")
    model = Path(state["outputs"]["model"])
    return RunResult(model.parent, True, False, skipped=list(STAGES), report=read_report(model.parent),
                     model=model, up_to_date=True, outputs=state["outputs"], stages=state.get("stages", {}),
                     mode=state.get("mode", "full"), nothing_new=bool(state.get("nothing_new")))


def _settle_mode(run_dir: Path, state: dict, plan: _Plan) -> Optional[Basis]:
    """A new run records its mode (and the run whose model it continues); a continued one reads them back."""
    basis = plan.basis
    if plan.found is None:
        state["mode"], state["mode_reason"] = ("incremental" if basis else "full"), plan.mode_reason
        if basis is not None:
            state["incremental"] = basis.to_dict()
        save_state(run_dir, state)
    elif state.get("incremental"):
        basis = Basis.from_dict(state["incremental"])
    return basis


def _open_run(run_dir: Path, state: dict, log: RunLog, plan: _Plan, inputs: _Inputs, settings: RunSettings, *,
              pairs_run: Optional[int], accelerate_config: Optional[Path],
              should_stop: Optional[Callable[[], bool]]) -> RunContext:
    """The run's mode settled and announced, and the context its stages share, import done."""
    basis = _settle_mode(run_dir, state, plan)
    mode, mode_reason = state.get("mode", "full"), state.get("mode_reason", "")
    log.line(f"run {run_dir.name}: base {inputs.base.path}")
    report(log, "run", f"{mode} run: {mode_reason}" if mode_reason else f"{mode} run", data={"mode": mode})
    if inputs.import_summary is not None:
        for text in inputs.import_summary.lines():
            log.line(f"[import] {text}")
    state["base"] = str(inputs.base.path)
    if inputs.profile:
        state["profile"] = inputs.profile                 # the stages read them (pipeline.stages)
        state["sources"] = list(inputs.scope)
    ctx = RunContext(settings, inputs.base, run_dir, state, log, as_stop_flag(should_stop), inputs.data_fp,
                     adopt_pairs=pairs_run, accelerate_config=accelerate_config,
                     basis=basis, before={k: dict(v) for k, v in (state.get("stages") or {}).items()})
    ctx.stages["import"] = {"status": "done", "seconds": inputs.timings["import"], "fingerprint": inputs.data_fp}
    return ctx


# --- running the stages


def _reusable(previous: dict, step: Step) -> bool:
    """A stage done before is skipped when its fingerprint is unchanged and its output is still there."""
    return previous.get("status") == "done" and previous.get("fingerprint") == step.fingerprint and step.present


class _StageRunner:
    """Runs the stages in order on a run's context, saving its state around each, until the stages
    asked for are done, the user stops (running again continues there), or there is nothing to learn."""

    def __init__(self, ctx: RunContext, timings: dict[str, float], until: Optional[str]):
        self.ctx, self.until = ctx, until
        self.result = RunResult(ctx.run_dir, False, False, seconds=timings, outputs=ctx.outputs, stages=ctx.stages,
                                mode=ctx.state.get("mode", "full"), mode_reason=ctx.state.get("mode_reason", ""))

    def run(self) -> RunResult:
        with self.ctx.stop.on_sigint():
            ended = self._run_stages()
        return ended if ended is not None else self._finish()

    def _run_stages(self) -> Optional[RunResult]:
        """None when the stages asked for are done; the result when the run ends before."""
        ctx, result = self.ctx, self.result
        for n, (name, plan) in enumerate(STEPS):
            if not self._run_stage(name, plan):
                return self._stopped(name)
            if ctx.outputs.get("model"):
                result.model = Path(ctx.outputs["model"])
            if name == "pairs" and ctx.basis is not None and not ctx.stages["pairs"].get("new_train_pairs"):
                return _no_new_pairs(ctx, result)
            if name == "pairs" and self.until == "pairs":
                ctx.log.line("[pairs] stopping here as asked; review the pairs, then run again to train")
                return result
            if name == self.until:
                return None
            if ctx.stop() and n + 1 < len(STEPS):
                return self._stopped(STEPS[n + 1][0])
        return None

    def _run_stage(self, name: str, plan: Callable[[RunContext], Step]) -> bool:
        """Skips the stage when it can be reused, else runs it; False when it was stopped."""
        ctx = self.ctx
        started = time.perf_counter()
        step = plan(ctx)
        if _reusable(ctx.stages.get(name) or {}, step):
            self.result.skipped.append(name)
            report(ctx.log, name, "done before; skipped", finished=True, data={"skipped": True})
            return True
        ctx.stages[name] = {"status": "running", "fingerprint": step.fingerprint}
        save_state(ctx.run_dir, ctx.state)
        outcome = step.execute()
        if outcome.stopped:
            return False
        ctx.outputs.update(outcome.outputs)
        seconds = time.perf_counter() - started
        self.result.seconds[name] = seconds
        ctx.stages[name] = {"status": "done", "fingerprint": step.fingerprint, "seconds": seconds, **outcome.info}
        save_state(ctx.run_dir, ctx.state)
        ctx.log.line(f"[{name}] finished in {seconds:.1f} s")
        return True

    def _stopped(self, name: str) -> RunResult:
        self.ctx.stages.setdefault(name, {})["status"] = "stopped"
        save_state(self.ctx.run_dir, self.ctx.state)
        self.ctx.log.line(f"[{name}] stopped; running again continues here")
        self.result.stopped = True
        return self.result

    def _finish(self) -> RunResult:
        """The run is finished: its report and totals go into its state."""
        result, state = self.result, self.ctx.state
        result.report = read_report(self.ctx.run_dir)
        state["finished"] = True
        state["until"] = self.until
        if result.report:
            state["report"] = {k: result.report.get(k) for k in ("headline", "writing", "identification",
                                                                  "fixed_text_mi_per_token", "neutral_perplexity")}
        state["total_seconds"] = sum(v.get("seconds") or 0 for v in self.ctx.stages.values())
        save_state(self.ctx.run_dir, state)
        result.finished = True
        return result


def _nothing_new(basis: Basis, text: str) -> RunResult:
    """The result of a run that found nothing to learn from: the active model's run, unchanged."""
    state = load_state(basis.run_dir)
    return RunResult(basis.run_dir, True, False, skipped=list(STAGES), report=read_report(basis.run_dir),
                     model=basis.model, up_to_date=True, outputs=state.get("outputs") or {},
                     stages=state.get("stages", {}), mode="incremental", mode_reason=text, nothing_new=True)


def _no_new_pairs(ctx: RunContext, result: RunResult) -> RunResult:
    """New documents, but no new training pair came of them: the run ends, the active model stays.
    The run is kept as finished with the active model as its own, so the same data is up to date."""
    info = ctx.stages["pairs"]
    text = (f"{info.get('new_documents', 0)} new or changed documents gave no new training pairs "
            f"({info.get('new_examples', 0)} new examples); {ctx.basis.model.name} stays active")
    ctx.log.line(f"[pairs] {text}")
    ctx.outputs["model"] = str(ctx.basis.model)
    ctx.state.update(finished=True, nothing_new=True)
    save_state(ctx.run_dir, ctx.state)
    done = _nothing_new(ctx.basis, text)
    done.seconds, done.skipped = result.seconds, [s for s in STAGES if s not in ("import", "pairs")]
    return done


def evaluate_run(run_dir: Optional[Path] = None, settings=None, *, progress: Optional[ProgressCallback] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> tuple[Optional[dict], Optional[Path]]:
    """Evaluate (again) a finished run's personal model against its base; writes its report.
    Returns (report, report.md path), or (None, None) when stopped."""
    run_dir = Path(run_dir) if run_dir else latest_finished_run()
    if run_dir is None:
        raise MipoError("no finished run to evaluate; personalize first with `mipo-local run`")
    state = load_state(run_dir)
    settings = settings or RunSettings.from_dict(state["settings"]).evaluation
    previous = Basis.from_dict(state["incremental"]) if state.get("incremental") else None
    return evaluate_personal(run_dir, state, settings, progress=progress, should_stop=should_stop, previous=previous)
