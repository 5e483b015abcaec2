"""`run`: the whole pipeline on the demo corpus with tiny settings, on the real stack — interrupted in
training, continued, evaluated, activated, chatted with; then a failed export keeps the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mipo_local.chat.active_model import active_model
from mipo_local.chat.session import ChatSession
from mipo_local.demo import DEMO_ADDRESSES, demo_sources
from mipo_local.errors import MipoError
from mipo_local.evaluation.settings import EvalSettings
from mipo_local.pairs import PairSettings
from mipo_local.pipeline import RunSettings, load_state, run_pipeline
from mipo_local.train import TrainSettings

from .helpers import assert_one_line_error, run_cli

TINY = RunSettings(
    pairs=PairSettings(examples=10, heldout_pairs=3, max_new_tokens=24, heldout_fraction=0.3, n_parallel=8, candidates=1,
                       context_tokens=128),
    train=TrainSettings(batch_size=2, max_length=512, checkpoint_every=1),
    quant="Q8_0", max_steps=3,
    evaluation=EvalSettings(examples=2, answers=1, contexts=2, writing=3),
)


def test_run_resumes_after_an_interruption_and_leaves_a_model_that_answers(mipo_home, sampling_model, smol_checkpoint):
    events = []

    def stop_after_first_step() -> bool:   # asked after step 1 is logged: training stops at the end of step 2
        return any(e.stage == "train" and e.unit == "steps" and (e.done or 0) >= 1 for e in events)

    first = run_pipeline(demo_sources(), TINY, addresses=DEMO_ADDRESSES, progress=events.append,
                         should_stop=stop_after_first_step)
    assert first.stopped and not first.finished
    state = load_state(first.run_dir)
    assert state["stages"]["pairs"]["status"] == "done" and state["stages"]["train"]["status"] == "stopped"
    assert active_model() is None

    events.clear()
    second = run_pipeline((), TINY, progress=events.append)
    assert second.run_dir == first.run_dir and second.finished and not second.stopped
    assert "pairs" in second.skipped and "train" not in second.skipped
    assert "continuing from the last checkpoint" in (first.run_dir / "log.txt").read_text()
    assert not any(e.stage == "pairs" and not e.data.get("skipped") for e in events)   # nothing sampled again
    # no long stretch without its own progress: the training's and the evaluation's inner loops count
    counted = {(e.stage, e.message) for e in events if e.total and e.data.get("eta_seconds", "") != ""}
    assert ("train", "scoring the held-out pairs after training") in counted
    assert ("evaluate", "scoring your held-out writing under the base model") in counted
    assert ("evaluate", "scoring your held-out writing under the personal model") in counted
    model = second.model
    assert active_model() == model.resolve() and model.parent == first.run_dir
    assert (first.run_dir / "Modelfile").read_text().startswith("# Ollama")
    for name in ("settings.json", "log.txt", "report.json", "report.md", "adapter.gguf"):
        assert (first.run_dir / name).is_file(), name
    report = json.loads((first.run_dir / "report.json").read_text())
    assert report["identification"]["personal"]["n"] == report["examples"] >= 1
    assert report["headline"] in (first.run_dir / "report.md").read_text()
    writing = report["writing"]       # the headline: the person's own held-out writing, scored in place
    assert 1 <= writing["documents"] <= 3 and writing["pmi_gain"]["n"] == writing["documents"]
    assert report["headline"].startswith(f"On {writing['documents']} pieces of your own writing it never saw")
    from mipo_local.context import ContextStore

    with ContextStore() as store:   # evaluated examples were never trained on
        trained = {r["example_id"] for r in store.pairs(split="train")}
    assert trained and not trained & set(report["example_ids"])
    assert report["neutral_perplexity"]["personal"] > 1.0
    assert "Before (base)" in (first.run_dir / "report.md").read_text()

    with ChatSession(active_model(), max_tokens=16) as chat:
        assert chat.ask("What do I feed Bjørn?").strip()
        assert chat.last_snippets

    third = run_pipeline((), TINY)
    assert third.up_to_date and third.run_dir == first.run_dir
    from .test_workspace_private import assert_private

    assert_private(mipo_home)     # the run's folder, log, training data and checkpoints too, whatever wrote them

    # a failed export leaves the previous active model in place
    state = load_state(first.run_dir)
    adapter = Path(state["outputs"]["adapter"]) / "adapter_model.safetensors"
    adapter.write_bytes(b"not a safetensors file")
    state["stages"]["export"]["fingerprint"] = "changed"
    state["finished"] = False
    (first.run_dir / "state.json").write_text(json.dumps(state))
    with pytest.raises(MipoError, match="cannot be loaded"):
        run_pipeline((), TINY)
    assert active_model() == model.resolve() and model.is_file()

    proc = run_cli(["active"], mipo_home)
    assert proc.returncode == 0 and str(model.resolve()) in proc.stdout
    proc = run_cli(["chat", "--compare", "-m", "What do I feed Bjørn?"], mipo_home)
    assert proc.returncode == 0 and "[personal] " in proc.stdout and "[base] " in proc.stdout, proc.stderr


def test_run_without_any_writing_says_what_to_do(mipo_home):
    assert_one_line_error(run_cli(["run"], mipo_home), "none of your writing")


def test_eval_without_a_run_says_what_to_do(mipo_home):
    assert_one_line_error(run_cli(["eval"], mipo_home), "no finished run")
