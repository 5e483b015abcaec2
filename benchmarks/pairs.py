"""Pair generation throughput: the pairs stage against a plain loop of `Llama.create_chat_completion`,
on the same prompts (real MIPO prompts from the demo corpus, positive and negative) with the same
token limits, bundled SmolLM2, 2 threads.

The ratio on the last line compares the whole stage as it runs (`generate_pairs` with its pair
selection: `candidates` answers per side, each scored under the base, the pair with the largest MI
margin kept) with a plain loop that only samples the same answers (same prompts, same number of
candidates, same token limit, same sampling): pairs per second, the loop doing none of the scoring.
Before it, the generator alone is compared with the loop on 28 prompts, per model file.

The pairs stage samples from a Q8_0 written from the base's checkpoint when the base GGUF's type has
no fast batched path in llama.cpp (the bundled model is Q4_1); the ratio on the last line compares
that stage as it runs with the plain loop on the bundled GGUF. Same-file ratios are printed too.

Run: .venv/bin/python benchmarks/pairs.py [--stage-only]   (--stage-only: only the stage comparison)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_EXAMPLES = 14          # 28 prompts: a positive and a negative for each
STAGE_EXAMPLES = 16      # the stage comparison: 16 pairs from 2 × 2 candidates each
MAX_NEW = 96
TEMPERATURE, TOP_P = 0.8, 0.95
THREADS = 2


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = tmp
        from mipo_local.context import ContextStore, import_paths
        from mipo_local.demo import demo_dir
        from mipo_local.inference.generation import BatchedGenerator, Sampling
        from mipo_local.inference.llama_runtime import open_llama
        from mipo_local.inference.prompt_format import ChatTemplate, chat_messages
        from mipo_local.modelio.bases import sampling_gguf
        from mipo_local.modelio.catalog import resolve_base
        from mipo_local.pairs import build_examples

        base = resolve_base(None)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; threads {THREADS}; base {base.path.name}")
        t = time.perf_counter()
        sampler_model = sampling_gguf(base)
        print(f"(prepared the sampling model {sampler_model.name} in {time.perf_counter() - t:.0f} s, once per base)")
        import_paths([demo_dir() / "notes", demo_dir() / "mail"])
        with ContextStore() as store:
            examples = build_examples(store, max_examples=N_EXAMPLES)
        conversations = []
        for e in examples:
            conversations.append(chat_messages(e.context, e.request))
            conversations.append(chat_messages(None, e.request))
        sampling = Sampling(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=MAX_NEW)

        def ours(gguf: Path, n_parallel: int = 16) -> float:
            template = ChatTemplate.from_gguf(gguf)
            prompts = [template.render(m) for m in conversations]
            with BatchedGenerator(gguf, n_parallel=n_parallel, n_ctx_per_seq=1024, threads=THREADS) as gen:
                t0 = time.perf_counter()
                out = gen.generate(prompts, sampling, seeds=list(range(len(prompts))))
                dt = time.perf_counter() - t0
            tokens = sum(len(c.tokens) for c in out)
            return tokens / dt, tokens, dt

        def loop(gguf: Path) -> float:
            llm = open_llama(gguf, n_ctx=1024, n_threads=THREADS)
            try:
                t0 = time.perf_counter()
                tokens = 0
                for i, messages in enumerate(conversations):
                    r = llm.create_chat_completion(messages, max_tokens=MAX_NEW, temperature=TEMPERATURE, top_p=TOP_P, seed=i)
                    tokens += r["usage"]["completion_tokens"]
                dt = time.perf_counter() - t0
            finally:
                llm.close()
            return tokens / dt, tokens, dt

        if "--stage-only" in sys.argv[1:]:
            stage, loop_rate = compare_stage(base)
            print(f"ratio: {stage / loop_rate:.2f}")
            return
        print(f"{len(conversations)} prompts (MIPO positives and negatives), at most {MAX_NEW} new tokens each")
        results = {}
        for label, fn, gguf in (("loop, bundled Q4_1", loop, base.path), ("ours, bundled Q4_1", ours, base.path),
                                ("loop, sampling Q8_0", loop, sampler_model), ("ours, sampling Q8_0 (the pairs stage)", ours, sampler_model)):
            rate, tokens, dt = fn(gguf)
            results[label] = rate
            print(f"{label:40s} {rate:7.1f} tok/s ({tokens} tokens in {dt:.1f} s)")
        print(f"same file, bundled Q4_1: {results['ours, bundled Q4_1'] / results['loop, bundled Q4_1']:.2f}x; "
              f"same file, Q8_0: {results['ours, sampling Q8_0 (the pairs stage)'] / results['loop, sampling Q8_0']:.2f}x; "
              f"ours, Q8_0 over the loop on the bundled file: "
              f"{results['ours, sampling Q8_0 (the pairs stage)'] / results['loop, bundled Q4_1']:.2f}x")
        stage, loop_rate = compare_stage(base)
        print(f"ratio: {stage / loop_rate:.2f}")


def compare_stage(base) -> tuple[float, float]:
    """(pairs/s of the pairs stage with its selection, pairs/s of a plain loop sampling the same answers)."""
    import dataclasses

    from mipo_local.context import ContextStore
    from mipo_local.inference.llama_runtime import open_llama
    from mipo_local.inference.prompt_format import chat_messages
    from mipo_local.modelio import base_checkpoint
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.pairs import build_examples, generate_pairs
    from mipo_local.pairs.negatives import negative_contexts
    from mipo_local.pairs.stage import _seed
    from mipo_local.pipeline import demo_settings

    settings = dataclasses.replace(demo_settings().pairs, examples=STAGE_EXAMPLES, heldout_pairs=0)
    checkpoint = base_checkpoint(base)
    with ContextStore() as store:
        t0 = time.perf_counter()
        summary = generate_pairs(store, sampling_gguf(base), settings, base_checkpoint=checkpoint)
        ours_s = time.perf_counter() - t0
        every = build_examples(store, max_examples=10 ** 9, heldout_fraction=settings.heldout_fraction,
                               context_tokens=settings.context_tokens)
    examples = [e for e in every if not e.heldout][:settings.examples]
    negatives = negative_contexts(examples, settings.strategy)
    llm = open_llama(base.path, n_ctx=1024, n_threads=THREADS)
    try:
        t0 = time.perf_counter()
        tokens = 0
        for e in examples:
            for side, ctx in (("chosen", e.context), ("rejected", negatives[e.id])):
                messages = chat_messages(ctx, e.request, context_in=settings.context_in)
                for c in range(settings.candidates):
                    r = llm.create_chat_completion(messages, max_tokens=settings.max_new_tokens,
                                                   temperature=settings.temperature, top_p=settings.top_p,
                                                   seed=_seed(settings, e.id, 0, side, c))
                    tokens += r["usage"]["completion_tokens"]
        loop_s = time.perf_counter() - t0
    finally:
        llm.close()
    n = len(examples)
    print(f"the pairs stage, {n} examples x 2 sides x {settings.candidates} candidates, at most "
          f"{settings.max_new_tokens} new tokens (demo settings):")
    print(f"  ours (the stage: sampling on the Q8_0 copy + scoring the candidates): {ours_s:.1f} s, "
          f"{n / ours_s:.3f} pairs/s ({summary.tokens} tokens; scoring {summary.scoring_seconds:.1f} s of it, "
          f"by {summary.scoring}; "
          f"{summary.made} kept, dropped {dict(summary.dropped)})")
    print(f"  plain loop on the bundled file, sampling only: {loop_s:.1f} s, {n / loop_s:.3f} pairs/s ({tokens} tokens)")
    return n / ours_s, n / loop_s


if __name__ == "__main__":
    main()
