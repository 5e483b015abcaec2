"""The small sweep behind TrainSettings' defaults: LoRA DPO on MIPO pairs of the demo corpus with the
bundled model, one epoch per setting, scored on the held-out pairs (DPO reward accuracy and margin
of the trained policy against the base, and its own log-likelihood margin log π(y+) − log π(y−)).

Run: .venv/bin/python scripts/sweep_train_defaults.py   (about 12 minutes on 2 cores)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GRID = [
    {"learning_rate": 5e-6},
    {"learning_rate": 5e-5},
    {"learning_rate": 2e-4},
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = tmp
        from mipo_local.context import ContextStore, import_paths
        from mipo_local.demo import demo_dir
        from mipo_local.modelio import base_checkpoint
        from mipo_local.modelio.bases import sampling_gguf
        from mipo_local.modelio.catalog import resolve_base
        from mipo_local.pairs import PairSettings, generate_pairs
        from mipo_local.train import TrainSettings, train_lora
        from mipo_local.train.data import load_pairs_from_store

        import_paths([demo_dir() / "notes", demo_dir() / "mail"])
        base = resolve_base(None)
        with ContextStore() as store:
            generate_pairs(store, sampling_gguf(base), PairSettings(examples=60, max_new_tokens=96, heldout_fraction=0.2))
            train = load_pairs_from_store(store, split="train")
            heldout = load_pairs_from_store(store, split="heldout")
        print(f"{len(train)} training pairs, {len(heldout)} held-out pairs", flush=True)
        checkpoint = base_checkpoint(base)
        print("| setting | train loss | held-out reward acc. | reward margin | logp margin before → after | s |")
        print("|---|---|---|---|---|---|")
        for overrides in GRID:
            settings = dataclasses.replace(TrainSettings(checkpoint_every=1000), **overrides)
            t = time.perf_counter()
            r = train_lora(checkpoint, train, Path(tmp) / f"run-{len(os.listdir(tmp))}", settings, heldout=heldout)
            m = r.metrics
            b, a = m["heldout_before"], m["heldout_after"]
            label = ", ".join(f"{k}={v}" for k, v in overrides.items())
            print(f"| {label} | {m['train_loss']:.4f} | {a['reward_accuracy']:.0%} | {a['reward_margin']:+.3f} | "
                  f"{b['logp_margin']:+.1f} → {a['logp_margin']:+.1f} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
