"""The evaluation's cache (`eval_cache`) on the real stack (the bundled model, llama.cpp, PyTorch):
evaluating again reuses every answer and score and reports the same numbers; an incremental
evaluation reuses the previous model's part; a grown example list keeps its examples' answers."""

from __future__ import annotations

import json
import os

import pytest

from mipo_local.evaluation import stage as eval_stage
from mipo_local.evaluation.cache import EvalCache
from mipo_local.evaluation.settings import EvalSettings
from mipo_local.evaluation.stage import _sample, evaluate_models
from mipo_local.inference.generation import BatchedGenerator
from mipo_local.pairs import PairSettings

SETTINGS = EvalSettings(examples=3, answers=1, contexts=2, samples_shown=1)
PAIRS = PairSettings(max_new_tokens=16, n_parallel=4)
FACTS = ["My cat is called Mirabel and she sleeps on the green piano.",
         "My bike is a blue Raleigh named Tortoise with a squeaky bell.",
         "My sourdough starter is called Bjørn and I feed him rye at eight.",
         "My rowing boat Kestrel is moored at pier nine in Sandviken."]
EXAMPLES = [{"id": f"note:{i}", "source": "note", "request": f"Tell me about {topic}.", "context": [FACTS[i]],
             "distractors": [[FACTS[(i + 1) % len(FACTS)]]], "reference": "Mirabel sleeps on the piano." if i == 0 else None}
            for i, topic in enumerate(["my cat", "my bike", "my starter", "my boat"])]


@pytest.fixture(scope="module")
def models(tmp_path_factory, smol_checkpoint, sampling_model, smol_f16, bundled_gguf) -> dict:
    """Three models the cache must tell apart, each (GGUF, checkpoint): the base, and two stand-ins for
    personal models (other GGUF files; checkpoints that link the base's files but for a config of
    their own, so their identity differs while loading stays cheap)."""
    def variant(name: str):
        folder = tmp_path_factory.mktemp(name)
        for f in smol_checkpoint.iterdir():
            if f.name == "config.json":
                (folder / f.name).write_text(json.dumps({**json.loads(f.read_text()), "mipo_test_variant": name}))
            else:
                os.symlink(f, folder / f.name)
        return folder

    return {"base": (sampling_model, smol_checkpoint), "new": (smol_f16, variant("new")),
            "earlier": (bundled_gguf, variant("earlier"))}


@pytest.fixture
def calls(monkeypatch) -> dict:
    """The model files llama.cpp and PyTorch load during the test (the real loaders, watched)."""
    seen = {"sampled": [], "loaded": []}
    real_init, real_load = BatchedGenerator.__init__, eval_stage.load_torch_model

    def init(self, gguf_path, **kwargs):
        seen["sampled"].append(gguf_path)
        real_init(self, gguf_path, **kwargs)

    def load(folder):
        seen["loaded"].append(folder)
        return real_load(folder)

    monkeypatch.setattr(BatchedGenerator, "__init__", init)
    monkeypatch.setattr(eval_stage, "load_torch_model", load)
    return seen


def evaluate(models, personal: str, previous=None, cache: bool = True) -> dict:
    return evaluate_models(*models[personal], *models["base"], EXAMPLES[:SETTINGS.examples], SETTINGS, PAIRS,
                           previous=models[previous] if previous else None, cache=cache)


def numbers(result: dict) -> dict:
    """Everything a report says but how long it took and what it reused."""
    return {k: v for k, v in result.items() if k not in ("seconds", "reuse")}


def assert_close(got, expected, where: str = "report") -> None:
    """The same report up to fp32 rounding: every number within 1e-5 (relative or absolute), the rest equal."""
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for k in expected:
            assert_close(got[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for n, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{where}[{n}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-5), where
    else:
        assert got == expected, where


def test_evaluating_again_reuses_every_answer_and_score_and_reports_the_same(models, calls):
    plain = evaluate(models, "new", cache=False)
    first = evaluate(models, "new")
    assert numbers(first) == numbers(plain)
    assert first["reuse"]["scores"]["base"]["reused"] == 0 and first["reuse"]["scores"]["base"]["model_loaded"]
    calls["sampled"].clear()
    calls["loaded"].clear()
    again = evaluate(models, "new")
    assert numbers(again) == numbers(first)
    assert calls == {"sampled": [], "loaded": []}             # no model was loaded, by llama.cpp or PyTorch
    assert again["reuse"]["answers"] == {"personal": {"sampled": 0, "reused": 3}, "base": {"sampled": 0, "reused": 3}}
    assert not any(s["computed"] or s["model_loaded"] for s in again["reuse"]["scores"].values())


def test_an_incremental_evaluation_reuses_the_previous_models_part(models, calls):
    own_run = evaluate(models, "earlier")                     # the previous model's own evaluation
    calls["sampled"].clear()
    calls["loaded"].clear()
    now = evaluate(models, "new", previous="earlier")
    assert calls["sampled"] == [models["new"][0]]              # only the new model samples
    assert calls["loaded"] == [models["base"][1], models["new"][1]]  # the previous checkpoint is not loaded
    assert now["reuse"]["answers"]["previous"] == {"sampled": 0, "reused": 3}
    assert now["reuse"]["scores"]["previous"] == {"computed": 0, "reused": 8, "model_loaded": False}
    previous = now["previous"]
    assert previous["identification"] == own_run["identification"]["personal"]
    assert previous["fixed_text_mi_per_token"] == own_run["fixed_text_mi_per_token"]["personal"]
    assert previous["neutral_perplexity"] == own_run["neutral_perplexity"]["personal"]
    # computed without the cache, the new model's scores come from another sequence of computations in
    # the process, and differ by fp32 rounding (measured: 2.5e-7 in a mean log-likelihood per token)
    assert_close(numbers(now), numbers(evaluate(models, "new", previous="earlier", cache=False)))


def test_a_grown_example_list_keeps_the_answers_of_the_examples_it_had(models):
    gguf = models["base"][0]
    texts = lambda groups: [[a["text"] for a in g] for g in groups]  # noqa: E731
    few = _sample(gguf, EXAMPLES[:2], PAIRS, 2, 1234)
    grown = _sample(gguf, EXAMPLES[::-1], PAIRS, 2, 1234)         # more examples, in another order, no cache
    assert texts(grown[::-1][:2]) == texts(few)
    with EvalCache.opened() as cache:
        assert texts(_sample(gguf, EXAMPLES[:2], PAIRS, 2, 1234, cache=cache)) == texts(few)
        cached = _sample(gguf, EXAMPLES, PAIRS, 2, 1234, cache=cache)
    assert [[a["cached"] for a in g] for g in cached] == [[True, True]] * 2 + [[False, False]] * 2
    assert texts(cached) == texts(grown[::-1])


def test_the_cache_is_private_and_forgotten_with_a_source(models, mipo_home, tmp_path):
    from mipo_local.context import ContextStore, import_paths

    with EvalCache.opened() as cache:
        _sample(models["base"][0], EXAMPLES[:1], PAIRS, 1, 1234, cache=cache)
    assert (mipo_home / "context.sqlite3").stat().st_mode & 0o077 == 0
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A note\n\nSomething I wrote.\n")
    import_paths([notes])
    with ContextStore() as store:
        count = lambda: store.db.execute("SELECT COUNT(*) FROM eval_answers").fetchone()[0]  # noqa: E731
        assert count() == 1
        store.remove_source(str(notes))       # the answers were made from the user's writing: they go too
        assert count() == 0
