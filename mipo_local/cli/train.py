"""`train`: a run on the pairs made before (`mipo-local pairs`) that ends once the new model is
exported and active (or after training, with --no-export)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..pipeline.settings import RunSettings
from ..train.settings import TrainSettings
from .common import add_settings_flags, apply_flags, apply_train_flags, echo

TRAIN_FLAGS = ("epochs", "device", "precision", "learning_rate", "beta", "sft_weight", "lora_rank", "batch_size",
               "mirror")


def _cmd_train(args: argparse.Namespace) -> int:
    from ..context import ContextStore
    from ..pipeline import run_pipeline
    from ..train.data import load_pairs_from_store
    from .progress import TerminalProgress

    if args.accelerate_config is not None:   # a config that cannot run is refused before anything else
        from ..train.distributed import check_config

        check_config(args.accelerate_config)
    settings = apply_flags(args, RunSettings(), "run")       # a bad value is refused before anything else
    settings = dataclasses.replace(settings, train=apply_train_flags(args, settings.train))
    with ContextStore() as store:   # pairs are checked before any model is loaded
        load_pairs_from_store(store, split="train")
        pairs_run = store.latest_pair_run()
    result = run_pipeline(settings=settings, pairs_run=pairs_run, until="train" if args.no_export else "activate",
                          new=not args.resume, continue_only=args.resume, progress=TerminalProgress(),
                          accelerate_config=args.accelerate_config)
    if result.stopped:
        echo(f"stopped at a step boundary with a checkpoint in {result.run_dir}; continue with `mipo-local train --resume`")
        return 130
    metrics = (result.stages.get("train") or {}).get("metrics") or {}
    before, after = metrics.get("heldout_before"), metrics.get("heldout_after")
    if before and after:
        echo(f"held-out pairs ({after['pairs']}): reward accuracy {before['reward_accuracy']:.0%} -> "
             f"{after['reward_accuracy']:.0%}, margin {before['reward_margin']:+.3f} -> {after['reward_margin']:+.3f}")
    echo(f"run: {result.run_dir}")
    if result.model and not args.no_export:
        echo(f"personal model: {result.model}\nLoRA for llama.cpp (on the base GGUF): {result.outputs.get('lora_gguf')}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="LoRA DPO on your pairs, then merge, export to GGUF and quantize")
    add_settings_flags(p, RunSettings, ("base", "quant", "max_steps"), prefix="run")
    add_settings_flags(p, TrainSettings, TRAIN_FLAGS, prefix="train")
    p.add_argument("--resume", action="store_true", help="continue the last stopped run from its last checkpoint")
    p.add_argument("--no-export", action="store_true", help="train the adapter only")
    p.add_argument("--accelerate-config", metavar="FILE", type=Path,
                   help="train under `accelerate launch` with this Accelerate config: several GPUs or machines, DDP "
                        "or DeepSpeed (examples in mipo_local/train/accelerate/; README: 'Several GPUs or machines')")
    p.set_defaults(func=_cmd_train)
