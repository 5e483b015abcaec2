"""The personalization measures on the real bundled model: context identification, pair selection,
ties in reward accuracy, one source for sampling settings, a report whose sentence is its numbers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mipo_local.context.overlap import copy_share
from mipo_local.evaluation.report import headline, summary_markdown
from mipo_local.evaluation.settings import EvalSettings
from mipo_local.evaluation.stage import _per_model, _score_base
from mipo_local.evaluation.statistics import bootstrap_ci, identification, rouge_l
from mipo_local.pairs import PairSettings
from mipo_local.pairs.examples import Example
from mipo_local.pairs.stage import CandidateScorer, select_pair
from mipo_local.train.heldout import summarize

# twelve people's facts: each context holds a fact no other one does
FACTS = [
    ("my cat", "My cat is called Mirabel and she sleeps on the green piano."),
    ("my bike", "My bike is a blue Raleigh named Tortoise with a squeaky bell."),
    ("my starter", "My sourdough starter is called Bjørn and I feed him rye at eight."),
    ("my boat", "My rowing boat Kestrel is moored at pier nine in Sandviken."),
    ("my garden", "In my garden the plum tree Old Hugo gives fruit every August."),
    ("my violin", "My violin teacher Ingrid Halvorsen lives above the bakery on Strandgaten."),
    ("my car", "My car is a rusty orange Volvo 240 that I call Pumpkin."),
    ("my flat", "My flat is on the fourth floor of Kalfarveien 31, door B."),
    ("my dog", "My dog Pepper is a grey whippet who is afraid of umbrellas."),
    ("my club", "My chess club meets on Thursdays at the Café Opera, table seven."),
    ("my lab", "My lab studies kelp forests at the Espegrend field station."),
    ("my bread", "My favourite bread is a dark rye with caraway from Godt Brød."),
]


@pytest.fixture(scope="module")
def scorer(smol_checkpoint):
    from mipo_local.inference.scoring import ResponseScorer, load_torch_model

    return ResponseScorer(*load_torch_model(smol_checkpoint))


def _examples(m: int) -> list[dict]:
    """Each example's distractors: the next m−1 people's contexts (every context is a distractor as
    often as it is the true one)."""
    out = []
    for i, (topic, fact) in enumerate(FACTS):
        others = [[FACTS[(i + j) % len(FACTS)][1]] for j in range(1, m)]
        out.append({"id": str(i), "request": f"Tell me something about {topic}.", "context": [fact],
                    "distractors": others, "reference": None})
    return out


def _accuracy(scorer, examples, answers) -> list[float]:
    scores = _score_base(scorer, examples, answers, PairSettings().context_in)
    groups = [[{"text": a, "loop": False} for a in group] for group in answers]
    return _per_model(examples, groups, scores, 0, len(answers[0]))["identification"]


def test_identification_is_chance_for_answers_that_ignore_the_context(scorer):
    examples = _examples(4)
    accuracy = _accuracy(scorer, examples, [["Thank you, that sounds lovely."] for _ in examples])
    mean, lo, hi = bootstrap_ci(accuracy)
    assert lo <= 0.25 <= hi, (mean, lo, hi)


def test_identification_is_near_one_for_answers_that_copy_a_fact_of_the_true_context(scorer):
    examples = _examples(4)
    accuracy = _accuracy(scorer, examples, [[f"You told me: {e['context'][0]}"] for e in examples])
    assert sum(accuracy) / len(accuracy) >= 0.9


def test_identification_ties_share_the_point():
    assert identification(-1.0, [-2.0, -3.0]) == 1.0
    assert identification(-3.0, [-2.0, -3.0]) == 0.0
    assert identification(-2.0, [-2.0, -2.0, -2.0]) == 0.25   # an empty answer scores alike everywhere


def test_pair_selection_keeps_the_candidate_that_uses_the_context(smol_checkpoint):
    scorer = CandidateScorer(smol_checkpoint, PairSettings().context_in)
    e = Example("note:x", "note", "Tell me something about my cat.", (FACTS[0][1],), (1,), False)
    generic = "Cats are wonderful pets that like to sleep a lot."
    specific = "Your cat Mirabel likes to sleep on the green piano."
    mi = scorer.mi(e, [generic, specific])
    assert mi[1] > mi[0]
    reason, p, n = select_pair([12, 12], [12, 12], mi, mi, PairSettings())
    assert reason is None and p == 1 and n == 0        # y+ the higher-MI candidate, y− the lower
    # the base in bfloat16 (the default where the CPU computes it natively) keeps the same candidates
    fast = CandidateScorer(smol_checkpoint, PairSettings().context_in, "bf16")
    assert next(fast.scorer.model.parameters()).dtype == torch.bfloat16
    mi_fast = fast.mi(e, [generic, specific])
    assert select_pair([12, 12], [12, 12], mi_fast, mi_fast, PairSettings()) == (None, 1, 0)
    assert mi_fast == pytest.approx(mi, abs=0.5)       # nats over ~12 tokens


def test_the_sampler_scores_the_candidates_as_the_base_does(mipo_home, sampling_model, smol_checkpoint):
    """`--candidate-scoring sampler`: candidates scored by the sampling model as it samples. The MI of
    each kept answer is what the base in PyTorch (fp32) gives the same text, within the Q8_0 copy's error."""
    import json
    from types import SimpleNamespace

    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import demo_sources
    from mipo_local.pairs import generate_pairs

    import_paths(demo_sources())
    settings = PairSettings(examples=6, heldout_pairs=0, max_new_tokens=32, n_parallel=8, scoring="sampler",
                            real_text=False)          # MIPO pairs only: each kept one has its scores
    with ContextStore() as store:
        summary = generate_pairs(store, sampling_model, settings)     # no PyTorch checkpoint needed
        rows = store.pairs(summary.run_id, include_dropped=False)
    assert summary.scoring == "sampler" and len(rows) == len(summary.kept_mi) >= 3
    exact = CandidateScorer(smol_checkpoint, settings.context_in)
    diffs = []
    for row, (mi_chosen, mi_rejected) in zip(rows, summary.kept_mi):
        e = SimpleNamespace(context=tuple(json.loads(row["context"])), request=row["request"])
        want = exact.mi(e, [row["chosen"], row["rejected"]])
        assert mi_chosen > 0
        diffs += [abs(mi_chosen - want[0]), abs(mi_rejected - want[1])]
        print(f"MI sampler {mi_chosen:.2f} / {mi_rejected:.2f}, base fp32 {want[0]:.2f} / {want[1]:.2f}")
    # measured on 186 candidates (BENCHMARKS.md): |Δ| 0.89 nats on average, on MIs of 5-50 nats
    assert sum(diffs) / len(diffs) < 1.5, diffs


def test_pair_selection_drops_what_teaches_nothing():
    settings = PairSettings()
    assert select_pair([10], [10], [-0.5], [-3.0], settings)[0] == "positive ignores the context"
    assert select_pair([40], [10], [5.0], [-3.0], settings)[0] == "lengths differ too much"
    assert select_pair([12, 14], [13], [1.0, 4.0], [-2.0], settings) == (None, 1, 0)


def test_reward_accuracy_counts_ties_as_half():
    same = [(-10.0, -12.0), (-5.0, -4.0)]
    assert summarize(same, same, 0.1)["reward_accuracy"] == 0.5      # before training: every margin is 0
    better = [(-9.0, -12.0), (-4.0, -4.5)]
    assert summarize(better, same, 0.1)["reward_accuracy"] == 1.0


def test_evaluation_samples_exactly_as_the_pairs_do():
    fields = {f.name for f in dataclasses.fields(EvalSettings)}
    assert not fields & {"temperature", "top_p", "max_new_tokens"}      # one source: the pairs' settings
    pairs = PairSettings(temperature=0.6, top_p=0.9, max_new_tokens=50)
    sampling = pairs.sampling()
    assert (sampling.temperature, sampling.top_p, sampling.max_new_tokens) == (0.6, 0.9, 50)


def test_measures_of_copying_and_replies():
    assert copy_share("one two three four five six seven eight", ["x one two three four five six seven eight y"]) == 1.0
    assert copy_share("short answer", ["short answer"]) == 0.0
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("a b c d", "a x c y") == pytest.approx(0.5)


def _stat(mean, lo, hi, n=20):
    return {"mean": mean, "ci95": [lo, hi], "n": n}


def test_the_report_sentence_is_made_of_its_numbers():
    zero = {k: _stat(0.0, -0.1, 0.1) for k in ("personal", "base", "gain")}
    result = {
        "examples": 20, "sampling": {"temperature": 0.8, "max_new_tokens": 64},
        "identification": {"contexts": 4, "answers": 2, "chance": 0.25, "personal": _stat(0.7, 0.6, 0.8),
                           "base": _stat(0.5, 0.4, 0.6), "gain": _stat(0.2, 0.1, 0.3)},
        "fixed_text_mi_per_token": zero, "mi_per_token": zero, "answer_tokens": zero, "loop_rate": zero,
        "copy_share": zero, "coherence": zero,
        "replies": {"threads": 3, "loglik_per_token": zero, "rouge_l": zero},
        "neutral_perplexity": {"base": 27.0, "personal": 27.5, "change": 0.5 / 27}, "samples": [],
    }
    result["headline"] = headline(result)
    assert "70%" in result["headline"] and "50%" in result["headline"] and "25%" in result["headline"]
    assert "uses your writing more" in result["headline"]
    md = summary_markdown(result)
    assert result["headline"] in md and "+20.0 (95% CI +10.0 to +30.0, n=20)" in md
    result["identification"]["gain"] = _stat(0.05, -0.05, 0.15)
    assert "within the measurement's noise" in headline(result)


def test_a_mirrored_pair_prefers_the_answer_made_without_the_context():
    from mipo_local.inference.prompt_format import chat_messages
    from mipo_local.pairs.export import conversational_record, mirrored_record

    row = {"request": "Tell me something about my cat.", "context": '["' + FACTS[0][1] + '"]', "negative_context": None,
           "prompt": __import__("json").dumps(chat_messages([FACTS[0][1]], "Tell me something about my cat.")),
           "chosen": "Mirabel sleeps on the green piano.", "rejected": "Cats sleep a lot."}
    pair, mirror = conversational_record(row), mirrored_record(row)
    assert mirror["prompt"] == chat_messages(None, row["request"]) and FACTS[0][1] not in str(mirror["prompt"])
    assert mirror["chosen"] == pair["rejected"] and mirror["rejected"] == pair["chosen"]
