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
from .stages import STEPS, RunContext, evaluate_personal, read_report

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
    `profile` (`mipo_local.profiles`): examples only from its sources, its own runs, and the model
    becomes its active model; None is the default profile (every source)."""
    from ..options import check_choices

    for part in (settings, settings.pairs, settings.train, settings.evaluation):   # the app's forms too
        check_choices(part)
    stage_names = STAGES[1:]
    if until is not None and until not in stage_names:
        raise MipoError(f"a run can end after one of {', '.join(stage_names)}, not {until!r}")
    if accelerate_config is not None:    # `accelerate_config`: the training stage under `accelerate launch`
        from ..train.distributed import check_config

        check_config(accelerate_config)
    from ..catalog import resolve_base
    from ..context import ContextStore, import_paths
    from ..profiles import normalize, profile_sources
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
    with ContextStore(sources=scope) as store:
        data_fp = data_fingerprint(store)
        if not store.counts()["chunks"]:
            if profile:
                raise MipoError(f"profile {profile!r}'s sources hold none of your writing; import them again "
                                "(`mipo-local import PATH`)")
            raise MipoError("the context store holds none of your writing yet; give folders or mail files to import "
                            "(`mipo-local run ~/notes`) or try `mipo-local run --demo`")
    key = settings.key() if pairs_run is None and until in (None, "pairs") else \
        digest([settings.key(), "pairs", pairs_run, "until", until])
    if profile:
        key = digest([key, "profile", profile])
    plain = pairs_run is None and until in (None, "pairs")      # not the `train` command's runs
    found, up_to_date = find_run(key, data_fp, new, continue_only=continue_only)
    if from_scratch and found is not None and (up_to_date or load_state(found).get("mode") == "incremental"):
        found, up_to_date = None, False          # a full run asked for: neither this model nor this run will do
    basis, mode_reason = None, "--from-scratch asked for a full run" if from_scratch else ""
    if found is None and plain and not from_scratch:
        basis, mode_reason = find_basis(settings, str(base.path), profile=profile)
        if basis is not None:
            with ContextStore(sources=scope) as store:
                fresh = new_documents(store, basis.run_dir)
            if not fresh and not new:
                return _nothing_new(basis, f"nothing new or changed since {basis.run_dir.name}; its model stays active")
            if not fresh:
                basis, mode_reason = None, "nothing new since the active model's run; --new asked for a full run"
    run_dir = found or new_run(key, settings.to_dict(), data_fp)
    state = load_state(run_dir)
    log = RunLog(run_dir, progress)
    if up_to_date:
        log.line("nothing changed since this run finished; nothing to do")
        model = Path(state["outputs"]["model"])
        return RunResult(model.parent, True, False, skipped=list(STAGES), report=read_report(model.parent),
                         model=model, up_to_date=True, outputs=state["outputs"], stages=state.get("stages", {}),
                         mode=state.get("mode", "full"), nothing_new=bool(state.get("nothing_new")))
    if found is None:
        state["mode"], state["mode_reason"] = ("incremental" if basis else "full"), mode_reason
        if basis is not None:
            state["incremental"] = basis.to_dict()
        save_state(run_dir, state)
    elif state.get("incremental"):
        basis = Basis.from_dict(state["incremental"])
    mode, mode_reason = state.get("mode", "full"), state.get("mode_reason", "")
    log.line(f"run {run_dir.name}: base {base.path}")
    report(log, "run", f"{mode} run: {mode_reason}" if mode_reason else f"{mode} run", data={"mode": mode})
    if import_summary is not None:
        for text in import_summary.lines():
            log.line(f"[import] {text}")
    state["base"] = str(base.path)
    if profile:
        state["profile"], state["sources"] = profile, list(scope)    # the stages read them (pipeline.stages)
    ctx = RunContext(settings, base, run_dir, state, log, as_stop_flag(should_stop), data_fp, adopt_pairs=pairs_run,
                     accelerate_config=accelerate_config,
                     basis=basis, before={k: dict(v) for k, v in (state.get("stages") or {}).items()})
    ctx.stages["import"] = {"status": "done", "seconds": timings["import"], "fingerprint": data_fp}
    result = RunResult(run_dir, False, False, seconds=timings, outputs=ctx.outputs, stages=ctx.stages, mode=mode,
                       mode_reason=mode_reason)

    def stopped(name: str) -> RunResult:
        ctx.stages.setdefault(name, {})["status"] = "stopped"
        save_state(run_dir, state)
        log.line(f"[{name}] stopped; running again continues here")
        result.stopped = True
        return result

    with ctx.stop.on_sigint():
        for n, (name, plan) in enumerate(STEPS):
            started = time.perf_counter()
            step = plan(ctx)
            previous = ctx.stages.get(name) or {}
            if previous.get("status") == "done" and previous.get("fingerprint") == step.fingerprint and step.present:
                result.skipped.append(name)
                report(log, name, "done before; skipped", finished=True, data={"skipped": True})
            else:
                ctx.stages[name] = {"status": "running", "fingerprint": step.fingerprint}
                save_state(run_dir, state)
                outcome = step.execute()
                if outcome.stopped:
                    return stopped(name)
                ctx.outputs.update(outcome.outputs)
                seconds = time.perf_counter() - started
                timings[name] = seconds
                ctx.stages[name] = {"status": "done", "fingerprint": step.fingerprint, "seconds": seconds, **outcome.info}
                save_state(run_dir, state)
                log.line(f"[{name}] finished in {seconds:.1f} s")
            if ctx.outputs.get("model"):
                result.model = Path(ctx.outputs["model"])
            if name == "pairs" and basis is not None and not ctx.stages["pairs"].get("new_train_pairs"):
                return _no_new_pairs(ctx, result)
            if name == "pairs" and until == "pairs":
                log.line("[pairs] stopping here as asked; review the pairs, then run again to train")
                return result
            if name == until:
                break
            if ctx.stop() and n + 1 < len(STEPS):
                return stopped(STEPS[n + 1][0])

    result.report = read_report(run_dir)
    state["finished"] = True
    state["until"] = until
    if result.report:
        state["report"] = {k: result.report.get(k) for k in ("headline", "writing", "identification",
                                                              "fixed_text_mi_per_token", "neutral_perplexity")}
    state["total_seconds"] = sum(v.get("seconds") or 0 for v in ctx.stages.values())
    save_state(run_dir, state)
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
