"""`run`: the whole pipeline, resumable; `eval`: a finished run's report, again."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import MipoError
from ..evaluation.settings import EvalSettings
from ..pairs.settings import PairSettings
from ..pipeline.settings import RunSettings
from ..train.settings import TrainSettings
from .common import add_settings_flags, apply_flags, apply_train_flags, echo

PAIR_FLAGS = ("examples", "heldout_pairs", "strategy", "candidates", "context_in", "context_tokens", "max_new_tokens",
              "scoring", "own_document", "copy_ceiling", "real_text")
TRAIN_FLAGS = ("epochs", "device", "precision", "learning_rate", "beta", "sft_weight", "lora_rank", "batch_size",
               "mirror", "replay_fraction")


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The demo's or the default settings, with what the command line gives."""
    from ..pipeline import demo_settings

    settings = apply_flags(args, demo_settings() if args.demo else RunSettings(), "run")
    return dataclasses.replace(settings, pairs=apply_flags(args, settings.pairs, "pairs"),
                               train=apply_train_flags(args, settings.train),
                               evaluation=apply_flags(args, settings.evaluation, "evaluation"))


def _cmd_run(args: argparse.Namespace) -> int:
    import time

    from ..pipeline import run_pipeline
    from .progress import TerminalProgress

    settings = run_settings(args)          # a wrong value is reported before anything happens
    from ..addresses import parse_addresses

    sources = [Path(p) for p in args.paths]
    addresses = [a for entry in args.me or [] for a in parse_addresses(entry)]   # a bad one: one line, before any work
    if args.demo:
        from .. import workspace
        from ..demo import DEMO_ADDRESSES, demo_sources

        if sources:
            raise MipoError("--demo uses the bundled demo corpus; leave out the paths (or drop --demo)")
        echo(f"demo workspace: {workspace.home()} (the fictional Ada Lindqvist; your own data is not touched)")
        sources, addresses = demo_sources(), list(DEMO_ADDRESSES)
    start = time.perf_counter()
    result = run_pipeline(sources, settings, addresses=addresses, accelerate_config=args.accelerate_config,
                          new=args.new, from_scratch=args.from_scratch,
                          profile=args.profile,
                          until="pairs" if args.pairs_only else None, progress=TerminalProgress())
    total = time.perf_counter() - start
    if result.nothing_new:
        echo(f"{result.mode_reason} (--from-scratch trains again from the base)")
        return 0
    if result.up_to_date:
        echo(f"nothing changed since {result.run_dir.name} finished; its report: {result.run_dir / 'report.md'} "
             "(--new runs again)")
        return 0
    echo(f"{result.mode} run" + (f": {result.mode_reason}" if result.mode_reason else ""))
    for stage, seconds in result.seconds.items():
        echo(f"  {stage:9} {'skipped (done before)' if stage in result.skipped else f'{seconds:7.1f} s'}")
    if result.stopped:
        echo(f"stopped; run the same command again to continue ({result.run_dir})")
        return 130
    if not result.finished:
        echo("pairs are ready: read them with `mipo-local pairs --show 5`; run again (without --pairs-only) to train")
        return 0
    echo(result.report["headline"])
    echo(f"report: {result.run_dir / 'report.md'}")
    chat = f"mipo-local chat{' --demo' if args.demo else ''}{f' --profile {args.profile}' if args.profile else ''}"
    echo(f"active model{f' of profile {args.profile}' if args.profile else ''}: {result.model}  (chat: {chat})")
    echo(f"total {total:.0f} s")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..pipeline import evaluate_run
    from ..stop import StopFlag
    from .progress import TerminalProgress

    stop = StopFlag()
    with stop.on_sigint():
        _, md = evaluate_run(Path(args.run) if args.run else None, progress=TerminalProgress(), should_stop=stop)
    if md is None:
        echo("stopped; nothing was written (the earlier report, if any, stays)")
        return 130
    echo(md.read_text(encoding="utf-8"))
    echo(f"(written to {md} and {md.with_suffix('.json')})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline: import, pairs, train, export, evaluate (resumable)",
                       description="Defaults are the settings' own; with --demo, the demo's (pipeline.demo_settings).")
    p.add_argument("paths", nargs="*", metavar="PATH", help="notes folders, vaults, mail files to import first")
    p.add_argument("--demo", action="store_true", help="the bundled demo corpus and model, in a separate demo workspace")
    p.add_argument("--me", action="append", metavar="ADDRESS", help="one of your email addresses (repeatable)")
    add_settings_flags(p, RunSettings, ("base", "quant", "max_steps"), prefix="run")
    add_settings_flags(p, PairSettings, PAIR_FLAGS, prefix="pairs")
    add_settings_flags(p, TrainSettings, TRAIN_FLAGS, prefix="train")
    add_settings_flags(p, EvalSettings, ("examples", "writing", "answers", "contexts"), prefix="evaluation")
    p.add_argument("--accelerate-config", metavar="FILE", type=Path,
                   help="train under `accelerate launch` with this Accelerate config (as `train --accelerate-config`)")
    p.add_argument("--profile", metavar="NAME", help="personalize a profile's model from its sources only "
                                                     "(`mipo-local profile --create`); default: all sources")
    p.add_argument("--new", action="store_true", help="start a new run even if one with these settings can continue")
    p.add_argument("--from-scratch", action="store_true",
                   help="a full run from the base model, not continuing the active model on what is new")
    p.add_argument("--pairs-only", action="store_true", help="stop after the pairs, to read them first (`pairs --show`)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("eval", help="evaluate a finished run's model against its base on your held-out data")
    p.add_argument("--run", metavar="DIR", help="the run folder (default: the latest finished run)")
    p.add_argument("--demo", action="store_true", help="in the demo workspace")
    p.set_defaults(func=_cmd_eval)
