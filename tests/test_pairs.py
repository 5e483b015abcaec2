"""MIPO pairs on the bundled model with real llama.cpp."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import demo_sources
from mipo_local.errors import MipoError
from mipo_local.inference.generation import BatchedGenerator, Completion, Sampling
from mipo_local.inference.prompt_format import ChatTemplate, chat_messages, system_message
from mipo_local.pairs import PairSettings, build_examples, export_jsonl, generate_pairs, pair_rows
from mipo_local.pairs.filters import is_degenerate, judge_pair, trim_cut

from .helpers import LOGIT_TOLERANCE, assert_greedy_agree, greedy_tokens, run_cli

# one candidate per side and no MI filter: these tests are about prompts and bookkeeping, not selection
PLAIN = {"candidates": 1, "min_context_mi": None}
SMALL = PairSettings(examples=8, heldout_pairs=4, max_new_tokens=32, n_parallel=8, heldout_fraction=0.3,
                     temperature=0.8, **PLAIN)


@pytest.fixture
def demo_store(mipo_home):
    import_paths(demo_sources())
    with ContextStore() as store:
        yield store


def test_examples_are_stable_and_split(demo_store):
    a = build_examples(demo_store, max_examples=500, heldout_fraction=0.1)
    b = build_examples(demo_store, max_examples=500, heldout_fraction=0.1)
    assert [e.id for e in a] == [e.id for e in b]
    assert {e.source for e in a} == {"email", "sent", "note", "everyday"}
    assert all(e.context for e in a)
    held = [e for e in a if e.heldout]
    assert 0.04 < len(held) / len(a) < 0.2
    fewer = build_examples(demo_store, max_examples=40, heldout_fraction=0.1)
    assert {e.id: e.heldout for e in fewer}.items() <= {e.id: e.heldout for e in a}.items()
    email = next(e for e in a if e.source == "email")
    assert email.request.startswith("Reply to this email.") and email.reference
    assert all(email.reference not in c for c in email.context)  # the real reply is not its own context


@pytest.fixture(scope="module")
def small_run(module_home, sampling_model):
    """SMALL pairs made once on the demo for the tests of their prompts and bookkeeping: the store, the
    run's summary, every pair row, the examples by id and the model's chat template."""
    import_paths(demo_sources())
    with ContextStore() as store:
        summary = generate_pairs(store, sampling_model, SMALL)
        examples = {e.id: e for e in build_examples(store, max_examples=10 ** 6, heldout_fraction=0.3)}
        yield SimpleNamespace(store=store, summary=summary, rows=pair_rows(store, split="all", include_dropped=True),
                              examples=examples, template=ChatTemplate.from_gguf(sampling_model))


def test_every_example_gets_a_pair_made_or_dropped_and_its_own_text_one_more(small_run):
    from mipo_local.pairs.examples import own_text_answer

    mipo = [r for r in small_run.rows if r["sample"] < SMALL.samples]
    real = [r for r in small_run.rows if r["sample"] >= SMALL.samples]
    assert len(mipo) == 12 and sum(r["heldout"] for r in mipo) == 4
    assert small_run.summary.made + sum(small_run.summary.dropped.values()) == len(small_run.rows)
    # beyond the paper (`real_text`, on by default): a trained example with text of the person's own and
    # a kept MIPO pair gets one more pair under the same prompt: their text over the same negative
    kept = {r["example_id"]: r for r in mipo if r["status"] == "ok" and not r["heldout"]}
    own = {i: own_text_answer(small_run.examples[i], SMALL.max_new_tokens) for i in kept}
    assert {r["example_id"] for r in real} == {i for i, text in own.items() if text} != set()
    for r in real:
        m = kept[r["example_id"]]
        assert r["heldout"] == 0 and r["status"] == "ok" and r["chosen"] == own[r["example_id"]]
        assert r["prompt"] == m["prompt"] and r["rejected"] == m["rejected"] and r["chosen"] != m["chosen"]


def test_pair_prompt_holds_its_examples_context(small_run):
    for row in small_run.rows:
        e = small_run.examples[row["example_id"]]
        context = json.loads(row["context"])
        assert context == list(e.context) and context
        assert json.loads(row["prompt"]) == chat_messages(context, e.request)
        assert row["prompt_text"] == small_run.template.render(chat_messages(context, e.request))


def test_drop_negative_prompt_has_no_context(small_run):
    for row in small_run.rows:
        assert row["negative_context"] is None
        negative_prompt = small_run.template.render(chat_messages(None, small_run.examples[row["example_id"]].request))
        assert system_message(None) in negative_prompt
        assert not [chunk for chunk in json.loads(row["context"]) if chunk in negative_prompt]


def test_kept_pairs_have_two_different_answers(small_run):
    for row in small_run.rows:
        if row["status"] == "ok":
            assert row["chosen"].strip() and row["rejected"].strip() and row["chosen"] != row["rejected"]


def test_heldout_examples_never_reach_the_training_export(small_run, tmp_path):
    out = tmp_path / "train.jsonl"
    n = export_jsonl(small_run.store, out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == n > 0
    held_prompts = {r["prompt"] for r in small_run.rows if r["heldout"]}
    assert held_prompts, "the test needs held-out examples"
    assert not [r for r in records if json.dumps(r["prompt"], ensure_ascii=False) in held_prompts]


def test_training_export_is_conversational(small_run, tmp_path):
    out = tmp_path / "train.jsonl"
    export_jsonl(small_run.store, out)
    for record in map(json.loads, out.read_text().splitlines()):
        assert set(record) == {"prompt", "chosen", "rejected"}
        assert record["prompt"][0]["role"] == "system" and record["chosen"][0]["role"] == "assistant"


def test_same_settings_again_have_nothing_left_to_do(small_run, sampling_model):
    again = generate_pairs(small_run.store, sampling_model, SMALL)
    assert again.made == 0 and again.done_before == 12


def test_persona_strategy_uses_an_unrelated_context(demo_store, sampling_model):
    settings = PairSettings(examples=4, heldout_pairs=0, max_new_tokens=8, n_parallel=4, strategy="persona", **PLAIN)
    generate_pairs(demo_store, sampling_model, settings)
    for row in pair_rows(demo_store, split="all", include_dropped=True):
        negative = json.loads(row["negative_context"])
        assert len(negative) == 1 and "Bergen" not in negative[0]
        assert not set(negative) & set(json.loads(row["context"]))


def test_shuffle_needs_a_big_enough_corpus(tmp_path, sampling_model):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Kayak\n\nMy kayak is red and I paddle on Sundays with a plan for dinner and a gift.")
    with ContextStore() as store:
        import_paths([notes], store=store)
        with pytest.raises(MipoError, match="shuffle"):
            generate_pairs(store, sampling_model, PairSettings(examples=5, strategy="shuffle", max_new_tokens=8,
                                                               own_document="include", **PLAIN))   # one note: its own context
        assert store.db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] == 0


def test_shuffle_contexts_share_no_document(demo_store, sampling_model):
    settings = PairSettings(examples=6, heldout_pairs=0, max_new_tokens=8, n_parallel=6, strategy="shuffle", **PLAIN)
    generate_pairs(demo_store, sampling_model, settings)
    for row in pair_rows(demo_store, split="all", include_dropped=True):
        assert not set(json.loads(row["negative_context"])) & set(json.loads(row["context"]))


def test_killed_run_resumes_without_duplicates_or_losses(demo_store, sampling_model, smol_checkpoint, mipo_home):
    # the bundled base: its checkpoint and sampling copy are in the session's cache already
    # 12 training pairs and the 3 held-out ones the demo supports at this context budget
    args = ["pairs", "--examples", "12", "--heldout-pairs", "4", "--candidates", "1", "--max-new-tokens", "48",
            "--context-tokens", "128", "--parallel", "4", "--no-real-text"]
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "mipo_local", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    seen = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        seen = demo_store.db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        if seen >= 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = demo_store.db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
    assert 3 <= partial < 15, f"could not interrupt the run ({partial} pairs)"
    done = run_cli(args, mipo_home)
    assert done.returncode == 0, done.stderr
    rows = demo_store.db.execute("SELECT example_id, sample FROM pairs").fetchall()
    assert len(rows) == 15 and len({tuple(r) for r in rows}) == 15
    assert f"{partial} from before" in done.stdout
    assert len(demo_store.db.execute("SELECT * FROM pair_runs").fetchall()) == 1


def _prompts(gguf):
    template = ChatTemplate.from_gguf(gguf)
    requests = ["Suggest a dinner for tonight.", "Write a haiku about rain.", "What should I pack for a hike?",
                "Give me three tips for focus.", "Plan my Sunday.", "Write a note to Karin about July.",
                "How do I decline an invitation politely?", "Summarize my week in two lines."]
    return [template.render(chat_messages(["I like cycling and I bake bread on Sundays."], r)) for r in requests]


def test_batched_greedy_equals_single_sequence_decoding(bundled_gguf):
    """Temperature 0: eight sequences decoded together give what llama.cpp gives for each prompt alone,
    up to a near-tie (batched and single decoding round differently on some CPUs' kernels)."""
    from mipo_local.inference.llama_runtime import llama_model

    prompts = _prompts(bundled_gguf)
    sampling = Sampling(temperature=0.0, max_new_tokens=40)
    with BatchedGenerator(bundled_gguf, n_parallel=8, n_ctx_per_seq=512, share_prefix=False) as gen:
        batched = gen.generate(prompts, sampling)
    identical = 0
    with llama_model(bundled_gguf, n_ctx=512, flash_attn=True) as llm:
        for prompt, ours in zip(prompts, batched):
            prompt_tokens, single = greedy_tokens(llm, prompt, 40)
            assert_greedy_agree(llm, prompt_tokens, ours.tokens, single)
            identical += ours.tokens == single
    assert identical >= len(prompts) // 2, "most decodings should not meet a near-tie at all"


def test_shared_prefix_batched_greedy_equals_single_sequence(bundled_gguf):
    """With the shared prefix reused, batching still changes nothing: 8 at once == 1 at a time, up to
    a near-tie."""
    from mipo_local.inference.llama_runtime import llama_model

    prompts = _prompts(bundled_gguf)
    sampling = Sampling(temperature=0.0, max_new_tokens=40)
    with BatchedGenerator(bundled_gguf, n_parallel=8, n_ctx_per_seq=512) as gen:
        batched = gen.generate(prompts, sampling)
    with BatchedGenerator(bundled_gguf, n_parallel=1, n_ctx_per_seq=512) as gen:
        single = gen.generate(prompts, sampling)
    with llama_model(bundled_gguf, n_ctx=512) as llm:
        for prompt, ours, theirs in zip(prompts, batched, single):
            assert_greedy_agree(llm, llm.tokenize(prompt.encode(), add_bos=False, special=True), ours.tokens, theirs.tokens)
    assert sum(a.tokens == b.tokens for a, b in zip(batched, single)) >= len(prompts) // 2


def _mi_prompts(gguf):
    """(prompt with a context, the same request without it) for a few requests, rendered."""
    template = ChatTemplate.from_gguf(gguf)
    context = ["My cat Mirabel sleeps on the green piano every afternoon, and I bake rye bread on Sundays."]
    requests = ["Tell me about my afternoons.", "What should I bake this weekend?", "Write a haiku about my cat."]
    return [(template.render(chat_messages(context, r)), template.render(chat_messages(None, r))) for r in requests]


def _reference_logps(gguf, prompt: str, tokens: list[int]) -> list[float]:
    """log π(token | prompt, earlier tokens) by llama.cpp evaluating the whole text in one context."""
    import numpy as np

    from mipo_local.inference.llama_runtime import open_llama

    llm = open_llama(gguf, n_ctx=512, flash_attn=True, logits_all=True)
    try:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.eval(ids + tokens)
        rows = np.asarray(llm.scores[len(ids) - 1:len(ids) - 1 + len(tokens)], dtype=np.float64)
    finally:
        llm.close()
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    return (rows[np.arange(len(tokens)), tokens] - lse).tolist()


def test_completions_are_scored_under_their_own_prompt_and_others_as_llama_cpp_scores_them(bundled_gguf):
    """`score_under`: each token's log-probability under the prompt it was sampled from (free) and under
    another prompt (from that prompt's kept KV cache) is what llama.cpp gives the whole text."""
    pairs = _mi_prompts(bundled_gguf)
    prompts = [p for pair in pairs for p in pair]
    under = [list(pair) for pair in pairs for _ in pair]
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=24)
    with BatchedGenerator(bundled_gguf, n_parallel=4, n_ctx_per_seq=512, prompt_cache=4) as gen:
        scored = gen.generate(prompts, sampling, seeds=list(range(6)), score_under=under)
        assert gen.prompts_decoded == 6                       # each prompt decoded once, kept, reused
    with BatchedGenerator(bundled_gguf, n_parallel=4, n_ctx_per_seq=512) as gen:
        plain = gen.generate(prompts, sampling, seeds=list(range(6)))
    assert [c.tokens for c in scored] == [c.tokens for c in plain]     # scoring changes no answer
    with BatchedGenerator(bundled_gguf, n_parallel=1, n_ctx_per_seq=256) as gen:
        own_tokens = [gen.tokenize(c.text) for c in scored]       # what is scored: the text's own tokens
    for c, alts, tokens in zip(scored, under, own_tokens):
        assert len(c.scores) == 2 and all(len(s) == len(tokens) == len(c.piece_ends) for s in c.scores)
        for prompt, got in zip(alts, c.scores):
            want = _reference_logps(bundled_gguf, prompt, tokens)
            # llama.cpp splits a text's decoding differently in the two, and a sampled token was decoded
            # in a step with other sequences' tokens: two roundings, within the tolerance of any two
            # computations (0.30 measured on llama.cpp built for AVX2 only, 0.25 with AVX-512)
            assert max(abs(a - b) for a, b in zip(got, want)) < LOGIT_TOLERANCE, (prompt[-60:], got, want)
            assert abs(sum(got) - sum(want)) < 0.05 * len(got)


def test_a_prompt_given_up_for_another_is_decoded_again_to_the_same_scores(bundled_gguf):
    pairs = _mi_prompts(bundled_gguf)
    prompts = [p for pair in pairs for p in pair]
    under = [list(pair) for pair in pairs for _ in pair]
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=16)
    runs = []
    for keep in (1, 6):
        with BatchedGenerator(bundled_gguf, n_parallel=2, n_ctx_per_seq=512, prompt_cache=keep) as gen:
            runs.append((gen.generate(prompts, sampling, seeds=list(range(6)), score_under=under), gen.prompts_decoded))
    (tight, decoded_tight), (roomy, decoded_roomy) = runs
    assert decoded_tight > decoded_roomy == 6
    assert [c.scores for c in tight] == [c.scores for c in roomy]


def test_a_trimmed_answer_counts_the_tokens_that_make_it_up(bundled_gguf):
    """The stage scores a candidate cut to its last sentence by the tokens that make that sentence up."""
    with BatchedGenerator(bundled_gguf, n_parallel=1, n_ctx_per_seq=256) as gen:
        tokens = gen.tokenize("Rain on the roof. It sings all night. The cat")
        text, ends = gen._pieces(tokens)
        c = Completion(text, tokens, "length", 10, ends)
        trimmed = trim_cut(c.text, c.finish)
        assert trimmed == "Rain on the roof. It sings all night."
        n = c.tokens_for(trimmed)
        assert gen.detokenize(tokens[:n]).rstrip() == trimmed
        assert gen.detokenize(tokens[:n - 1]).rstrip() != trimmed
    assert c.tokens_for(c.text) == len(tokens) and c.tokens_for("") == 0


def test_trim_cut_ends_a_cut_answer_at_its_last_sentence():
    assert trim_cut("One sentence. Two sente", "length") == "One sentence."
    assert trim_cut("averyveryverylongwordwithoutend", "length") is None
    assert trim_cut("Finished.", "stop") == "Finished."


def test_is_degenerate_finds_loops():
    assert is_degenerate("I am sorry. " * 10)
    assert is_degenerate("line\nline\nline\nline")
    assert not is_degenerate("A normal answer with several different words that do not repeat in any loop at all.")


def test_judge_pair_drops_identical_and_empty_pairs():
    assert judge_pair("Same answer.", "stop", "same  answer.", "stop")[0] == "identical"
    assert judge_pair("", "stop", "Something.", "stop")[0] == "empty"
    assert judge_pair("Good.", "stop", "Different.", "stop")[0] is None


def test_pairs_cli_show_and_export(demo_store, sampling_model, mipo_home, tmp_path):
    generate_pairs(demo_store, sampling_model, PairSettings(examples=3, heldout_pairs=0, max_new_tokens=16, n_parallel=3,
                                                            **PLAIN))
    proc = run_cli(["pairs", "--show", "2"], mipo_home)
    assert proc.returncode == 0 and proc.stdout.count("=== pair") == 2 and "--- chosen (with context)" in proc.stdout
    out = tmp_path / "all.jsonl"
    proc = run_cli(["pairs", "--export", str(out), "--split", "all"], mipo_home)
    assert proc.returncode == 0 and out.is_file()


def test_mix_negatives_are_half_dropped_half_shuffled_and_stable():
    from mipo_local.pairs.examples import Example
    from mipo_local.pairs.negatives import negative_contexts

    examples = [Example(id=f"note:{i}", source="note", request=f"q{i}", context=(f"excerpt {i}",),
                        context_docs=(i,), heldout=False) for i in range(40)]
    mixed = negative_contexts(examples, "mix")
    dropped = [k for k, c in mixed.items() if c is None]
    assert 10 <= len(dropped) <= 30                       # about half each
    shuffled = {e.id: negative_contexts(examples, "shuffle")[e.id] for e in examples}
    for e in examples:
        assert mixed[e.id] is None or (mixed[e.id] == shuffled[e.id] and mixed[e.id] != e.context)
    assert negative_contexts(list(reversed(examples)), "mix") == mixed      # a stable choice per example
