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

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..context.overlap import copy_share
from ..inference.prompt_format import ChatTemplate, chat_messages
from ..inference.scoring import load_torch_model, matmul_precision
from ..progress import ProgressCallback, counting, report
from .own_writing import score_writing, writing_summary
from .report import headline
from .settings import NEUTRAL_TEXT, EvalSettings
from .statistics import ci_dict, identification, median, rouge_l, trimmed_mean

_ci = ci_dict


def _compare(personal: Sequence[float], base: Sequence[float]) -> dict:
    return {"personal": _ci(personal), "base": _ci(base), "gain": _ci([p - b for p, b in zip(personal, base)])}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def heldout_examples(store, pairs_settings, limit: int, contexts: int = EvalSettings.contexts) -> list[dict]:
    """Held-out examples of the user's data: request, context, distractor contexts, real reply if any.

    All examples the store supports are split with the same stable rule as the pairs stage (an
    example's id decides), so none of these was trained on; they need no pairs. The distractors of an
    example are the contexts of `contexts`−1 other examples that share no document with it, the ones
    closest to its own context in vocabulary: on the same subject, an answer is told apart only by
    what it takes from *this* context, not by the subject the request already names."""
    from ..context.retrieval import content_words
    from ..pairs.examples import build_examples, stable_fraction

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
    cached}. An answer's seed comes from the example's id (`cache.answer_seed`); with `cache` (an
    `EvalCache`) an answer sampled before from the same model file, prompt, settings and seed is
    reused, and llama.cpp is not loaded when all are. A stop leaves the unsampled answers out."""
    from ..pairs.filters import is_degenerate, trim_cut
    from .cache import answer_seed, sample_completions

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
    together alike in every evaluation (what `cache.CachedScorer` needs to give back exact scores)."""
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
    `cache`: reuse, and keep, answers and scores in the workspace's evaluation cache (`evaluation.cache`):
    what an earlier evaluation computed for the same model files, prompts and settings is not computed
    again; the report is the one it would be without the cache (what is reused, exactly; what is computed
    anew after other work in the process, up to fp32 rounding). Its `reuse` tells what was reused."""
    import contextlib

    from .cache import EvalCache

    with EvalCache.opened() if cache else contextlib.nullcontext() as kept:
        return _evaluate(personal_gguf, personal_checkpoint, base_gguf, base_checkpoint, examples, settings,
                         pair_settings, progress, should_stop or (lambda: False), previous, kept, writing)


def _evaluate(personal_gguf: Path, personal_checkpoint: Path, base_gguf: Path, base_checkpoint: Path,
              examples: Sequence[dict], settings: EvalSettings, pair_settings, progress: Optional[ProgressCallback],
              stop: Callable[[], bool], previous: Optional[tuple[Path, Path]], cache,
              writing: Sequence[dict] = ()) -> Optional[dict]:
    """`evaluate_models` with the cache open (an `EvalCache`, or None)."""
    from ..pairs.settings import PairSettings
    from .cache import CachedScorer

    parts = _Parts(examples, settings, pair_settings or PairSettings(), progress, stop, previous is not None)
    start = time.perf_counter()
    answers = parts.sample(personal_gguf, base_gguf, previous[0] if previous is not None else None, cache)
    if answers is None:
        return None
    texts = answers.texts()
    neutral = NEUTRAL_TEXT.read_text(encoding="utf-8")
    # each model is loaded only if something it scores is not cached, and let go after its part
    scorers = {"base": CachedScorer(base_checkpoint, settings.scoring, cache, load_torch_model),
               "personal": CachedScorer(personal_checkpoint, settings.scoring, cache, load_torch_model)}
    base = parts.under_base(scorers["base"], texts, writing, neutral)
    if stop():
        return None
    personal = parts.under_personal(scorers["personal"], texts, base.scores, writing, neutral)
    if previous is not None:
        if stop():
            return None
        scorers["previous"] = CachedScorer(previous[1], settings.scoring, cache, load_torch_model)
        earlier = parts.under_previous(scorers["previous"], texts, base.scores, neutral)

    parts.announce("summing up", parts.steps - 1)
    mp = _per_model(examples, answers.personal, base.scores, 0, parts.K)
    mb = _per_model(examples, answers.base, base.scores, parts.K, parts.K)
    result = parts.result(answers, base, personal, writing, mp, mb, start)
    if previous is not None:
        result["previous"] = parts.previous(previous[0], answers, base.scores, mp, personal, earlier)
    result["reuse"] = _reuse(cache is not None, answers.by_model(), scorers)
    result["headline"] = headline(result)
    report(progress, "evaluate", "done", done=parts.steps, total=parts.steps, unit="parts", finished=True)
    return result


@dataclass
class _Answers:
    """Each model's K answers per example (`_sample`'s); `previous` is empty without a previous model."""
    personal: list[list[dict]]
    base: list[list[dict]]
    previous: list[list[dict]]

    def texts(self) -> list[list[str]]:
        """Per example, the texts of every model's answers side by side: personal answers first, then
        the base's, then the previous model's (`_score_base`'s `answers`)."""
        groups = [p + b + q for p, b, q in zip(self.personal, self.base, self.previous or [[] for _ in self.personal])]
        return [[a["text"] for a in g] for g in groups]

    def by_model(self) -> dict[str, list[list[dict]]]:
        return {"personal": self.personal, "base": self.base, "previous": self.previous}


@dataclass
class _UnderBase:
    """What the base measured: every answer's scores (`_score_base`'s), the held-out writing's, the real
    replies' (examples that have one, in order) and the neutral text's perplexity."""
    scores: list[dict]
    writing: list[dict]
    replies: list
    perplexity: float


@dataclass
class _UnderTuned:
    """What a trained model (personal or previous) measured: the fixed-text MI per token of the base's
    answers under it, under the base and the gain (`_score_personal`'s), the real replies', the held-out
    writing's (None where not scored) and the neutral text's perplexity."""
    fixed: list[float]
    fixed_base: list[float]
    fixed_gain: list[float]
    replies: list
    writing: Optional[list[dict]]
    perplexity: float


class _Parts:
    """The parts of one evaluation over its held-out examples, each told as a step of `steps`: sampling
    each model's answers, scoring under each model, summing up."""

    def __init__(self, examples: Sequence[dict], settings: EvalSettings, pair_settings,
                 progress: Optional[ProgressCallback], stop: Callable[[], bool], with_previous: bool) -> None:
        self.examples, self.settings, self.pair_settings = examples, settings, pair_settings
        self.progress, self.stop = progress, stop
        self.context_in, self.K = pair_settings.context_in, settings.answers
        self.extra = int(with_previous)
        self.steps = 5 + 2 * self.extra
        self.replies = [i for i, e in enumerate(examples) if e.get("reference")]

    def announce(self, message: str, done: int) -> None:
        report(self.progress, "evaluate", message, done=done, total=self.steps, unit="parts")

    def sample(self, personal_gguf: Path, base_gguf: Path, previous_gguf: Optional[Path], cache) -> Optional[_Answers]:
        """Each model's answers, one model after the other; None when stopped."""
        models = [("personal", personal_gguf), ("base", base_gguf)] + ([("previous", previous_gguf)]
                                                                        if previous_gguf is not None else [])
        answers = {"personal": [], "base": [], "previous": []}
        if self.examples:   # a tiny run may hold out none: then only the perplexity guard is measured
            for done, (name, gguf) in enumerate(models):
                self.announce(f"sampling answers from the {name} model", done)
                answers[name] = _sample(gguf, self.examples, self.pair_settings, self.K, self.settings.seed, self.stop,
                                        cache)
                if self.stop():
                    return None
        return _Answers(**answers)

    def under_base(self, scorer, texts: list[list[str]], writing: Sequence[dict], neutral: str) -> _UnderBase:
        self.announce("scoring every answer under the base model", 2 + self.extra)
        with matmul_precision(self.settings.scoring):
            on_prompt = counting(self.progress, "evaluate", "scoring the answers under the base model", "prompts")
            scores = _score_base(scorer, self.examples, texts, self.context_in, per=self.K, on_prompt=on_prompt)
            on_text = counting(self.progress, "evaluate", "scoring your held-out writing under the base model", "texts")
            writing_base = score_writing(scorer, writing, self.context_in, on_text)
        replies = [scores[i]["reference"] for i in self.replies]
        perplexity = scorer.perplexity(neutral)
        scorer.release()
        return _UnderBase(scores, writing_base, replies, perplexity)

    def under_personal(self, scorer, texts: list[list[str]], scores: list[dict], writing: Sequence[dict],
                       neutral: str) -> _UnderTuned:
        self.announce("scoring under the personal model", 3 + self.extra)
        with matmul_precision(self.settings.scoring):
            fixed = _score_personal(scorer, self.examples, texts, scores, self.K, self.context_in)
            on_text = counting(self.progress, "evaluate", "scoring your held-out writing under the personal model",
                               "texts")
            writing_personal = score_writing(scorer, writing, self.context_in, on_text)
        perplexity = scorer.perplexity(neutral)
        scorer.release()
        return _UnderTuned(*fixed, writing_personal, perplexity)

    def under_previous(self, scorer, texts: list[list[str]], scores: list[dict], neutral: str) -> _UnderTuned:
        self.announce("scoring under the previous model", self.steps - 2)
        with matmul_precision(self.settings.scoring):
            fixed = _score_personal(scorer, self.examples, texts, scores, self.K, self.context_in)
        perplexity = scorer.perplexity(neutral)
        scorer.release()
        return _UnderTuned(*fixed, None, perplexity)

    def result(self, answers: _Answers, base: _UnderBase, personal: _UnderTuned, writing: Sequence[dict],
               mp: dict, mb: dict, start: float) -> dict:
        """The report's measures (see the module's docstring); `mp`, `mb`: `_per_model`'s of the personal
        model and the base."""
        examples, settings, pair_settings, K = self.examples, self.settings, self.pair_settings, self.K
        M = 1 + min((len(e["distractors"]) for e in examples), default=0)
        return {
            "writing": {**writing_summary(writing, base.writing, personal.writing),
                        "text_tokens": settings.writing_tokens},
            "examples": len(examples),
            "example_ids": [e["id"] for e in examples],
            "settings": asdict(settings),
            "sampling": {**asdict(pair_settings.sampling()), "context_in": self.context_in,
                         "context_tokens": pair_settings.context_tokens},
            "identification": {"contexts": M, "answers": K, "chance": 1 / M if M else None, "judged_by": "base",
                               **_compare(mp["identification"], mb["identification"])},
            "fixed_text_mi_per_token": {"personal": _ci(personal.fixed), "base": _ci(personal.fixed_base),
                                        "gain": _ci(personal.fixed_gain)},
            "mi_per_token": {**_compare(mp["mi_per_token"], mb["mi_per_token"]),
                             "trimmed_mean": {"personal": trimmed_mean(mp["mi_per_token"]),
                                              "base": trimmed_mean(mb["mi_per_token"])},
                             "median": {"personal": median(mp["mi_per_token"]), "base": median(mb["mi_per_token"])}},
            "answer_tokens": {**_compare(mp["tokens"], mb["tokens"]),
                              "ratio": _mean(mp["tokens"]) / _mean(mb["tokens"]) if _mean(mb["tokens"]) else None},
            "loop_rate": _compare(mp["loop"], mb["loop"]),
            "copy_share": _compare(mp["copy"], mb["copy"]),
            "coherence": _compare(mp["coherence"], mb["coherence"]),
            "truncated_answers": {"personal": sum(a["truncated"] for g in answers.personal for a in g),
                                  "base": sum(a["truncated"] for g in answers.base for a in g),
                                  "of": len(examples) * K},
            "replies": {"threads": len(self.replies),
                        "loglik_per_token": _compare(_per_token(personal.replies), _per_token(base.replies)),
                        "rouge_l": _compare(self._rouge(answers.personal), self._rouge(answers.base))},
            "neutral_perplexity": {"base": base.perplexity, "personal": personal.perplexity,
                                   "change": personal.perplexity / base.perplexity - 1 if base.perplexity else None},
            "samples": [{"request": e["request"], "base": b[0]["text"], "personal": p[0]["text"]}
                        for e, b, p in list(zip(examples, answers.base, answers.personal))[: settings.samples_shown]],
            "seconds": time.perf_counter() - start,
        }

    def _rouge(self, model_answers: list[list[dict]]) -> list[float]:
        """Per example with a real reply: the mean ROUGE-L of a model's answers against it."""
        return [_mean([rouge_l(a["text"], self.examples[i]["reference"]) for a in model_answers[i]])
                for i in self.replies]

    def previous(self, model: Path, answers: _Answers, scores: list[dict], mp: dict, personal: _UnderTuned,
                 earlier: _UnderTuned) -> dict:
        """The previous model (an incremental run's start), measured alike, and the personal model's gain on it."""
        mq = _per_model(self.examples, answers.previous, scores, 2 * self.K, self.K)
        return {
            "model": str(model),
            "identification": _ci(mq["identification"]),
            "fixed_text_mi_per_token": _ci(earlier.fixed),
            "mi_per_token": _ci(mq["mi_per_token"]),
            "coherence": _ci(mq["coherence"]),
            "neutral_perplexity": earlier.perplexity,
            "gain": {"identification": _ci([p - q for p, q in zip(mp["identification"], mq["identification"])]),
                     "fixed_text_mi_per_token": _ci([p - q for p, q in zip(personal.fixed, earlier.fixed)])},
        }


def _per_token(scored: Sequence[tuple[float, int]]) -> list[float]:
    """Log-likelihood per token of (log-likelihood, tokens) scores."""
    return [lp / max(1, n) for lp, n in scored]


def _reuse(cached: bool, answers: dict[str, list[list[dict]]], scorers: dict) -> dict:
    """What the evaluation took from its cache and what it computed: answers per model sampled or
    reused, scores per scoring model computed or reused, and whether that model was loaded at all."""
    return {"cache": cached,
            "answers": {name: {"sampled": sum(not a["cached"] for g in groups for a in g),
                               "reused": sum(a["cached"] for g in groups for a in g)}
                        for name, groups in answers.items() if name in scorers},
            "scores": {name: {"computed": s.computed, "reused": s.reused, "model_loaded": s.loaded}
                       for name, s in scorers.items()}}


