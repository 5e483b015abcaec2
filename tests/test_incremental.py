"""Incremental personalization: new notes since the active model's run → pairs only for the examples
made from them, training continued from the active adapter (with replayed earlier pairs), a new
version reported against the previous one and the base; nothing new → no run. On the demo corpus
with six notes held back, the real stack, tiny settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mipo_local.chat.active_model import active_model, history
from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import DEMO_ADDRESSES, demo_dir
from mipo_local.evaluation.settings import EvalSettings
from mipo_local.pairs import PairSettings
from mipo_local.pairs.examples import build_examples
from mipo_local.pipeline import RunSettings, list_runs, load_state, run_pipeline
from mipo_local.pipeline.incremental import new_documents, replay_split, write_snapshot
from mipo_local.settings import load_settings
from mipo_local.train import TrainSettings

TINY = RunSettings(
    pairs=PairSettings(examples=10, heldout_pairs=2, max_new_tokens=32, heldout_fraction=0.3, n_parallel=8, candidates=1,
                       context_tokens=128),
    train=TrainSettings(batch_size=2, max_length=512, checkpoint_every=50),
    quant="Q8_0", max_steps=2,
    evaluation=EvalSettings(examples=2, answers=1, contexts=2, writing=2),
)


def _held_back(notes: Path, n: int = 6) -> list[Path]:
    """`n` note files of the demo, the same ones every time."""
    return sorted(notes.rglob("*.md"), key=lambda p: p.name)[-n:]


def _corpus(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """A copy of the demo notes with six held back (moved aside), and the folder they wait in."""
    notes = tmp_path / "notes"
    shutil.copytree(demo_dir() / "notes", notes)
    aside = tmp_path / "later"
    aside.mkdir()
    back = []
    for path in _held_back(notes):
        target = aside / path.relative_to(notes)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        back.append(target)
    return notes, back, aside


def _add_back(notes: Path, aside: Path, back: list[Path]) -> None:
    for path in back:
        target = notes / path.relative_to(aside)
        shutil.copy2(path, target)


def test_an_examples_split_never_changes_as_the_data_grows_and_new_documents_are_found(tmp_path, mipo_home):
    notes, back, aside = _corpus(tmp_path)
    settings = load_settings().with_addresses(list(DEMO_ADDRESSES))
    import_paths([notes, demo_dir() / "mail"], settings=settings)
    with ContextStore() as store:
        before = {e.id: e.heldout for e in build_examples(store, max_examples=10 ** 9, heldout_fraction=0.3)}
        write_snapshot(store, tmp_path)
        assert new_documents(store, tmp_path) == set()
    _add_back(notes, aside, back)
    import_paths([notes], settings=settings)
    with ContextStore() as store:
        after = build_examples(store, max_examples=10 ** 9, heldout_fraction=0.3)
        fresh = new_documents(store, tmp_path)
        titles = {store.document(i)["title"] for i in fresh}
    assert len(fresh) == len(back) and len(titles) == len(back)
    grown = {e.id: e.heldout for e in after}
    kept = set(before) & set(grown)      # (an everyday request may find no relevant context any more)
    assert len(kept) >= 0.9 * len(before) and len(grown) > len(before)
    assert all(grown[i] == before[i] for i in kept)          # no example moved between train and held out
    new_examples = [e for e in after if not fresh.isdisjoint(e.documents)]
    assert new_examples and all(e.id not in before for e in new_examples)


def test_replay_takes_one_earlier_pair_per_new_one_in_a_stable_order():
    rows = [{"id": i, "example_id": f"note:{i}", "sample": 0} for i in range(10)]
    new, replay = replay_split(rows, {"note:1", "note:2"}, 0.5, seed=0)
    assert new == [1, 2] and len(replay) == 2 and not {1, 2} & set(replay)
    assert replay_split(rows, {"note:1", "note:2"}, 0.5, seed=0) == (new, replay)
    assert replay_split(rows, {"note:1"}, 0.0, seed=0) == ([1], [])
    assert len(replay_split(rows, {"note:1"}, 0.9, seed=0)[1]) == 9      # all there are


def test_training_continues_from_a_saved_adapter_with_the_base_as_reference(tmp_path, smol_checkpoint):
    """A tiny model (seconds): the continued adapter starts with the saved weights exactly, the
    policy starts away from the reference (so the reference is the base, not a copy of the adapter),
    and training moves it on."""
    from mipo_local.train import train_lora
    from mipo_local.train.continued import adapter_digest, saved_adapter

    from .test_train import RECORDS
    from .tiny_models import build_tiny_model

    tiny = build_tiny_model("llama", tmp_path / "tiny", smol_checkpoint)
    fast = TrainSettings(batch_size=2, learning_rate=5e-3, warmup_steps=0, lora_rank=4, lora_alpha=8, max_length=256,
                         gradient_checkpointing="off", mirror=False, device="cpu")
    first = train_lora(tiny, RECORDS[:4], tmp_path / "first", fast, max_steps=2, heldout=RECORDS[6:])
    assert first.metrics["heldout_before"]["reward_margin"] == 0          # a new adapter: policy = reference
    second = train_lora(tiny, RECORDS[4:6], tmp_path / "second", fast, max_steps=2, heldout=RECORDS[6:],
                        init_adapter=first.adapter_dir)
    start = adapter_digest(saved_adapter(first.adapter_dir))
    assert second.metrics["initial_adapter"]["digest"] == start
    assert second.metrics["heldout_before"]["reward_margin"] != 0        # the reference is the base
    before, after = second.metrics["heldout_before"], first.metrics["heldout_after"]
    assert before["reward_margin"] == pytest.approx(after["reward_margin"], abs=1e-4)   # where the first stopped
    assert adapter_digest(saved_adapter(second.adapter_dir)) != start


def test_incremental_run_continues_the_active_adapter_on_the_new_notes_only(tmp_path, mipo_home, sampling_model,
                                                                            smol_checkpoint):
    from mipo_local.train.continued import adapter_digest, saved_adapter

    notes, back, aside = _corpus(tmp_path)
    first = run_pipeline([notes, demo_dir() / "mail"], TINY, addresses=DEMO_ADDRESSES)
    assert first.finished and first.mode == "full"
    state_a = load_state(first.run_dir)
    pair_run = state_a["stages"]["pairs"]["pair_run"]
    with ContextStore() as store:
        pairs_before = {r["id"] for r in store.pairs(pair_run)}

    _add_back(notes, aside, back)
    second = run_pipeline([notes], TINY)
    assert second.finished and second.mode == "incremental" and second.run_dir != first.run_dir
    assert first.run_dir.name in second.mode_reason
    state = load_state(second.run_dir)
    pairs = state["stages"]["pairs"]
    assert pairs["pair_run"] == pair_run and pairs["new_documents"] == len(back)
    new_examples = set(json.loads((second.run_dir / "new_examples.json").read_text()))
    with ContextStore() as store:
        made = [r for r in store.pairs(pair_run) if r["id"] not in pairs_before]
        new_files = {str(store.document(i)["file_id"]) for i in new_documents(store, first.run_dir)}
    assert made and {r["example_id"] for r in made} == new_examples          # pairs only for the new examples
    assert all(e.split(":")[0] == "note" and e.split(":")[1] in new_files for e in new_examples)
    train = state["stages"]["train"]
    assert train["new_pairs"] >= 1 and train["replayed_pairs"] == train["new_pairs"]   # replay_fraction 0.5

    # training started from the previous adapter (its exact weights), with the base as reference
    metrics = json.loads((second.run_dir / "train" / "train_metrics.json").read_text())
    previous_adapter = Path(state_a["outputs"]["adapter"])
    assert metrics["initial_adapter"]["digest"] == adapter_digest(saved_adapter(previous_adapter))
    assert adapter_digest(saved_adapter(second.run_dir / "train" / "adapter")) != metrics["initial_adapter"]["digest"]
    assert metrics["heldout_before"]["reward_margin"] != 0        # the policy already differs from the base

    # a new version, active after its smoke test; the previous stays in the history; the report compares all three
    assert active_model() == second.model.resolve() and first.model.resolve() in history()
    report = second.report
    assert report["previous"]["identification"]["n"] == report["identification"]["personal"]["n"]
    assert "New vs previous vs base" in (second.run_dir / "report.md").read_text()

    # nothing new since: no run, exit 0
    runs = list_runs()
    third = run_pipeline((), TINY)
    assert third.up_to_date and third.run_dir == second.run_dir and list_runs() == runs
    (notes / back[0].relative_to(aside)).unlink()          # the data changed, but nothing is new
    fourth = run_pipeline([notes], TINY)
    assert fourth.nothing_new and "nothing new" in fourth.mode_reason
    assert fourth.model.resolve() == second.model.resolve()
    assert list_runs() == runs and active_model() == second.model.resolve()
