"""The pairs stage: y+ ~ π(·|c, q) and y- ~ π(·|c', q) from the base model, committed one by one.

With `candidates` > 1 each side is sampled several times and the pair kept is the one MIPO would
rank highest: every usable candidate y is scored under the base π₀ as
MI(y) = log π₀(y|c,q) − log π₀(y|q), the positive is the candidate with the largest MI and the
negative the one with the smallest. The scores come from the base's PyTorch checkpoint (fp32, or bf16
weights), or from the sampling model itself as it samples (`scoring` "sampler": llama.cpp, the Q8_0
copy of the base that the answers are drawn from; no second model in memory). A pair whose positive does not depend on the context
(MI ≤ `min_context_mi`) or whose two answers differ wildly in length is dropped with its reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..context.store import ContextStore
from ..context.text import estimate_tokens
from ..errors import MipoError
from ..options import option
from ..progress import ProgressCallback, report
from ..prompt_format import CONTEXT_IN, PLACEMENTS, ChatTemplate, chat_messages
from ..scoring import WEIGHT_PRECISIONS

SAMPLER = "sampler"                      # candidates scored by the sampling model in llama.cpp as it samples
CANDIDATE_SCORING = (SAMPLER,) + WEIGHT_PRECISIONS
from .examples import OWN_DOCUMENT, Example, build_examples, own_text_answer
from .filters import judge_pair, usable_answer
from .negatives import STRATEGIES, negative_contexts


@dataclass(frozen=True)
class PairSettings:
    examples: int = option(200, "at most this many training examples to make pairs from", low=1)
    heldout_pairs: int = option(16, "and pairs for at most this many held-out examples (held-out DPO metrics)", low=0)
    strategy: str = option("drop", "the negative's context: none, another example's, half each, or an unrelated "
                           "persona", choices=STRATEGIES,
                           labels={"drop": "no context (drop)", "shuffle": "another's context",
                                   "mix": "half each (mix)", "persona": "a persona"})
    samples: int = option(1, "pairs per example (one sample per side each, as in MIPO)", low=1)
    temperature: float = option(0.8, "sampling temperature (pairs and evaluation)", low=0)
    top_p: float = option(0.95, "nucleus sampling: the smallest set of tokens with this much probability", above=0, high=1)
    max_new_tokens: int = option(160, "longest sampled answer, in tokens", low=1)
    seed: int = option(0, "sampling seed")
    heldout_fraction: float = option(0.1, "share of the examples held out for evaluation", low=0, high=0.9)
    context_tokens: int = option(400, "the budget for your writing in each prompt, in tokens (chat uses the run's)", low=1)
    n_parallel: int = option(16, "sequences decoded together", flag="--parallel", low=1)
    context_in: str = option(CONTEXT_IN, "where the context goes in the prompt", choices=PLACEMENTS)
    candidates: int = option(2, "answers sampled per side; the pair with the largest MI margin is kept", low=1)
    min_context_mi: Optional[float] = option(0.0, "drop a pair whose positive's MI (nats) under the base is not above "
                                             "this", kind=float)
    max_length_ratio: float = option(2.0, "drop a pair whose longer answer has more than this × the shorter's tokens", low=1)
    own_document: str = option("exclude", "whether a note's own text may be in the context of the request to write "
                               "about it (include: the model learns to paste it back; BENCHMARKS.md)",
                               choices=OWN_DOCUMENT)
    copy_ceiling: Optional[float] = option(0.2, "a positive may copy at most this share of its word 8-grams from the "
                                           "context: the candidate with the largest MI among those that do not paste "
                                           "the context back (none left: the pair is dropped; empty: no ceiling)",
                                           kind=float, low=0, high=1)
    real_text: bool = option(False, "also train on your own text where it exists (your reply; a note's text for its "
                             "title) as the chosen answer against the base's answer without context (beyond the "
                             "paper; off: BENCHMARKS.md)")
    scoring: str = option("auto", "what scores the candidates: the base in PyTorch, with bf16 weights where this CPU "
                          "computes them natively (auto), fp32 or bf16; or the sampling model in llama.cpp as it samples "
                          "(sampler: no second model in memory, the same pair as fp32 for 42 of 48 examples measured)",
                          choices=CANDIDATE_SCORING, flag="--candidate-scoring")

    def sampling(self):
        """How answers are sampled — for pairs, and for the evaluation, which samples exactly alike."""
        from ..generation import Sampling

        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)

    def run_key(self, model_sha: str) -> str:
        """Runs with the same key continue each other; `examples` may grow without a new run."""
        how = ("examples", "heldout_pairs", "n_parallel", "scoring")     # how many, or how computed: not what
        keyed = {k: v for k, v in dataclasses.asdict(self).items() if k not in how}
        return hashlib.sha256(json.dumps([keyed, model_sha], sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class PairsSummary:
    run_id: int
    total: int = 0                 # pairs wanted in this run
    done_before: int = 0           # already there when this call started (resumed)
    made: int = 0                  # kept pairs made now
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0             # answers that hit the token limit (trimmed to their last sentence)
    scoring_seconds: float = 0.0   # scoring candidates under the base (part of `seconds`)
    scoring: str = ""              # what scored them: sampler, or the base with fp32 or bf16 weights (none: not scored)
    kept_mi: list = dataclasses.field(default_factory=list)   # (MI of y+, MI of y−) of the kept pairs
    stopped: bool = False          # asked to stop before the last pair; running again continues
    example_ids: list = dataclasses.field(default_factory=list)   # the examples this run made pairs for

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _run_id(store: ContextStore, settings: PairSettings, model_sha: str, model_name: str) -> int:
    return store.pair_run(settings.run_key(model_sha), dataclasses.asdict(settings),
                          {"sha256": model_sha, "name": model_name})


def latest_run(store: ContextStore) -> Optional[int]:
    return store.latest_pair_run()


def _seed(settings: PairSettings, example_id: str, sample: int, side: str, candidate: int = 0) -> int:
    tag = side if candidate == 0 else f"{side}:{candidate}"
    h = hashlib.sha256(f"{settings.seed}:{example_id}:{sample}:{tag}".encode()).hexdigest()
    return int(h[:8], 16)


class CandidateScorer:
    """MI(y) = log π₀(y|c,q) − log π₀(y|q) of answers under the base model (PyTorch).

    `precision` (one of scoring.WEIGHT_PRECISIONS): the model's weights in fp32, or in bfloat16 — 1.4–1.9×
    faster where the CPU computes bfloat16 natively, and the same pair as fp32 for 71 of 72 examples
    measured (BENCHMARKS.md, "Pair generation"); only the choice among candidates depends on these
    scores, nothing trained on does."""

    def __init__(self, checkpoint: Path, context_in: str, precision: str = "fp32") -> None:
        import torch

        from ..eval_report import load_torch_model
        from ..scoring import ResponseScorer, weight_precision

        model, tokenizer = load_torch_model(checkpoint)
        self.precision = weight_precision(precision)
        if self.precision == "bf16":
            model.to(torch.bfloat16)
        self.scorer = ResponseScorer(model, tokenizer)
        self.context_in = context_in

    def mi(self, e: Example, answers: list[str], completions: Optional[list] = None) -> list[float]:
        with_c = self.scorer.score(chat_messages(e.context, e.request, context_in=self.context_in), answers)
        without = self.scorer.score(chat_messages(None, e.request, context_in=self.context_in), answers)
        return [a[0] - b[0] for a, b in zip(with_c, without)]


class SampledScores:
    """MI(y) of answers from the log-probabilities the sampling model gave their tokens: each
    completion is generated with `scores` under [the prompt with the context, the prompt without]
    (`generation.BatchedGenerator.generate(score_under=...)`), and an answer trimmed to its last
    sentence counts the tokens that make it up. No second model; the sampling copy is the base's
    checkpoint in Q8_0 (its MI within ~1 nat of the fp32 checkpoint's, BENCHMARKS.md)."""

    precision = SAMPLER

    def mi(self, e: Example, answers: list[str], completions: list) -> list[float]:
        out = []
        for text, c in zip(answers, completions):
            n = c.tokens_for(text)
            out.append(float(sum(c.scores[0][:n]) - sum(c.scores[1][:n])))
        return out


def prompts_kept(settings: PairSettings) -> int:
    """Prompt caches the generator keeps when the sampler scores the candidates: both prompts of every
    example in flight (~n_parallel / 2 of them; fewer decoded some prompts twice, BENCHMARKS.md)."""
    return settings.n_parallel // 2 + 2


def select_pair(positives: list, negatives: list, mi_positive: list[float], mi_negative: list[float],
                settings: PairSettings, copied: Optional[list[float]] = None) -> tuple[Optional[str], int, int]:
    """(reason to drop or None, index of the positive, index of the negative) among usable
    candidates (their MI under the base given): the positive with the largest MI among those that
    copy no more than `settings.copy_ceiling` of their 8-grams from the context (`copied`, each
    positive's share), the negative with the smallest MI. MI under the base is largest for an
    answer that pastes the context back; the ceiling keeps those from being the ones trained
    towards. `positives`/`negatives` hold each candidate's token count."""
    eligible = list(range(len(positives)))
    if copied is not None and settings.copy_ceiling is not None:
        eligible = [i for i in eligible if copied[i] <= settings.copy_ceiling]
    n = min(range(len(negatives)), key=lambda i: mi_negative[i])
    if not eligible:
        return "positive copies the context", min(range(len(positives)), key=lambda i: copied[i]), n
    p = max(eligible, key=lambda i: mi_positive[i])
    if settings.min_context_mi is not None and mi_positive[p] <= settings.min_context_mi:
        return "positive ignores the context", p, n
    longer, shorter = max(positives[p], negatives[n]), max(1, min(positives[p], negatives[n]))
    if longer > settings.max_length_ratio * shorter:
        return "lengths differ too much", p, n
    return None, p, n


def generate_pairs(
    store: ContextStore,
    gguf_path: Path,
    settings: PairSettings = PairSettings(),
    *,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    count_tokens: Optional[Callable[[str], int]] = None,
    base_checkpoint: Optional[Path] = None,
    select: Optional[Callable[[Example], bool]] = None,
) -> PairsSummary:
    """Sample MIPO pairs for the store's examples with llama.cpp on `gguf_path`.

    `base_checkpoint` (the base model in PyTorch) scores the candidates; it is needed unless
    `settings.candidates` is 1 and `settings.min_context_mi` is None. Each finished pair is committed
    at once; running again with the same settings and model continues where the last run stopped
    (an interruption loses at most the pairs in flight). `select` keeps only the examples it accepts
    (an incremental run: those made from new or changed documents); none may be left then.
    """
    if settings.strategy not in STRATEGIES:
        raise MipoError(f"unknown negative strategy {settings.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if settings.context_in not in PLACEMENTS:
        raise MipoError(f"unknown context placement {settings.context_in!r}; choose one of {', '.join(PLACEMENTS)}")
    if settings.samples < 1 or settings.max_new_tokens < 1 or settings.examples < 1 or settings.candidates < 1:
        raise MipoError("examples, samples, candidates and max new tokens must be at least 1")
    scoring = settings.candidates > 1 or settings.min_context_mi is not None
    if settings.scoring not in CANDIDATE_SCORING:
        raise MipoError(f"unknown candidate scoring {settings.scoring!r}; choose one of {', '.join(CANDIDATE_SCORING)}")
    if scoring and settings.scoring != SAMPLER and base_checkpoint is None:
        raise MipoError("choosing pairs by MI with the base in PyTorch needs its checkpoint (base_checkpoint)")
    from ..modelio.gguf_file import cached_sha256, inspect_gguf

    info = inspect_gguf(gguf_path)
    template = ChatTemplate.from_gguf(gguf_path)
    every = build_examples(store, max_examples=10 ** 9, heldout_fraction=settings.heldout_fraction,
                           context_tokens=settings.context_tokens, own_document=settings.own_document,
                           **({"count": count_tokens} if count_tokens else {}))
    if select is not None:
        every = [e for e in every if select(e)]
    # in the stable order: growing either number keeps the examples chosen before
    examples = ([e for e in every if not e.heldout][:settings.examples]
                + [e for e in every if e.heldout][:settings.heldout_pairs])
    if not examples and select is None:
        counts = store.counts()
        if counts["notes"] or counts["own_emails"]:
            raise MipoError("no examples: no request found other writing of yours to use as its context (a note's own "
                            "text is not its context); import more of your writing with `mipo-local import`")
        raise MipoError("no examples: the context store holds none of your writing yet; run `mipo-local import` first")
    negatives = negative_contexts(examples, settings.strategy)
    run_id = _run_id(store, settings, cached_sha256(gguf_path), info.name)
    summary = PairsSummary(run_id=run_id, total=len(examples) * settings.samples, example_ids=[e.id for e in examples])
    done = store.pair_samples_done(run_id)
    summary.done_before = sum(1 for e in examples for k in range(settings.samples) if (e.id, k) in done)
    jobs = [(e, k) for e in examples for k in range(settings.samples) if (e.id, k) not in done]
    report(progress, "pairs", "starting", done=summary.done_before, total=summary.total, unit="pairs")
    if not jobs:
        report(progress, "pairs", "already done", done=summary.total, total=summary.total, finished=True)
        return summary

    prompts, seeds, owners, under = [], [], [], []
    for e, k in jobs:
        # MI(y) = log π(y | c, q) − log π(y | q): the prompts a candidate is scored under
        mi_prompts = [template.render(chat_messages(c, e.request, context_in=settings.context_in)) for c in (e.context, None)]
        for side, ctx in (("chosen", e.context), ("rejected", negatives[e.id])):
            prompt = template.render(chat_messages(ctx, e.request, context_in=settings.context_in))
            for c in range(settings.candidates):     # copies of one prompt side by side: decoded once
                prompts.append(prompt)
                seeds.append(_seed(settings, e.id, k, side, c))
                owners.append((e, k, side))
                under.append(mi_prompts)

    from ..generation import BatchedGenerator, context_per_sequence

    scorer = None
    if scoring and settings.scoring == SAMPLER:
        scorer = SampledScores()
    elif scoring:
        report(progress, "pairs", "loading the base model to score candidates")
        scorer = CandidateScorer(base_checkpoint, settings.context_in, settings.scoring)
    if scorer is not None:
        summary.scoring = scorer.precision
    sampling = settings.sampling()
    answers: dict[tuple[str, int], dict] = {}
    start = time.perf_counter()
    finished_pairs = summary.done_before

    def on_complete(i: int, completion) -> None:
        nonlocal finished_pairs
        e, k, side = owners[i]
        summary.tokens += len(completion.tokens)
        summary.truncated += completion.finish == "length"
        got = answers.setdefault((e.id, k), {"chosen": [], "rejected": []})
        got[side].append(completion)
        if len(got["chosen"]) + len(got["rejected"]) < 2 * settings.candidates:
            return
        del answers[(e.id, k)]
        t = time.perf_counter()
        _choose_and_commit(store, run_id, e, k, negatives[e.id], got["chosen"], got["rejected"], summary, template,
                           scorer, settings)
        summary.scoring_seconds += time.perf_counter() - t
        finished_pairs += 1
        elapsed = time.perf_counter() - start
        made_now = finished_pairs - summary.done_before
        rate = made_now / elapsed if elapsed else 0.0
        eta = (summary.total - finished_pairs) / rate if rate else None
        report(progress, "pairs", f"{summary.tokens / elapsed:.0f} tok/s", done=finished_pairs, total=summary.total,
               unit="pairs", data={"tokens_per_second": summary.tokens / elapsed, "eta_seconds": eta,
                                   "dropped": dict(summary.dropped)})

    sampled_scores = isinstance(scorer, SampledScores)
    n_ctx = context_per_sequence(gguf_path, prompts + ([p for two in under for p in two] if sampled_scores else []),
                                 settings.max_new_tokens)
    with BatchedGenerator(gguf_path, n_parallel=settings.n_parallel, n_ctx_per_seq=n_ctx,
                          prompt_cache=prompts_kept(settings) if sampled_scores else BatchedGenerator.PROMPT_CACHE
                          ) as generator:
        generator.generate(prompts, sampling, seeds=seeds, should_stop=should_stop, on_complete=on_complete,
                           score_under=under if sampled_scores else None)
        summary.scoring_seconds += generator.scoring_seconds
    summary.seconds = time.perf_counter() - start
    if should_stop is not None and should_stop():
        summary.stopped = True
        report(progress, "pairs", "stopped; running again continues here", done=finished_pairs, total=summary.total,
               unit="pairs", finished=True, data={"stopped": True})
        return summary
    report(progress, "pairs", "done", done=summary.total, total=summary.total, unit="pairs", finished=True,
           data={"tokens_per_second": summary.tokens_per_second, "dropped": dict(summary.dropped),
                 "truncated": summary.truncated})
    return summary


def _choose_and_commit(store: ContextStore, run_id: int, e: Example, sample: int, negative, chosen: list,
                       rejected: list, summary: PairsSummary, template: ChatTemplate,
                       scorer, settings: PairSettings) -> None:
    """Pick the pair among the candidates (see the module docstring) and commit it."""
    if scorer is None:
        _commit_pair(store, run_id, e, sample, negative, chosen[0], rejected[0], summary, template, settings)
        return
    pos = [c for c in chosen if usable_answer(c.text, c.finish)]
    neg = [c for c in rejected if usable_answer(c.text, c.finish)]
    if not pos or not neg:   # judged (and dropped with the precise reason) as a single candidate would be
        _commit_pair(store, run_id, e, sample, negative, (pos or chosen)[0], (neg or rejected)[0], summary, template,
                     settings)
        return
    from ..evaluate import copy_share

    trimmed = lambda c: usable_answer(c.text, c.finish)  # noqa: E731
    mi_pos = scorer.mi(e, [trimmed(c) for c in pos], pos)
    mi_neg = scorer.mi(e, [trimmed(c) for c in neg], neg)
    copied = [copy_share(trimmed(c), e.context) for c in pos]
    reason, p, n = select_pair([len(c.tokens) for c in pos], [len(c.tokens) for c in neg], mi_pos, mi_neg, settings,
                               copied)
    if reason is None:
        summary.kept_mi.append((mi_pos[p], mi_neg[n]))
    _commit_pair(store, run_id, e, sample, negative, pos[p], neg[n], summary, template, settings, reason)


def _commit_pair(store: ContextStore, run_id: int, e: Example, sample: int, negative, chosen, rejected,
                 summary: PairsSummary, template: ChatTemplate, settings: PairSettings,
                 reason: Optional[str] = None) -> None:
    judged, chosen_text, rejected_text = judge_pair(chosen.text, chosen.finish, rejected.text, rejected.finish)
    reason = judged or reason
    messages = chat_messages(e.context, e.request, context_in=settings.context_in)
    store.add_pair(run_id, example_id=e.id, sample=sample, source=e.source, heldout=int(e.heldout), request=e.request,
                   context=json.dumps(list(e.context), ensure_ascii=False),
                   negative_context=json.dumps(list(negative), ensure_ascii=False) if negative else None,
                   prompt=json.dumps(messages, ensure_ascii=False), prompt_text=template.render(messages),
                   chosen=chosen_text, rejected=rejected_text, reference=e.reference,
                   status="dropped" if reason else "ok", reason=reason, chosen_tokens=len(chosen.tokens),
                   rejected_tokens=len(rejected.tokens))
    if reason:
        summary.dropped[reason] = summary.dropped.get(reason, 0) + 1
    else:
        summary.made += 1
    real = own_text_answer(e, settings.max_new_tokens) if settings.real_text and not e.heldout else None
    if real and not reason:
        # beyond the paper: the person's own text over the base's answer without context, under the
        # same prompt; its own sample number, after the MIPO pairs'
        store.add_pair(run_id, example_id=e.id, sample=settings.samples + sample, source=e.source, heldout=0,
                       request=e.request, context=json.dumps(list(e.context), ensure_ascii=False),
                       negative_context=json.dumps(list(negative), ensure_ascii=False) if negative else None,
                       prompt=json.dumps(messages, ensure_ascii=False), prompt_text=template.render(messages),
                       chosen=real, rejected=rejected_text, reference=e.reference, status="ok", reason=None,
                       chosen_tokens=estimate_tokens(real),
                       rejected_tokens=len(rejected.tokens))
        summary.made += 1
