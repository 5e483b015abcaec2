"""Making the MIPO pairs, reading them and exporting them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..pairs.settings import PairSettings
from ..pipeline.settings import BASE_HELP
from .common import add_settings_flags, apply_flags, echo

PAIR_FLAGS = ("examples", "heldout_pairs", "strategy", "samples", "candidates", "context_in", "context_tokens",
              "temperature", "top_p", "max_new_tokens", "seed", "n_parallel", "scoring", "own_document", "copy_ceiling",
              "real_text")


def _cmd_pairs(args: argparse.Namespace) -> int:
    from ..context import ContextStore
    from ..pairs import export_jsonl, format_pair, generate_pairs, pair_rows

    with ContextStore() as store:
        if args.show is not None or args.export:
            if args.export:
                n = export_jsonl(store, Path(args.export), split=args.split)
                echo(f"wrote {n} pairs ({args.split}) to {args.export}")
            if args.show is not None:
                rows = pair_rows(store, split="all", include_dropped=True)
                for row in rows[: args.show]:
                    echo(format_pair(row) + "\n")
            return 0
        from ..modelio import base_checkpoint
        from ..modelio.bases import sampling_gguf
        from ..modelio.catalog import resolve_base
        from ..settings import load_settings
        from ..stop import StopFlag
        from .progress import TerminalProgress

        progress = TerminalProgress()
        base = resolve_base(args.base or load_settings().base_model or None)
        settings = apply_flags(args, PairSettings(), "pairs")
        gguf = sampling_gguf(base, progress=progress)
        stop = StopFlag()
        with stop.on_sigint():
            summary = generate_pairs(store, gguf, settings, progress=progress, should_stop=stop,
                                     base_checkpoint=base_checkpoint(base, progress=progress))
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.dropped.items())) or "none"
        echo(f"{summary.made} new pairs ({summary.done_before} from before, {summary.total} in this run); "
             f"dropped: {dropped}; {summary.truncated} answers hit the token limit (trimmed to their last sentence); "
             f"{summary.tokens_per_second:.0f} tokens/s")
        if summary.stopped:
            echo("stopped; the same command again continues where it stopped")
            return 130
    return 0


def register(sub) -> None:
    p = sub.add_parser("pairs", help="sample MIPO preference pairs (with and without your context); resumable")
    p.add_argument("--base", default=None, help=BASE_HELP)
    add_settings_flags(p, PairSettings, PAIR_FLAGS, prefix="pairs")
    p.add_argument("--show", type=int, metavar="N", default=None, help="print N pairs of the latest run for reading")
    p.add_argument("--export", metavar="FILE", help="write the latest run's pairs as JSONL (trl conversational format)")
    p.add_argument("--split", default="train", choices=["train", "heldout", "all"], help="which pairs --export writes")
    p.set_defaults(func=_cmd_pairs)
