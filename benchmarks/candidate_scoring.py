"""Scoring the pairs stage's candidates: by the sampling model as it samples (llama.cpp, the default),
and by the base in PyTorch with bf16 weights, against the base in fp32 (the exact reference), on the
same sampled candidates — time, and whether the same pair is chosen.

The candidates are sampled once as the stage samples them (demo settings: 2 per side, up to their token limit),
twice in fact: without scoring, and with the sampler's scores under both prompts (`score_under`); the
sampler's time is the difference. Then each example's candidates are scored under the base, MI(y) =
log π₀(y|c,q) − log π₀(y|q), and `select_pair` picks (drop reason, positive, negative) from each.
Printed: seconds per scorer, how many examples get the same choice as fp32, the MI difference per
candidate, and as the last line `ratio: X` (fp32 seconds over the sampler's extra seconds, higher is better).

Run: .venv/bin/python benchmarks/candidate_scoring.py [N]   (N examples, default 24)
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = tmp
        from mipo_local.context import ContextStore, import_paths
        from mipo_local.demo import demo_dir
        from mipo_local.inference.generation import BatchedGenerator, context_per_sequence
        from mipo_local.inference.prompt_format import ChatTemplate, chat_messages
        from mipo_local.inference.scoring import native_bf16
        from mipo_local.modelio import base_checkpoint
        from mipo_local.modelio.bases import sampling_gguf
        from mipo_local.modelio.catalog import resolve_base
        from mipo_local.pairs import build_examples
        from mipo_local.pairs.filters import usable_answer
        from mipo_local.pairs.negatives import negative_contexts
        from mipo_local.pairs.stage import CandidateScorer, SampledScores, _seed, prompts_kept, select_pair
        from mipo_local.pipeline import demo_settings

        settings = dataclasses.replace(demo_settings().pairs, examples=n, heldout_pairs=0)
        base = resolve_base(None)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; bfloat16 native here: {native_bf16()}")
        checkpoint, gguf = base_checkpoint(base), sampling_gguf(base)
        import_paths([demo_dir() / "notes", demo_dir() / "mail"])
        with ContextStore() as store:
            every = build_examples(store, max_examples=10 ** 9, heldout_fraction=settings.heldout_fraction,
                                   context_tokens=settings.context_tokens)
        examples = [e for e in every if not e.heldout][:n]
        negatives = negative_contexts(examples, settings.strategy)
        template = ChatTemplate.from_gguf(gguf)
        prompts, seeds, owners, under = [], [], [], []
        for e in examples:
            mi_prompts = [template.render(chat_messages(c, e.request, context_in=settings.context_in))
                          for c in (e.context, None)]
            for side, ctx in (("chosen", e.context), ("rejected", negatives[e.id])):
                prompt = template.render(chat_messages(ctx, e.request, context_in=settings.context_in))
                for c in range(settings.candidates):
                    prompts.append(prompt)
                    seeds.append(_seed(settings, e.id, 0, side, c))
                    owners.append((e.id, side))
                    under.append(mi_prompts)
        n_ctx = context_per_sequence(gguf, prompts, settings.max_new_tokens)
        with BatchedGenerator(gguf, n_parallel=settings.n_parallel, n_ctx_per_seq=n_ctx) as generator:
            t = time.perf_counter()
            plain = generator.generate(prompts, settings.sampling(), seeds=seeds)
            plain_s = time.perf_counter() - t
        with BatchedGenerator(gguf, n_parallel=settings.n_parallel, n_ctx_per_seq=n_ctx,
                              prompt_cache=prompts_kept(settings)) as generator:   # as the stage runs it
            t = time.perf_counter()
            completions = generator.generate(prompts, settings.sampling(), seeds=seeds, score_under=under)
            sampler_s = time.perf_counter() - t - plain_s
        assert [c.tokens for c in completions] == [c.tokens for c in plain]   # scoring changes no answer
        candidates: dict[str, dict[str, list[str]]] = {}
        sampled: dict[str, dict[str, list]] = {}
        for (example_id, side), c in zip(owners, completions):
            text = usable_answer(c.text, c.finish)
            if text:
                candidates.setdefault(example_id, {"chosen": [], "rejected": []})[side].append(text)
                sampled.setdefault(example_id, {"chosen": [], "rejected": []})[side].append(c)
        scored = [e for e in examples if e.id in candidates and all(candidates[e.id].values())]
        answers = sum(len(v) for e in scored for v in candidates[e.id].values())
        print(f"{len(scored)} examples with usable candidates on both sides, {answers} candidates "
              f"(demo settings: {settings.candidates} per side, at most {settings.max_new_tokens} tokens)")

        def choices(precision: str) -> tuple[float, dict]:
            scorer = CandidateScorer(checkpoint, settings.context_in, precision)
            first = scored[0]
            scorer.mi(first, candidates[first.id]["chosen"])          # warm-up, not timed
            t = time.perf_counter()
            out = {}
            for e in scored:
                mi_pos = scorer.mi(e, candidates[e.id]["chosen"])
                mi_neg = scorer.mi(e, candidates[e.id]["rejected"])
                lengths = lambda side: [1] * len(candidates[e.id][side])  # noqa: E731 — lengths do not differ
                out[e.id] = (mi_pos + mi_neg, select_pair(lengths("chosen"), lengths("rejected"), mi_pos, mi_neg,
                                                          settings))
            return time.perf_counter() - t, out

        def sampler_choices() -> dict:
            scores, out = SampledScores(), {}
            for e in scored:
                mi_pos = scores.mi(e, candidates[e.id]["chosen"], sampled[e.id]["chosen"])
                mi_neg = scores.mi(e, candidates[e.id]["rejected"], sampled[e.id]["rejected"])
                ones = lambda side: [1] * len(candidates[e.id][side])  # noqa: E731
                out[e.id] = (mi_pos + mi_neg, select_pair(ones("chosen"), ones("rejected"), mi_pos, mi_neg, settings))
            return out

        fp32_s, exact = choices("fp32")
        bf16_s, fast = choices("bf16")
        by_sampler = sampler_choices()
        print(f"sampling alone: {plain_s:.1f} s")
        print(f"fp32 (the baseline): {fp32_s:.1f} s")
        for label, seconds, got in (("bf16 weights", bf16_s, fast),
                                    ("the sampler as it samples (its extra time over sampling alone)", sampler_s, by_sampler)):
            same = sum(exact[k][1] == got[k][1] for k in exact)
            diff = [abs(a - b) for k in exact for a, b in zip(exact[k][0], got[k][0])]
            print(f"{label}: {seconds:.1f} s ({fp32_s / seconds:.2f}x fp32); the same choice (drop reason, positive, "
                  f"negative) as fp32 for {same} of {len(exact)} examples; MI per candidate |Δ| vs fp32 mean "
                  f"{sum(diff) / len(diff):.3f}, max {max(diff):.3f} nats")
        print(f"ratio: {fp32_s / sampler_s:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
