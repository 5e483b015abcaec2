"""The evaluation with its cache (`mipo_local.evaluation.cache`): cold, warm, incremental, against no cache.

    flock /tmp/mipo-cpu.lock .venv/bin/python benchmarks/eval_cache.py [--examples 24]

Demo settings (`demo_settings()`: 24 held-out examples of the demo corpus, 2 answers per example and
model, 4 contexts, 64 new tokens), a fresh workspace (so a cold cache; set MIPO_CACHE to reuse the
base's checkpoint and sampling copy from an earlier run), those made before the timings. Three stand-ins for personal models, A, B and C: the base checkpoint with
its weights moved by a little seeded noise, each exported to GGUF Q8_0 as a run exports its model (not
timed; they answer differently from the base and from each other, as trained models do). Timed, one
`evaluate_models` each, in this order:

1. A against the base, no cache (what every evaluation cost before);
2. A against the base, cold cache (fills it; the report must equal 1's);
3. B against the base, warm cache: the base's answers, scores and perplexity are cached;
4. C against the base with previous=B, as an incremental run evaluates: base and B are cached;
5. the same as 4 without the cache (the report must equal 4's).

Prints the seconds, what each reused, and whether the cached reports equal the uncached ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def stand_in(checkpoint: Path, folder: Path, seed: int, base_gguf: Path) -> tuple[Path, Path]:
    """(GGUF Q8_0, checkpoint) of the base with every weight moved by 2% of its spread, seeded."""
    import torch

    from mipo_local.inference.scoring import load_torch_model
    from mipo_local.modelio import checkpoint_to_gguf, quantize_gguf

    gguf, merged = folder / f"stand-in-{seed}.Q8_0.gguf", folder / f"stand-in-{seed}"
    model, tokenizer = load_torch_model(checkpoint)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * (0.02 * p.std()))
    model.save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    f16 = checkpoint_to_gguf(merged, folder / f"stand-in-{seed}.f16.gguf", base_gguf=base_gguf)
    quantize_gguf(f16, gguf, "Q8_0")
    f16.unlink()
    return gguf, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=None, help="held-out examples (default: the demo's 24)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = str(tmp)
        run(args.examples, Path(tmp))


def run(n_examples, home: Path) -> None:
    import torch

    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import demo_dir
    from mipo_local.evaluation.stage import evaluate_models, heldout_examples
    from mipo_local.modelio import base_checkpoint
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.modelio.catalog import resolve_base
    from mipo_local.pipeline.settings import demo_settings

    base = resolve_base(None)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); base {base.path.name}", flush=True)
    checkpoint, sampler = base_checkpoint(base), sampling_gguf(base)
    settings = demo_settings()
    evaluation = settings.evaluation if n_examples is None else type(settings.evaluation)(examples=n_examples)
    with ContextStore() as store:
        import_paths([demo_dir() / "notes", demo_dir() / "mail"], store=store)
        examples = heldout_examples(store, settings.pairs, evaluation.examples, evaluation.contexts)
    models = home / "stand-ins"
    models.mkdir()
    A, B, C = (stand_in(checkpoint, models, seed, base.path) for seed in (1, 2, 3))
    print(f"{len(examples)} held-out examples, {evaluation.answers} answers per example and model, "
          f"{evaluation.contexts} contexts; stand-ins A, B, C made", flush=True)

    def timed(label: str, personal, previous=None, cache=True) -> dict:
        t = time.perf_counter()
        result = evaluate_models(*personal, sampler, checkpoint, examples, evaluation, settings.pairs,
                                 previous=previous, cache=cache)
        seconds = time.perf_counter() - t
        reuse = result["reuse"]
        answers = ", ".join(f"{k} {v['reused']}/{v['reused'] + v['sampled']}" for k, v in reuse["answers"].items())
        scores = ", ".join(f"{k} {v['reused']}/{v['reused'] + v['computed']}{'' if v['model_loaded'] else ' (not loaded)'}"
                           for k, v in reuse["scores"].items())
        print(f"{label}: {seconds:.1f} s; answers reused: {answers}; scores reused: {scores}", flush=True)
        return result

    def numbers(result: dict) -> dict:
        return {k: v for k, v in result.items() if k not in ("seconds", "reuse")}

    plain = timed("1. A vs base, no cache", A, cache=False)
    cold = timed("2. A vs base, cold cache", A)
    timed("3. B vs base, warm cache (base cached)", B)
    incremental = timed("4. C vs base, previous B, cache (base and B cached)", C, previous=B)
    incremental_plain = timed("5. C vs base, previous B, no cache", C, previous=B, cache=False)
    print(f"reports equal: cold cache = no cache {numbers(cold) == numbers(plain)}, "
          f"incremental cached = uncached {numbers(incremental) == numbers(incremental_plain)}")


if __name__ == "__main__":
    main()
