"""The pairs stage: y+ ~ π(·|c, q) and y- ~ π(·|c', q) from the base model, committed one by one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..context.store import ContextStore, _now
from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..prompt_format import ChatTemplate, chat_messages
from .examples import Example, build_examples
from .filters import judge_pair
from .negatives import STRATEGIES, negative_contexts


@dataclass(frozen=True)
class PairSettings:
    examples: int = 200            # at most this many examples (training + held out)
    strategy: str = "drop"         # the negative's context: drop | shuffle | persona
    samples: int = 1               # pairs per example (one sample per side each, as in MIPO)
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 160
    seed: int = 0
    heldout_fraction: float = 0.1
    context_tokens: int = 400      # the budget for the user's context in each prompt
    n_parallel: int = 16           # sequences decoded together

    def run_key(self, model_sha: str) -> str:
        """Runs with the same key continue each other; `examples` may grow without a new run."""
        keyed = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("examples", "n_parallel")}
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

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _run_id(store: ContextStore, settings: PairSettings, model_sha: str, model_name: str) -> int:
    key = settings.run_key(model_sha)
    row = store.db.execute("SELECT id FROM pair_runs WHERE key = ?", (key,)).fetchone()
    if row:
        return row[0]
    with store.transaction():
        return store.db.execute(
            "INSERT INTO pair_runs(key, settings, model, created_at) VALUES (?, ?, ?, ?)",
            (key, json.dumps(dataclasses.asdict(settings)), json.dumps({"sha256": model_sha, "name": model_name}), _now()),
        ).lastrowid


def latest_run(store: ContextStore) -> Optional[int]:
    row = store.db.execute("SELECT id FROM pair_runs ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else None


def _seed(settings: PairSettings, example_id: str, sample: int, side: str) -> int:
    h = hashlib.sha256(f"{settings.seed}:{example_id}:{sample}:{side}".encode()).hexdigest()
    return int(h[:8], 16)


def generate_pairs(
    store: ContextStore,
    gguf_path: Path,
    settings: PairSettings = PairSettings(),
    *,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    count_tokens: Optional[Callable[[str], int]] = None,
) -> PairsSummary:
    """Sample MIPO pairs for the store's examples with llama.cpp on `gguf_path`.

    Each finished pair is committed at once; running again with the same settings and model
    continues where the last run stopped (an interruption loses at most the pairs in flight).
    """
    if settings.strategy not in STRATEGIES:
        raise MipoError(f"unknown negative strategy {settings.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if settings.samples < 1 or settings.max_new_tokens < 1 or settings.examples < 1:
        raise MipoError("examples, samples and max new tokens must be at least 1")
    from ..modelio.gguf_file import cached_sha256, inspect_gguf

    info = inspect_gguf(gguf_path)
    template = ChatTemplate.from_gguf(gguf_path)
    examples = build_examples(store, max_examples=settings.examples, heldout_fraction=settings.heldout_fraction,
                              context_tokens=settings.context_tokens, **({"count": count_tokens} if count_tokens else {}))
    if not examples:
        raise MipoError("no examples: the context store holds none of your writing yet; run `mipo-local import` first")
    negatives = negative_contexts(examples, settings.strategy)
    run_id = _run_id(store, settings, cached_sha256(gguf_path), info.name)
    summary = PairsSummary(run_id=run_id, total=len(examples) * settings.samples)
    done = {(r[0], r[1]) for r in store.db.execute("SELECT example_id, sample FROM pairs WHERE run_id = ?", (run_id,))}
    summary.done_before = sum(1 for e in examples for k in range(settings.samples) if (e.id, k) in done)
    jobs = [(e, k) for e in examples for k in range(settings.samples) if (e.id, k) not in done]
    report(progress, "pairs", "starting", done=summary.done_before, total=summary.total, unit="pairs")
    if not jobs:
        report(progress, "pairs", "already done", done=summary.total, total=summary.total, finished=True)
        return summary

    prompts, seeds, owners = [], [], []
    for e, k in jobs:
        for side, ctx in (("chosen", e.context), ("rejected", negatives[e.id])):
            prompts.append(template.render(chat_messages(ctx, e.request)))
            seeds.append(_seed(settings, e.id, k, side))
            owners.append((e, k, side))

    from ..generation import BatchedGenerator, Sampling, context_per_sequence

    sampling = Sampling(temperature=settings.temperature, top_p=settings.top_p, max_new_tokens=settings.max_new_tokens)
    halves: dict[tuple[str, int], dict] = {}
    start = time.perf_counter()
    finished_pairs = summary.done_before

    def on_complete(i: int, completion) -> None:
        nonlocal finished_pairs
        e, k, side = owners[i]
        summary.tokens += len(completion.tokens)
        half = halves.setdefault((e.id, k), {})
        half[side] = completion
        if len(half) < 2:
            return
        del halves[(e.id, k)]
        _commit_pair(store, run_id, e, k, negatives[e.id], half["chosen"], half["rejected"], summary, template)
        finished_pairs += 1
        elapsed = time.perf_counter() - start
        made_now = finished_pairs - summary.done_before
        rate = made_now / elapsed if elapsed else 0.0
        eta = (summary.total - finished_pairs) / rate if rate else None
        report(progress, "pairs", f"{summary.tokens / elapsed:.0f} tok/s", done=finished_pairs, total=summary.total,
               unit="pairs", data={"tokens_per_second": summary.tokens / elapsed, "eta_seconds": eta,
                                   "dropped": dict(summary.dropped)})

    n_ctx = context_per_sequence(gguf_path, prompts, settings.max_new_tokens)
    with BatchedGenerator(gguf_path, n_parallel=settings.n_parallel, n_ctx_per_seq=n_ctx) as generator:
        generator.generate(prompts, sampling, seeds=seeds, should_stop=should_stop, on_complete=on_complete)
    summary.seconds = time.perf_counter() - start
    report(progress, "pairs", "done", done=summary.total, total=summary.total, unit="pairs", finished=True,
           data={"tokens_per_second": summary.tokens_per_second, "dropped": dict(summary.dropped)})
    return summary


def _commit_pair(store: ContextStore, run_id: int, e: Example, sample: int, negative, chosen, rejected,
                 summary: PairsSummary, template: ChatTemplate) -> None:
    reason, chosen_text, rejected_text = judge_pair(chosen.text, chosen.finish, rejected.text, rejected.finish)
    messages = chat_messages(e.context, e.request)
    with store.transaction():
        store.db.execute(
            """INSERT OR IGNORE INTO pairs(run_id, example_id, sample, source, heldout, request, context, negative_context,
                   prompt, prompt_text, chosen, rejected, reference, status, reason, chosen_tokens, rejected_tokens, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (run_id, e.id, sample, e.source, int(e.heldout), e.request, json.dumps(list(e.context), ensure_ascii=False),
             json.dumps(list(negative), ensure_ascii=False) if negative else None,
             json.dumps(messages, ensure_ascii=False), template.render(messages), chosen_text, rejected_text, e.reference,
             "dropped" if reason else "ok", reason, len(chosen.tokens), len(rejected.tokens), _now()),
        )
    if reason:
        summary.dropped[reason] = summary.dropped.get(reason, 0) + 1
    else:
        summary.made += 1
