"""Did personalization work? The personal model against its base, on the user's held-out examples.

For every held-out example (request q, the user's context c) each model answers K times, sampled
exactly as the pairs are (`PairSettings.sampling()`, the same trimming and loop filter). Then:

- context identification (the headline): every answer is scored under the base π₀ with its true
  context and with M−1 distractor contexts of other examples that share no document with it; it is
  identified when the true context scores highest (chance 1/M). An answer that uses *this* person's
  context carries information about it: this is what mutual information means, bounded and judge-free;
- fixed-text MI: the base's own answers with context (no sampling noise between the models),
  [log πθ(y|c,q) − log πθ(y|q)] − [log π₀(y|c,q) − log π₀(y|q)] per token;
- MI per token of the sampled answers under the base, answer length, loop rate, verbatim-copy share
  (answer 8-grams found in the context) and coherence (π₀'s log-likelihood per token of the answer
  given (c, q)): use of the context must not come from parroting or derailing;
- on held-out emails the user answered: log-likelihood per token and ROUGE-L of their real reply;
- perplexity of a neutral text shipped with the project, a guard on general ability.
Means come with bootstrap 95% CIs over examples; gains are paired (same example, both models).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .evaluate import (ci_dict, continuation_logp, copy_share, identification, median, rouge_l,
                       trimmed_mean)
from .options import option
from .progress import ProgressCallback, counting, report
from .prompt_format import ChatTemplate, chat_messages
from .scoring import PRECISIONS, matmul_precision
from .workspace import write_text_atomic

NEUTRAL_TEXT = Path(__file__).resolve().parent / "data" / "neutral.txt"


@dataclass(frozen=True)
class EvalSettings:
    writing: int = option(100, "held-out pieces of your own writing (notes, replies you wrote) scored in place, at "
                          "most: the headline", flag="--eval-writing", low=0)
    writing_tokens: int = option(256, "each held-out text scored up to this many tokens (whole sentences)",
                                 flag="--eval-writing-tokens", low=8)
    examples: int = option(24, "held-out examples to evaluate on, at most", flag="--eval-examples", low=0)
    answers: int = option(2, "K: answers sampled per example and model", flag="--eval-answers", low=1)
    contexts: int = option(4, "M: the true context and M−1 distractors in the identification test",
                           flag="--eval-contexts", low=1)
    seed: int = option(1234, "evaluation sampling seed", flag="--eval-seed")
    samples_shown: int = option(2, "before/after answers shown in the report", flag="--samples-shown", low=0)
    scoring: str = option("fp32", "how answers are scored: fp32 (exact), or bf16-matmul (fp32 with bfloat16 matrix "
                          "products: ~1.3x faster where the CPU has AMX/AVX-512 BF16, but the fixed-text MI gain "
                          "moves by ~0.003 nats/token; BENCHMARKS.md)",
                          choices=PRECISIONS, flag="--eval-scoring")


_ci = ci_dict


def _compare(personal: Sequence[float], base: Sequence[float]) -> dict:
    return {"personal": _ci(personal), "base": _ci(base), "gain": _ci([p - b for p, b in zip(personal, base)])}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def load_torch_model(folder: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)


def text_logp(model, tokenizer, text: str, window: int) -> tuple[float, int]:
    """(log-likelihood of `text`'s tokens after its first, in windows of `window` tokens; their number)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        piece = ids[start:start + window + 1]
        if len(piece) < 2:
            break
        total += continuation_logp(model, piece[:1], piece[1:])
        count += len(piece) - 1
    return total, count


def heldout_examples(store, pairs_settings, limit: int, contexts: int = EvalSettings.contexts) -> list[dict]:
    """Held-out examples of the user's data: request, context, distractor contexts, real reply if any.

    All examples the store supports are split with the same stable rule as the pairs stage (an
    example's id decides), so none of these was trained on; they need no pairs. The distractors of an
    example are the contexts of `contexts`−1 other examples that share no document with it, the ones
    closest to its own context in vocabulary: on the same subject, an answer is told apart only by
    what it takes from *this* context, not by the subject the request already names."""
    from .pairs.examples import build_examples, content_words, stable_fraction

    everything = build_examples(store, max_examples=10 ** 9, heldout_fraction=pairs_settings.heldout_fraction,
                                context_tokens=pairs_settings.context_tokens, own_document=pairs_settings.own_document)
    words = {e.id: content_words(" ".join(e.context)) for e in everything}

    def closeness(e, o) -> tuple[float, float]:
        union = len(words[e.id] | words[o.id]) or 1
        return (-len(words[e.id] & words[o.id]) / union, stable_fraction(f"distractor:{e.id}:{o.id}"))

    out = []
    for e in [e for e in everything if e.heldout][:limit]:
        mine, seen = set(e.context_docs), {e.context}
        distractors = []
        for o in sorted((o for o in everything if not mine & set(o.context_docs)), key=lambda o: closeness(e, o)):
            if len(distractors) == contexts - 1:
                break
            if o.context not in seen:
                seen.add(o.context)
                distractors.append(list(o.context))
        out.append({"id": e.id, "source": e.source, "request": e.request, "context": list(e.context),
                    "distractors": distractors, "reference": e.reference})
    return out


def _sample(gguf: Path, examples: Sequence[dict], pair_settings, answers: int, seed: int,
            should_stop: Optional[Callable[[], bool]] = None, cache=None) -> list[list[dict]]:
    """K answers per example, sampled and trimmed as the pairs are; each {text, cut, loop, truncated,
    cached}. An answer's seed comes from the example's id (`eval_cache.answer_seed`); with `cache` (an
    `EvalCache`) an answer sampled before from the same model file, prompt, settings and seed is
    reused, and llama.cpp is not loaded when all are. A stop leaves the unsampled answers out."""
    from .eval_cache import answer_seed, sample_completions
    from .pairs.filters import is_degenerate, trim_cut

    template = ChatTemplate.from_gguf(gguf)
    prompts, seeds = [], []
    for e in examples:
        prompt = template.render(chat_messages(e["context"], e["request"], context_in=pair_settings.context_in))
        for k in range(answers):            # copies side by side: the prompt is decoded once
            prompts.append(prompt)
            seeds.append(answer_seed(seed, e["id"], k))
    completions = sample_completions(gguf, prompts, seeds, pair_settings.sampling(), pair_settings.n_parallel, cache,
                                     should_stop)
    out = []
    for n in range(len(examples)):
        group = []
        for c in completions[n * answers:(n + 1) * answers]:
            if c is None:
                continue
            raw, finish, cached = c
            trimmed = trim_cut(raw, finish)
            text = (trimmed if trimmed is not None else raw).strip()
            group.append({"text": text, "cut": trimmed is None, "loop": is_degenerate(text),
                          "truncated": finish == "length", "cached": cached})
        out.append(group)
    return out


def _score_base(scorer, examples: Sequence[dict], answers: list[list[str]], context_in: str,
                per: Optional[int] = None, on_prompt: Optional[Callable[[int, int], None]] = None) -> list[dict]:
    """Per example: each answer's score under its true context, each distractor and no context, and
    the user's real reply (if the example has one) under the true context, scored with the answers:
    its prompt is run once. `per`: score each model's answers (`per` of them, side by side in
    answers[i]) and the real reply by calls of their own, so that a model's answers are scored
    together alike in every evaluation (what `eval_cache.CachedScorer` needs to give back exact scores)."""
    jobs = []                                  # (context key, example index, which)
    for i, e in enumerate(examples):
        jobs.append((tuple(e["context"]), i, "true"))
        jobs += [(tuple(d), i, j) for j, d in enumerate(e["distractors"])]
        jobs.append(((), i, "none"))
    jobs.sort(key=lambda j: (j[0], j[1]))      # the same context one after the other: its cache is reused
    scores = [{"distractors": [None] * len(e["distractors"]), "reference": None} for e in examples]
    for n_done, (context, i, which) in enumerate(jobs, 1):
        texts = list(answers[i])
        if which == "true" and examples[i].get("reference"):
            texts.append(examples[i]["reference"])
        messages = chat_messages(list(context) or None, examples[i]["request"], context_in=context_in)
        if per:
            calls = [texts[n:n + per] for n in range(0, len(answers[i]), per)] + [texts[len(answers[i]):]]
            got = [s for call in calls for s in scorer.score(messages, call)]
        else:
            got = scorer.score(messages, texts)
        if which == "true":
            scores[i]["true"], scores[i]["reference"] = got[:len(answers[i])], (got[len(answers[i]):] or [None])[0]
        elif which == "none":
            scores[i]["none"] = got
        else:
            scores[i]["distractors"][which] = got
        if on_prompt is not None:
            on_prompt(n_done, len(jobs))
    return scores


def _score_personal(scorer, examples: Sequence[dict], answers: list[list[str]], scores: list[dict], K: int,
                    context_in: str) -> tuple[list[float], list[float], list[float], list[tuple[float, int]]]:
    """Under the personal model: the fixed-text MI per token of the base's own answers (answers[i][K:])
    per example, for the personal model, the base (from `scores`, `_score_base`'s) and the gain, and the
    user's real replies (examples that have one, in order), scored by a call of their own after the
    answers under the true context (its prompt is run once)."""
    fixed_personal, fixed_base, fixed_gain, reply_personal = [], [], [], []
    for i, e in enumerate(examples):   # the base's own answers with context: the same texts for both models
        base_texts = answers[i][K:2 * K]
        with_context = chat_messages(e["context"], e["request"], context_in=context_in)
        with_c = scorer.score(with_context, base_texts)
        if e.get("reference"):                                        # the real reply, under the same prompt
            reply_personal += scorer.score(with_context, [e["reference"]])
        without = scorer.score(chat_messages(None, e["request"], context_in=context_in), base_texts)
        theta = [(a[0] - b[0]) / max(1, a[1]) for a, b in zip(with_c, without)]
        zero = [(scores[i]["true"][K + k][0] - scores[i]["none"][K + k][0]) / max(1, scores[i]["true"][K + k][1])
                for k in range(K)]
        fixed_personal.append(_mean(theta))
        fixed_base.append(_mean(zero))
        fixed_gain.append(_mean([t - z for t, z in zip(theta, zero)]))
    return fixed_personal, fixed_base, fixed_gain, reply_personal


def _per_model(examples, groups, scores, offset: int, count: int) -> dict:
    """Per-example means over one model's K answers (they sit at answers[offset:offset+count])."""
    ident, mi_tok, coherence, length, loops, copies = [], [], [], [], [], []
    for e, group, s in zip(examples, groups, scores):
        rows = range(offset, offset + count)
        true = [s["true"][r] for r in rows]
        none = [s["none"][r] for r in rows]
        ident.append(_mean([identification(true[k][0], [d[r][0] for d in s["distractors"]])
                            for k, r in enumerate(rows)]))
        mi_tok.append(_mean([(t[0] - n[0]) / max(1, t[1]) for t, n in zip(true, none)]))
        coherence.append(_mean([t[0] / max(1, t[1]) for t in true]))
        length.append(_mean([float(t[1]) for t in true]))
        loops.append(_mean([float(a["loop"]) for a in group]))
        copies.append(_mean([copy_share(a["text"], e["context"]) for a in group]))
    return {"identification": ident, "mi_per_token": mi_tok, "coherence": coherence, "tokens": length,
            "loop": loops, "copy": copies}


def evaluate_models(personal_gguf: Path, personal_checkpoint: Path, base_gguf: Path, base_checkpoint: Path,
                    examples: Sequence[dict], settings: EvalSettings = EvalSettings(), pair_settings=None, *,
                    progress: Optional[ProgressCallback] = None,
                    should_stop: Optional[Callable[[], bool]] = None,
                    previous: Optional[tuple[Path, Path]] = None, cache: bool = True,
                    writing: Sequence[dict] = ()) -> Optional[dict]:
    """The report as a dict (see the module's docstring); None when `should_stop()` turned true
    `writing`: held-out pieces of the user's own writing (`own_writing.writing_documents`), scored in
    place under both models: the report's `writing` and its first sentence.
    (checked between the parts: sampling stops at once, scoring at the end of its part).
    `previous` (GGUF, checkpoint): the model an incremental run continued, measured alike on the same
    examples and answers scored under the same base; the report then holds `previous`.
    `cache`: reuse, and keep, answers and scores in the workspace's evaluation cache (`eval_cache`):
    what an earlier evaluation computed for the same model files, prompts and settings is not computed
    again; the report is the one it would be without the cache (what is reused, exactly; what is computed
    anew after other work in the process, up to fp32 rounding). Its `reuse` tells what was reused."""
    import contextlib

    from .eval_cache import EvalCache

    with EvalCache.opened() if cache else contextlib.nullcontext() as kept:
        return _evaluate(personal_gguf, personal_checkpoint, base_gguf, base_checkpoint, examples, settings,
                         pair_settings, progress, should_stop or (lambda: False), previous, kept, writing)


def _evaluate(personal_gguf: Path, personal_checkpoint: Path, base_gguf: Path, base_checkpoint: Path,
              examples: Sequence[dict], settings: EvalSettings, pair_settings, progress: Optional[ProgressCallback],
              stop: Callable[[], bool], previous: Optional[tuple[Path, Path]], cache,
              writing: Sequence[dict] = ()) -> Optional[dict]:
    """`evaluate_models` with the cache open (an `EvalCache`, or None)."""
    from .eval_cache import CachedScorer
    from .own_writing import score_writing, writing_summary
    from .pairs.stage import PairSettings

    pair_settings = pair_settings or PairSettings()
    context_in, K = pair_settings.context_in, settings.answers
    start = time.perf_counter()
    extra = int(previous is not None)
    steps = 5 + 2 * extra
    personal, base, earlier = [], [], []
    if examples:   # a tiny run may hold out none: then only the perplexity guard is measured
        report(progress, "evaluate", "sampling answers from the personal model", done=0, total=steps, unit="parts")
        personal = _sample(personal_gguf, examples, pair_settings, K, settings.seed, stop, cache)
        if stop():
            return None
        report(progress, "evaluate", "sampling answers from the base model", done=1, total=steps, unit="parts")
        base = _sample(base_gguf, examples, pair_settings, K, settings.seed, stop, cache)
        if stop():
            return None
        if previous is not None:
            report(progress, "evaluate", "sampling answers from the previous model", done=2, total=steps, unit="parts")
            earlier = _sample(previous[0], examples, pair_settings, K, settings.seed, stop, cache)
            if stop():
                return None
    # personal answers first, then the base's, then the previous model's
    groups = [p + b + q for p, b, q in zip(personal, base, earlier or [[] for _ in examples])]
    texts = [[a["text"] for a in g] for g in groups]
    neutral = NEUTRAL_TEXT.read_text(encoding="utf-8")
    replies = [i for i, e in enumerate(examples) if e.get("reference")]
    # each model is loaded only if something it scores is not cached, and let go after its part
    scorers = {"base": CachedScorer(base_checkpoint, settings.scoring, cache, load_torch_model),
               "personal": CachedScorer(personal_checkpoint, settings.scoring, cache, load_torch_model)}

    report(progress, "evaluate", "scoring every answer under the base model", done=2 + extra, total=steps, unit="parts")
    with matmul_precision(settings.scoring):
        scores = _score_base(scorers["base"], examples, texts, context_in, per=K,
                             on_prompt=counting(progress, "evaluate", "scoring the answers under the base model", "prompts"))
        on_text = counting(progress, "evaluate", "scoring your held-out writing under the base model", "texts")
        writing_base = score_writing(scorers["base"], writing, context_in, on_text)
    reply_base = [scores[i]["reference"] for i in replies]
    ppl_base = scorers["base"].perplexity(neutral)
    scorers["base"].release()
    if stop():
        return None

    report(progress, "evaluate", "scoring under the personal model", done=3 + extra, total=steps, unit="parts")
    with matmul_precision(settings.scoring):
        fixed_personal, fixed_base, fixed_gain, reply_personal = _score_personal(scorers["personal"], examples, texts,
                                                                                 scores, K, context_in)
        on_text = counting(progress, "evaluate", "scoring your held-out writing under the personal model", "texts")
        writing_personal = score_writing(scorers["personal"], writing, context_in, on_text)
    ppl_personal = scorers["personal"].perplexity(neutral)
    scorers["personal"].release()
    if previous is not None and stop():
        return None
    if previous is not None:
        report(progress, "evaluate", "scoring under the previous model", done=steps - 2, total=steps, unit="parts")
        scorers["previous"] = CachedScorer(previous[1], settings.scoring, cache, load_torch_model)
        with matmul_precision(settings.scoring):
            fixed_previous, _, _, _ = _score_personal(scorers["previous"], examples, texts, scores, K, context_in)
        ppl_previous = scorers["previous"].perplexity(neutral)
        scorers["previous"].release()

    report(progress, "evaluate", "summing up", done=steps - 1, total=steps, unit="parts")
    mp = _per_model(examples, personal, scores, 0, K)
    mb = _per_model(examples, base, scores, K, K)
    M = 1 + min((len(e["distractors"]) for e in examples), default=0)
    per_tok = lambda pairs: [lp / max(1, n) for lp, n in pairs]  # noqa: E731
    rouge = lambda model_answers: [_mean([rouge_l(a["text"], examples[i]["reference"]) for a in model_answers[i]])  # noqa: E731
                                   for i in replies]
    result = {
        "writing": {**writing_summary(writing, writing_base, writing_personal),
                    "text_tokens": settings.writing_tokens},
        "examples": len(examples),
        "example_ids": [e["id"] for e in examples],
        "settings": asdict(settings),
        "sampling": {**asdict(pair_settings.sampling()), "context_in": context_in,
                     "context_tokens": pair_settings.context_tokens},
        "identification": {"contexts": M, "answers": K, "chance": 1 / M if M else None, "judged_by": "base",
                           **_compare(mp["identification"], mb["identification"])},
        "fixed_text_mi_per_token": {"personal": _ci(fixed_personal), "base": _ci(fixed_base), "gain": _ci(fixed_gain)},
        "mi_per_token": {**_compare(mp["mi_per_token"], mb["mi_per_token"]),
                         "trimmed_mean": {"personal": trimmed_mean(mp["mi_per_token"]),
                                          "base": trimmed_mean(mb["mi_per_token"])},
                         "median": {"personal": median(mp["mi_per_token"]), "base": median(mb["mi_per_token"])}},
        "answer_tokens": {**_compare(mp["tokens"], mb["tokens"]),
                          "ratio": _mean(mp["tokens"]) / _mean(mb["tokens"]) if _mean(mb["tokens"]) else None},
        "loop_rate": _compare(mp["loop"], mb["loop"]),
        "copy_share": _compare(mp["copy"], mb["copy"]),
        "coherence": _compare(mp["coherence"], mb["coherence"]),
        "truncated_answers": {"personal": sum(a["truncated"] for g in personal for a in g),
                              "base": sum(a["truncated"] for g in base for a in g), "of": len(examples) * K},
        "replies": {"threads": len(replies),
                    "loglik_per_token": _compare(per_tok(reply_personal), per_tok(reply_base)),
                    "rouge_l": _compare(rouge(personal), rouge(base))},
        "neutral_perplexity": {"base": ppl_base, "personal": ppl_personal,
                               "change": ppl_personal / ppl_base - 1 if ppl_base else None},
        "samples": [{"request": e["request"], "base": b[0]["text"], "personal": p[0]["text"]}
                    for e, b, p in list(zip(examples, base, personal))[: settings.samples_shown]],
        "seconds": time.perf_counter() - start,
    }
    if previous is not None:
        mq = _per_model(examples, earlier, scores, 2 * K, K)
        result["previous"] = {
            "model": str(previous[0]),
            "identification": _ci(mq["identification"]),
            "fixed_text_mi_per_token": _ci(fixed_previous),
            "mi_per_token": _ci(mq["mi_per_token"]),
            "coherence": _ci(mq["coherence"]),
            "neutral_perplexity": ppl_previous,
            "gain": {"identification": _ci([p - q for p, q in zip(mp["identification"], mq["identification"])]),
                     "fixed_text_mi_per_token": _ci([p - q for p, q in zip(fixed_personal, fixed_previous)])},
        }
    result["reuse"] = _reuse(cache is not None, {"personal": personal, "base": base, "previous": earlier}, scorers)
    result["headline"] = headline(result)
    report(progress, "evaluate", "done", done=steps, total=steps, unit="parts", finished=True)
    return result


def _reuse(cached: bool, answers: dict[str, list[list[dict]]], scorers: dict) -> dict:
    """What the evaluation took from its cache and what it computed: answers per model sampled or
    reused, scores per scoring model computed or reused, and whether that model was loaded at all."""
    return {"cache": cached,
            "answers": {name: {"sampled": sum(not a["cached"] for g in groups for a in g),
                               "reused": sum(a["cached"] for g in groups for a in g)}
                        for name, groups in answers.items() if name in scorers},
            "scores": {name: {"computed": s.computed, "reused": s.reused, "model_loaded": s.loaded}
                       for name, s in scorers.items()}}


CEILING = 0.95      # identification of the base's answers at or above this leaves a gain no room to show


def headline(result: dict) -> str:
    """The report's opening, made from its own numbers: first whether the personal model writes more
    like the person on their own held-out writing (`own_writing.writing_sentence`), then the sampled
    answers' context identification, judged by the base (a second sentence when that test is at its
    ceiling)."""
    from .own_writing import writing_sentence

    return writing_sentence(result.get("writing")) + " " + identification_sentence(result)


def identification_sentence(result: dict) -> str:
    """Whether the personal model's sampled answers use the user's writing more than its base's, as
    the base judges them."""
    ident = result.get("identification") or {}
    gain = ident.get("gain") or {}
    if not gain.get("n"):
        return "There were no held-out requests to sample answers for, so the answers' use of your writing was not tested."
    lo, hi = gain["ci95"]
    p, b = ident["personal"]["mean"], ident["base"]["mean"]
    said = (f"Shown one of its answers, the base model could tell which of {ident['contexts']} pieces of your writing "
            f"it was written for {p:.0%} of the time for your personal model and {b:.0%} for the original model "
            f"(chance: {ident['chance']:.0%}; {gain['n']} held-out requests, {ident['answers']} answers each)")
    if lo > 0:
        said += ": your personal model uses your writing more than the original does."
    elif hi < 0:
        said += ": your personal model uses your writing less than the original does."
    else:
        said += ": the difference is within the measurement's noise."
    fixed = (result.get("fixed_text_mi_per_token") or {}).get("gain") or {}
    if b >= CEILING and fixed.get("n"):
        flo, fhi = fixed["ci95"]
        verdict = ("relies on your writing more than the original does" if flo > 0 else
                   "relies on your writing less than the original does" if fhi < 0 else
                   "relies on your writing as much as the original does, within the noise")
        said += (f" The original's answers are already told apart {b:.0%} of the time, so that test has no room to show "
                 f"more; scoring the same answers under both models, your personal model {verdict} "
                 f"({signed(fixed['mean'], 3)} nats per token, 95% CI {signed(flo, 3)} to {signed(fhi, 3)}).")
    return said


def gain_label(result: Optional[dict]) -> str:
    """A few characters for a list of runs: the writing PMI gain on the user's own held-out text (or,
    in a report from before it, the context-identification gain in points)."""
    writing = ((result or {}).get("writing") or {}).get("pmi_gain") or {}
    if writing.get("n"):
        return f"your writing {writing['mean']:+.3f} nats/token"
    gain = ((result or {}).get("identification") or {}).get("gain") or {}
    if not gain.get("n"):
        return ""
    return f"identification {100 * gain['mean']:+.0f} pts"


def signed(value: float, digits: int = 2, scale: float = 1.0) -> str:
    """`value` × `scale` with its sign, as the reports write every measure and gain: `+0.123`."""
    return f"{scale * value:+.{digits}f}"


def format_estimate(stat: dict, digits: int = 2, scale: float = 1.0, *, compact: bool = False) -> str:
    """A report's mean with its 95% CI (a model's measure or a gain), the one way it is written:
    `+20.0 (95% CI +10.0 to +30.0, n=20)`, or for a narrow table cell (`compact`) `+20.0 (+10.0 … +30.0)`;
    `n/a (no examples)` when it was measured on none. `scale` 100 writes a share as points."""
    if not stat.get("n"):
        return "n/a (no examples)"
    mean = signed(stat["mean"], digits, scale)
    lo, hi = (signed(v, digits, scale) for v in stat["ci95"])
    if compact:
        return f"{mean} ({lo} … {hi})"
    return f"{mean} (95% CI {lo} to {hi}, n={stat['n']})"


def _row(name: str, stat: dict, digits: int = 2, scale: float = 1.0) -> str:
    cells = [format_estimate(stat[k], digits, scale) for k in ("base", "personal", "gain")]
    return f"| {name} | " + " | ".join(cells) + " |"


def summary_markdown(result: dict, title: str = "Personalization report") -> str:
    ident, ppl, replies = result["identification"], result["neutral_perplexity"], result["replies"]
    lines = [
        f"# {title}", "", result["headline"], "", *_writing_markdown(result.get("writing")),
        f"On {result['examples']} held-out examples of your own data (never trained on); "
        f"{ident['answers']} answers per example from each model, sampled as the training pairs were "
        f"(temperature {result['sampling']['temperature']}, at most {result['sampling']['max_new_tokens']} tokens)."
        + (" That is too few to tell: personalize with more of your writing." if result["examples"] < 5 else ""), "",
        "| measure | original (base) | personal | gain |", "|---|---|---|---|",
        _row(f"context identified among {ident['contexts']} (chance {100 * (ident['chance'] or 0):.0f}%), %", ident, 1, 100),
        _row("fixed-text MI per token (nats)", result["fixed_text_mi_per_token"], 3),
        _row("MI per token of the answers (nats)", result["mi_per_token"], 3),
        _row("answer length (tokens)", result["answer_tokens"], 1),
        _row("repetition loops, %", result["loop_rate"], 1, 100),
        _row("copied verbatim from your writing (8-grams), %", result["copy_share"], 1, 100),
        _row("coherence: log-likelihood per token under the base", result["coherence"], 3),
        _row(f"your real replies: log-likelihood per token ({replies['threads']} threads)", replies["loglik_per_token"], 3),
        _row(f"your real replies: ROUGE-L, % ({replies['threads']} threads)", replies["rouge_l"], 1, 100),
        "",
        *([f"Answers that reached the {result['sampling']['max_new_tokens']}-token limit (cut back to their last whole "
           f"sentence): personal {result['truncated_answers']['personal']}, original "
           f"{result['truncated_answers']['base']} of {result['truncated_answers']['of']} each.", ""]
          if result.get("truncated_answers") else []),
        "**General ability** (perplexity of a neutral text, lower is better): "
        f"base {ppl['base']:.2f}, personal {ppl['personal']:.2f}"
        + (f" ({ppl['change']:+.1%})" if ppl.get("change") is not None else ""), "",
        "How to read it: an answer that uses *your* writing lets the base model tell your context from "
        "others'; MI is how much more likely the answer is with your context than without; copying and "
        "coherence show whether that comes from parroting your text or from derailing.", "",
    ]
    lines += _previous_markdown(result)
    for n, s in enumerate(result.get("samples", []), 1):
        lines += [f"## Sample {n}", "", "**Request:** " + " ".join(s["request"].split())[:400], "",
                  "**Before (base):** " + s["base"], "", "**After (personal):** " + s["personal"], ""]
    return "\n".join(lines)


def _writing_markdown(w: Optional[dict]) -> list[str]:
    """The headline's table: the person's own held-out writing scored in place under both models."""
    if not w or not w.get("documents"):
        return []
    row = lambda name, stat, d=3: f"| {name} | {format_estimate(stat, d)} |"  # noqa: E731
    return [
        f"## Your own writing ({w['documents']} held-out texts: {w['notes']} notes, {w['replies']} replies; "
        f"each scored up to {w.get('text_tokens', '?')} tokens)", "",
        "| measure, nats per token | personal − original |", "|---|---|",
        row("writing PMI gain: how much more your other writing makes your real text likely", w["pmi_gain"]),
        row("placebo: the same with someone else's context (must gain less)", w["placebo_gain"]),
        row("true minus placebo", w["true_minus_placebo"]),
        row("likelihood of your real text with your context", w["likelihood_gain"]),
        *(row(f"writing PMI gain on {kind}s", stat) for kind, stat in w["by_kind"].items() if stat.get("n")), "",
        f"Improved on {w['improved']:.0%} of the texts. PMI of your text under the original: "
        f"{format_estimate(w['pmi']['base'], 3)}; under the personal model: {format_estimate(w['pmi']['personal'], 3)}.",
        "", "## Sampled answers (judged by the base model)", "",
    ]


def _previous_markdown(result: dict) -> list[str]:
    """New vs previous vs base, for an incremental run's report (nothing otherwise)."""
    prev = result.get("previous")
    if not prev:
        return []
    ident, fixed, ppl = result["identification"], result["fixed_text_mi_per_token"], result["neutral_perplexity"]
    row = lambda name, b, q, p, g, d=2, sc=1.0: (f"| {name} | {format_estimate(b, d, sc, compact=True)} | "  # noqa: E731
                                                f"{format_estimate(q, d, sc, compact=True)} | "
                                                f"{format_estimate(p, d, sc, compact=True)} | "
                                                f"{format_estimate(g, d, sc, compact=True)} |")
    return [
        "## New vs previous vs base", "",
        f"This run continued the previous model ({Path(prev['model']).name}) on what is new; all three are measured "
        "on the same held-out examples.", "",
        "| measure | base | previous | new | new − previous |", "|---|---|---|---|---|",
        row("context identified, %", ident["base"], prev["identification"], ident["personal"],
            prev["gain"]["identification"], 1, 100),
        row("fixed-text MI per token (nats)", fixed["base"], prev["fixed_text_mi_per_token"], fixed["personal"],
            prev["gain"]["fixed_text_mi_per_token"], 3),
        f"| neutral perplexity | {ppl['base']:.2f} | {prev['neutral_perplexity']:.2f} | {ppl['personal']:.2f} | "
        f"{ppl['personal'] - prev['neutral_perplexity']:+.2f} |", "",
    ]


def write_report(result: dict, folder: Path) -> tuple[Path, Path]:
    """report.json and report.md in `folder`, each written atomically."""
    folder = Path(folder)
    out = []
    for name, text in (("report.json", json.dumps(result, indent=2, ensure_ascii=False)),
                       ("report.md", summary_markdown(result))):
        out.append(write_text_atomic(folder / name, text))
    return out[0], out[1]
