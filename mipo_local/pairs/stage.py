"""The pairs stage: y+ ~ π(·|c, q) and y- ~ π(·|c', q) from the base model, committed one by one.

With `candidates` > 1 each side is sampled several times and the pair kept is the one MIPO would
rank highest: every usable candidate y is scored under the base π₀ as
MI(y) = log π₀(y|c,q) − log π₀(y|q), the positive is the candidate with the largest MI and the
negative the one with the smallest. The scores come from the base's PyTorch checkpoint (fp32, or bf16
weights), or from the sampling model itself as it samples (`scoring` "sampler": llama.cpp, the Q8_0
copy of the base that the answers are drawn from; no second model in memory). A pair whose positive
does not depend on the context (MI ≤ `min_context_mi`) or whose two answers differ wildly in length
is dropped with its reason.
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
from ..inference.prompt_format import PLACEMENTS, ChatTemplate, chat_messages
from ..progress import ProgressCallback, report
from .examples import Example, build_examples, own_text_answer
from .filters import judge_pair, usable_answer
from .negatives import STRATEGIES, negative_contexts
from .settings import CANDIDATE_SCORING, SAMPLER, PairSettings


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

        from ..inference.scoring import ResponseScorer, load_torch_model, weight_precision

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
    scoring = _check_settings(settings, base_checkpoint)
    from ..modelio.gguf_file import cached_sha256, inspect_gguf

    info = inspect_gguf(gguf_path)
    template = ChatTemplate.from_gguf(gguf_path)
    examples = _examples(store, settings, count_tokens, select)
    negatives = negative_contexts(examples, settings.strategy)
    run_id = _run_id(store, settings, cached_sha256(gguf_path), info.name)
    summary, jobs = _resume(store, run_id, examples, settings)
    report(progress, "pairs", "starting", done=summary.done_before, total=summary.total, unit="pairs")
    if not jobs:
        report(progress, "pairs", "already done", done=summary.total, total=summary.total, finished=True)
        return summary

    requests = _Requests.of(jobs, negatives, template, settings)
    scorer = _candidate_scorer(scoring, settings, base_checkpoint, progress)
    if scorer is not None:
        summary.scoring = scorer.precision
    collect = _Collector(requests.owners, negatives, _PairWriter(store, run_id, summary, template, scorer, settings),
                         progress)
    _sample_candidates(gguf_path, requests, settings, isinstance(scorer, SampledScores), collect, should_stop)
    summary.seconds = time.perf_counter() - collect.start
    _report_end(progress, summary, collect.finished, should_stop)
    return summary


def _check_settings(settings: PairSettings, base_checkpoint: Optional[Path]) -> bool:
    """Refuse settings the stage cannot run; whether the candidates are scored (by MI)."""
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
    return scoring


def _examples(store: ContextStore, settings: PairSettings, count_tokens: Optional[Callable[[str], int]],
              select: Optional[Callable[[Example], bool]]) -> list[Example]:
    """The examples to make pairs for: the first `examples` trained on and `heldout_pairs` held out."""
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
    return examples


def _resume(store: ContextStore, run_id: int, examples: list[Example],
            settings: PairSettings) -> tuple[PairsSummary, list[tuple[Example, int]]]:
    """The run's summary (counting the samples a previous call committed) and the (example, sample)
    jobs left to do."""
    summary = PairsSummary(run_id=run_id, total=len(examples) * settings.samples, example_ids=[e.id for e in examples])
    done = store.pair_samples_done(run_id)
    summary.done_before = sum(1 for e in examples for k in range(settings.samples) if (e.id, k) in done)
    jobs = [(e, k) for e in examples for k in range(settings.samples) if (e.id, k) not in done]
    return summary, jobs


@dataclass
class _Requests:
    """What the generator samples, one entry per candidate: its prompt, its seed, whose it is
    (example, sample, side) and the two prompts it is scored under."""
    prompts: list[str]
    seeds: list[int]
    owners: list[tuple[Example, int, str]]
    under: list[list[str]]

    @classmethod
    def of(cls, jobs: list[tuple[Example, int]], negatives: dict, template: ChatTemplate,
           settings: PairSettings) -> _Requests:
        prompts, seeds, owners, under = [], [], [], []
        for e, k in jobs:
            # MI(y) = log π(y | c, q) − log π(y | q): the prompts a candidate is scored under
            mi_prompts = [template.render(chat_messages(c, e.request, context_in=settings.context_in))
                          for c in (e.context, None)]
            for side, ctx in (("chosen", e.context), ("rejected", negatives[e.id])):
                prompt = template.render(chat_messages(ctx, e.request, context_in=settings.context_in))
                for c in range(settings.candidates):     # copies of one prompt side by side: decoded once
                    prompts.append(prompt)
                    seeds.append(_seed(settings, e.id, k, side, c))
                    owners.append((e, k, side))
                    under.append(mi_prompts)
        return cls(prompts, seeds, owners, under)


def _candidate_scorer(scoring: bool, settings: PairSettings, base_checkpoint: Optional[Path],
                      progress: Optional[ProgressCallback]):
    """What scores the candidates: the sampler itself, the base in PyTorch, or None (not scored)."""
    if scoring and settings.scoring == SAMPLER:
        return SampledScores()
    if scoring:
        report(progress, "pairs", "loading the base model to score candidates")
        return CandidateScorer(base_checkpoint, settings.context_in, settings.scoring)
    return None


def _sample_candidates(gguf_path: Path, requests: _Requests, settings: PairSettings, sampled_scores: bool,
                       collect: _Collector, should_stop: Optional[Callable[[], bool]]) -> None:
    """Sample every candidate with llama.cpp in batches, each handed to `collect` as it completes;
    with `sampled_scores` each is scored under its two MI prompts as it is sampled."""
    from ..inference.generation import BatchedGenerator, context_per_sequence

    sampling = settings.sampling()
    under = requests.under
    n_ctx = context_per_sequence(gguf_path, requests.prompts + ([p for two in under for p in two] if sampled_scores
                                                                else []), settings.max_new_tokens)
    with BatchedGenerator(gguf_path, n_parallel=settings.n_parallel, n_ctx_per_seq=n_ctx,
                          prompt_cache=prompts_kept(settings) if sampled_scores else BatchedGenerator.PROMPT_CACHE
                          ) as generator:
        generator.generate(requests.prompts, sampling, seeds=requests.seeds, should_stop=should_stop,
                           on_complete=collect, score_under=under if sampled_scores else None)
        collect.summary.scoring_seconds += generator.scoring_seconds


class _Collector:
    """The generator's `on_complete`: gathers each sample's 2 × `candidates` completions as they come in;
    with the last of them its pair is chosen and committed (`_PairWriter`) and the progress told."""

    def __init__(self, owners: list[tuple[Example, int, str]], negatives: dict, pairs: _PairWriter,
                 progress: Optional[ProgressCallback]) -> None:
        self.owners, self.negatives, self.pairs, self.progress = owners, negatives, pairs, progress
        self.summary = pairs.summary
        self.answers: dict[tuple[str, int], dict] = {}
        self.finished = self.summary.done_before     # pairs finished, those of earlier calls included
        self.start = time.perf_counter()

    def __call__(self, i: int, completion) -> None:
        e, k, side = self.owners[i]
        summary = self.summary
        summary.tokens += len(completion.tokens)
        summary.truncated += completion.finish == "length"
        got = self.answers.setdefault((e.id, k), {"chosen": [], "rejected": []})
        got[side].append(completion)
        if len(got["chosen"]) + len(got["rejected"]) < 2 * self.pairs.settings.candidates:
            return
        del self.answers[(e.id, k)]
        t = time.perf_counter()
        self.pairs.choose_and_commit(e, k, self.negatives[e.id], got["chosen"], got["rejected"])
        summary.scoring_seconds += time.perf_counter() - t
        self.finished += 1
        self._report()

    def _report(self) -> None:
        summary = self.summary
        elapsed = time.perf_counter() - self.start
        made_now = self.finished - summary.done_before
        rate = made_now / elapsed if elapsed else 0.0
        eta = (summary.total - self.finished) / rate if rate else None
        report(self.progress, "pairs", f"{summary.tokens / elapsed:.0f} tok/s", done=self.finished,
               total=summary.total, unit="pairs", data={"tokens_per_second": summary.tokens / elapsed,
                                                        "eta_seconds": eta, "dropped": dict(summary.dropped)})


def _report_end(progress: Optional[ProgressCallback], summary: PairsSummary, finished: int,
                should_stop: Optional[Callable[[], bool]]) -> None:
    """The stage's last event: stopped (running again continues) or done."""
    if should_stop is not None and should_stop():
        summary.stopped = True
        report(progress, "pairs", "stopped; running again continues here", done=finished, total=summary.total,
               unit="pairs", finished=True, data={"stopped": True})
        return
    report(progress, "pairs", "done", done=summary.total, total=summary.total, unit="pairs", finished=True,
           data={"tokens_per_second": summary.tokens_per_second, "dropped": dict(summary.dropped),
                 "truncated": summary.truncated})


class _PairWriter:
    """Chooses each sample's pair among its candidates (see the module docstring) and commits it to the
    run, counting it in the summary."""

    def __init__(self, store: ContextStore, run_id: int, summary: PairsSummary, template: ChatTemplate, scorer,
                 settings: PairSettings) -> None:
        self.store, self.run_id, self.summary, self.template = store, run_id, summary, template
        self.scorer, self.settings = scorer, settings

    def choose_and_commit(self, e: Example, sample: int, negative, chosen: list, rejected: list) -> None:
        """Pick the pair among the candidates (see the module docstring) and commit it."""
        if self.scorer is None:
            self.commit(e, sample, negative, chosen[0], rejected[0])
            return
        pos = [c for c in chosen if usable_answer(c.text, c.finish)]
        neg = [c for c in rejected if usable_answer(c.text, c.finish)]
        if not pos or not neg:   # judged (and dropped with the precise reason) as a single candidate would be
            self.commit(e, sample, negative, (pos or chosen)[0], (neg or rejected)[0])
            return
        from ..context.overlap import copy_share

        trimmed = [usable_answer(c.text, c.finish) for c in pos]
        mi_pos = self.scorer.mi(e, trimmed, pos)
        mi_neg = self.scorer.mi(e, [usable_answer(c.text, c.finish) for c in neg], neg)
        copied = [copy_share(t, e.context) for t in trimmed]
        reason, p, n = select_pair([len(c.tokens) for c in pos], [len(c.tokens) for c in neg], mi_pos, mi_neg,
                                   self.settings, copied)
        if reason is None:
            self.summary.kept_mi.append((mi_pos[p], mi_neg[n]))
        self.commit(e, sample, negative, pos[p], neg[n], reason)

    def commit(self, e: Example, sample: int, negative, chosen, rejected, reason: Optional[str] = None) -> None:
        settings, summary = self.settings, self.summary
        judged, chosen_text, rejected_text = judge_pair(chosen.text, chosen.finish, rejected.text, rejected.finish)
        reason = judged or reason
        messages = chat_messages(e.context, e.request, context_in=settings.context_in)
        shared = dict(example_id=e.id, source=e.source, request=e.request,
                      context=json.dumps(list(e.context), ensure_ascii=False),
                      negative_context=json.dumps(list(negative), ensure_ascii=False) if negative else None,
                      prompt=json.dumps(messages, ensure_ascii=False), prompt_text=self.template.render(messages),
                      reference=e.reference, rejected=rejected_text, rejected_tokens=len(rejected.tokens))
        self.store.add_pair(self.run_id, sample=sample, heldout=int(e.heldout), chosen=chosen_text,
                            status="dropped" if reason else "ok", reason=reason, chosen_tokens=len(chosen.tokens),
                            **shared)
        if reason:
            summary.dropped[reason] = summary.dropped.get(reason, 0) + 1
        else:
            summary.made += 1
        real = own_text_answer(e, settings.max_new_tokens) if settings.real_text and not e.heldout else None
        if real and not reason:
            # beyond the paper: the person's own text over the base's answer without context, under the
            # same prompt; its own sample number, after the MIPO pairs'
            self.store.add_pair(self.run_id, sample=settings.samples + sample, heldout=0, chosen=real, status="ok",
                                reason=None, chosen_tokens=estimate_tokens(real), **shared)
            summary.made += 1
