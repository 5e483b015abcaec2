"""The recipe sweep: which pairs and training settings make the personal model use the user's context?

    .venv/bin/python scripts/sweep_recipe.py [--seeds 2] [--pair-seed N] [--home DIR] [--only NAME ...]
        [--out sweep.json]

Each variant changes one thing against the demo settings (`pipeline.demo_settings()`) and is judged
by held-out context identification (personal − base, points) over the training seeds — never by
DPO reward margin, which grows with the learning rate by construction. Variants with the same pairs
settings share one workspace, so their pairs are made once. Prints a Markdown table for
BENCHMARKS.md; every report goes to --out. --pair-seed samples another draw of the pairs (the same
examples, other answers), to see whether a gain holds across draws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def variants(demo):
    """(name, settings): one change each against the demo settings."""
    pairs, train = demo.pairs, demo.train
    with_pairs = lambda **kw: dataclasses.replace(demo, pairs=dataclasses.replace(pairs, **kw))  # noqa: E731
    with_train = lambda **kw: dataclasses.replace(demo, train=dataclasses.replace(train, **kw))  # noqa: E731
    plain = with_train(mirror=False)       # pairs as MIPO makes them, trained as they are
    as_plain = lambda **kw: dataclasses.replace(plain, pairs=dataclasses.replace(pairs, **kw))  # noqa: E731
    return [
        ("MIPO pairs (drop, context in the user turn, 2 candidates)", plain),
        ("context in the system prompt", as_plain(context_in="system")),
        ("shuffle negatives", as_plain(strategy="shuffle")),
        ("mirrored pairs (the defaults)", demo),
        ("mirrored pairs, shuffle negatives", with_pairs(strategy="shuffle")),
        ("mirrored pairs, mixed negatives", with_pairs(strategy="mix")),
        ("mirrored pairs, 2 epochs", with_train(epochs=2.0)),
        ("mirrored pairs, twice the pairs", with_pairs(examples=2 * pairs.examples)),
        ("mirrored pairs, two pairs per example, half the epochs",      # the same steps, twice the answers
         dataclasses.replace(with_pairs(samples=2), train=dataclasses.replace(train, epochs=train.epochs / 2))),
        ("mirrored pairs, beta 0.3", with_train(beta=0.3)),
        ("mirrored pairs, SFT term 1.0 (RPO)", with_train(sft_weight=1.0)),
        ("mirrored pairs, SFT term 0.3", with_train(sft_weight=0.3)),
        ("mirrored pairs, learning rate 4e-4", with_train(learning_rate=4e-4)),
        ("mirrored pairs, learning rate 1e-4", with_train(learning_rate=1e-4)),
        ("mirrored pairs, rank 32 (alpha 64)", with_train(lora_rank=32, lora_alpha=64)),
        ("mirrored pairs, rank 8 (alpha 16)", with_train(lora_rank=8, lora_alpha=16)),
        ("mirrored pairs, bf16 compute", with_train(precision="bf16")),     # a CPU with bfloat16 in hardware
        ("no MI selection (1 candidate, no filter)", dataclasses.replace(
            plain, pairs=dataclasses.replace(pairs, candidates=1, min_context_mi=None))),
        ("learning rate 5e-5", dataclasses.replace(plain, train=dataclasses.replace(plain.train, learning_rate=5e-5))),
    ]


def _cell(stat: dict, scale: float = 100.0, digits: int = 1) -> str:
    from mipo_local.evaluation.report import format_estimate

    return format_estimate(stat, digits, scale, compact=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="names (prefixes) of the variants to run")
    ap.add_argument("--out", type=Path, default=Path("sweep_recipe.json"))
    ap.add_argument("--pair-seed", type=int, default=None,
                    help="the pairs' sampling seed (another draw of the pairs; default: the demo's)")
    ap.add_argument("--home", type=Path, help="a workspace an earlier sweep of the same pairs settings left (its "
                    "pairs and evaluation cache are reused; the demo is not imported again)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from personalization import run_seeds

    from mipo_local.demo import DEMO_ADDRESSES, demo_sources
    from mipo_local.pipeline import demo_settings

    homes: dict[str, Path] = {}
    rows, dump = [], []
    demo = demo_settings()
    if args.pair_seed is not None:
        demo = dataclasses.replace(demo, pairs=dataclasses.replace(demo.pairs, seed=args.pair_seed))
    for name, settings in variants(demo):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        key = json.dumps(dataclasses.asdict(settings.pairs), sort_keys=True)
        fresh = key not in homes and args.home is None
        if key not in homes:
            homes[key] = args.home or Path(tempfile.mkdtemp(prefix="mipo-sweep-"))
        os.environ["MIPO_HOME"] = str(homes[key])
        t = time.perf_counter()
        results = run_seeds(settings, demo_sources() if fresh else (), list(DEMO_ADDRESSES), range(args.seeds),
                            verbose=False)
        seconds = time.perf_counter() - t
        for r in results:
            rep = r["report"]
            rows.append(f"| {name} | {r['seed']} | {_cell(rep['identification']['base'])} | "
                        f"{_cell(rep['identification']['personal'])} | **{_cell(rep['identification']['gain'])}** | "
                        f"{_cell(rep['fixed_text_mi_per_token']['gain'], 1.0, 3)} | "
                        f"{rep['answer_tokens']['ratio']:.2f} | {_cell(rep['copy_share']['gain'])} | "
                        f"{_cell(rep['coherence']['gain'], 1.0, 3)} | {100 * rep['neutral_perplexity']['change']:+.1f}% | "
                        f"{r['train'].get('pairs')} / {r['train'].get('steps')} |")
            print("done:", rows[-1], file=sys.stderr, flush=True)   # the table itself is printed once, at the end
        dump.append({"variant": name, "settings": settings.to_dict(), "seconds": seconds, "runs": results})
        args.out.write_text(json.dumps(dump, indent=2, default=str))
    print("\n| variant | seed | identification base, % | personal, % | gain, points | fixed-text MI/token gain | "
          "length ratio | copy gain, points | coherence gain | perplexity | pairs / steps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
