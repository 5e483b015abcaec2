"""The `mipo-local` command. Without arguments it opens the app; subcommands run single stages.

Heavy libraries are imported inside the commands that need them so `--help` is instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import MipoError


def _cmd_models(args: argparse.Namespace) -> int:
    from .catalog import download, get_card, load_catalog

    if args.download:
        from .cli_progress import TerminalProgress

        path = download(get_card(args.download), progress=TerminalProgress())
        print(path)
        return 0
    print(f"{'name':24} {'arch':6} {'params':>6} {'size':>8} {'memory':>7}  available")
    for card in load_catalog():
        where = card.local_path()
        status = f"yes ({'bundled' if card.source_kind == 'bundled' else where})" if where else f"no: `mipo-local models --download {card.name}`"
        mark = "*" if card.default else " "
        print(f"{card.name + mark:24} {card.architecture:6} {card.parameters:>6} {card.size_mb:>5} MB {card.memory_gb:>5.1f} GB  {status}")
    print("* the default. Any GGUF file or Hugging Face model folder also works as --base.")
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    from .catalog import resolve_base
    from .cli_progress import TerminalProgress
    from .modelio import base_checkpoint

    base = resolve_base(args.base)
    print(base_checkpoint(base, progress=TerminalProgress()))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .cli_progress import TerminalProgress
    from .modelio import export_model

    result = export_model(
        args.base,
        Path(args.checkpoint),
        Path(args.out),
        quant=args.quant,
        name=args.name,
        verify=not args.no_verify,
        overwrite=args.force,
        progress=TerminalProgress(),
    )
    check = ""
    if result.correlation is not None:
        check = f"; F16 logits vs checkpoint: correlation {result.correlation:.5f}, argmax {result.argmax_agreement:.1%}"
    print(f"wrote {result.path} ({result.quant}, {result.size_bytes / 1e6:.1f} MB{check})")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .cli_progress import TerminalProgress
    from .context import import_paths
    from .settings import load_settings, save_settings

    settings = load_settings()
    if args.me:
        settings = settings.with_addresses(list(settings.addresses) + args.me)
    if args.max_file_mb is not None:
        import dataclasses

        settings = dataclasses.replace(settings, max_file_mb=args.max_file_mb)
    if args.me or args.max_file_mb is not None:
        save_settings(settings)
    summary = import_paths(args.paths, settings=settings, progress=TerminalProgress())
    if args.me:
        from .context import ContextStore

        with ContextStore() as store:
            store.set_user_addresses(settings.addresses)
    for line in summary.lines():
        print(line)
    return 0


def _cmd_context(args: argparse.Namespace) -> int:
    from .context import ContextStore
    from .settings import load_settings

    with ContextStore() as store:
        if args.remove:
            source = store.remove_source(args.remove)
            print(f"removed {source.path} ({source.documents} documents); your files were not touched")
            return 0
        if args.search:
            for hit in store.search(args.search, args.k):
                text = " ".join(hit.text.split())
                print(f"[{hit.score:5.2f}] {hit.title} ({hit.kind}{', ' + hit.date[:10] if hit.date else ''})\n        {text[:300]}")
            return 0
        if args.list:
            for s in store.sources():
                print(f"{s.id:3}  {s.path}  [{s.kind}]  {s.files} files, {s.documents} documents, imported {s.imported_at or 'never'}")
            return 0
        counts = store.counts()
        addresses = ", ".join(load_settings().addresses) or "none set (mipo-local import --me ADDRESS)"
        print(f"{counts['sources']} sources, {counts['files']} files: {counts['notes']} notes, {counts['emails']} emails "
              f"({counts['own_emails']} yours), {counts['chunks']} chunks, {counts['reply_links']} reply links")
        print(f"your addresses: {addresses}")
    return 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from .context import ContextStore
    from .pairs import PairSettings, export_jsonl, format_pair, generate_pairs, pair_rows

    with ContextStore() as store:
        if args.show is not None or args.export:
            if args.export:
                n = export_jsonl(store, Path(args.export), split=args.split)
                print(f"wrote {n} pairs ({args.split}) to {args.export}")
            if args.show is not None:
                rows = pair_rows(store, split="all", include_dropped=True)
                for row in rows[: args.show]:
                    print(format_pair(row) + "\n")
            return 0
        from .catalog import resolve_base
        from .cli_progress import TerminalProgress
        from .modelio.bases import sampling_gguf
        from .settings import load_settings

        progress = TerminalProgress()
        base = resolve_base(args.base or load_settings().base_model or None)
        defaults = PairSettings()
        settings = PairSettings(
            examples=args.examples or defaults.examples, strategy=args.strategy, samples=args.samples,
            temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
            n_parallel=args.parallel,
        )
        gguf = sampling_gguf(base, progress=progress)
        summary = generate_pairs(store, gguf, settings, progress=progress)
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.dropped.items())) or "none"
        print(f"{summary.made} new pairs ({summary.done_before} from before, {summary.total} in this run); "
              f"dropped: {dropped}; {summary.tokens_per_second:.0f} tokens/s")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from .cli_progress import TerminalProgress
    from .settings import load_settings
    from .train import TrainSettings
    from .train.run import train_and_export

    defaults = TrainSettings()
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "device": args.device, "learning_rate": args.lr, "beta": args.beta,
        "lora_rank": args.rank, "batch_size": args.batch_size}.items() if v is not None}
    if args.rank is not None:
        overrides["lora_alpha"] = 2 * args.rank
    settings = dataclasses.replace(defaults, **overrides)
    result = train_and_export(args.base or load_settings().base_model or None, settings, resume=args.resume,
                              export=not args.no_export, quant=args.quant, max_steps=args.max_steps,
                              progress=TerminalProgress())
    if result.stopped:
        print(f"stopped at a step boundary with a checkpoint in {result.run_dir}; continue with `mipo-local train --resume`")
        return 130
    before, after = result.metrics.get("heldout_before"), result.metrics.get("heldout_after")
    if before and after:
        print(f"held-out pairs ({after['pairs']}): reward accuracy {before['reward_accuracy']:.0%} -> {after['reward_accuracy']:.0%}, "
              f"margin {before['reward_margin']:+.3f} -> {after['reward_margin']:+.3f}")
    print(f"run: {result.run_dir}")
    if result.gguf:
        print(f"personal model: {result.gguf}\nLoRA for llama.cpp (on the base GGUF): {result.lora_gguf}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    checks = run_doctor(probe=not args.no_probe)
    for check in checks:
        print(f"{'ok ' if check.ok else 'BAD'} {check.name:16} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


def _cmd_app(args: argparse.Namespace) -> int:
    try:
        from tui.app import run_app
    except ImportError as exc:
        raise MipoError(f"the app cannot start ({exc}); run `make setup` to install its dependencies") from None
    run_app()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mipo-local",
        description="Make a small language model personal to you, entirely on this machine. "
        "Without a command, the app opens.",
    )
    parser.add_argument("--version", action="version", version=f"mipo-local {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the catalog of base models and which are on this machine")
    p.add_argument("--download", metavar="NAME", help="fetch a catalog model from the Hugging Face hub")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("checkpoint", help="prepare a base as a trainable PyTorch checkpoint (cached) and print its folder")
    p.add_argument("--base", default=None, help="catalog name, GGUF path or model folder (default: the bundled model)")
    p.set_defaults(func=_cmd_checkpoint)

    p = sub.add_parser("export", help="write a (merged) checkpoint as a GGUF, metadata from its base, quantized")
    p.add_argument("--base", required=True, help="catalog name, GGUF path or model folder the checkpoint came from")
    p.add_argument("--checkpoint", required=True, help="folder of the merged model (safetensors + config.json)")
    p.add_argument("--quant", default="Q8_0", help="F16, Q8_0, Q6_K, Q5_K_M or Q4_K_M (default Q8_0)")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--name", default=None, help="general.name of the new model")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-verify", action="store_true", help="skip the logit check of the F16 file against the checkpoint")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="import notes folders, Obsidian vaults, mbox/.eml files and Maildir folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--me", action="append", metavar="ADDRESS", help="one of your email addresses (repeatable)")
    p.add_argument("--max-file-mb", type=float, default=None, help="skip notes and emails larger than this (saved)")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("context", help="what was imported: counts, sources, search, remove a source")
    p.add_argument("--list", action="store_true", help="list the imported sources")
    p.add_argument("--remove", metavar="SOURCE", help="forget a source (its path or number); your files stay")
    p.add_argument("--search", metavar="QUERY", help="the best chunks of your writing for QUERY")
    p.add_argument("-k", type=int, default=8, help="how many results --search shows")
    p.set_defaults(func=_cmd_context)

    p = sub.add_parser("pairs", help="sample MIPO preference pairs (with and without your context); resumable")
    p.add_argument("--base", default=None, help="catalog name, GGUF path or model folder (default: your chosen model)")
    p.add_argument("--examples", type=int, default=None, help="at most this many examples (default 200)")
    p.add_argument("--strategy", default="drop", choices=["drop", "shuffle", "persona"],
                   help="the negative's context: none, another example's, or an unrelated persona")
    p.add_argument("--samples", type=int, default=1, help="pairs per example")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parallel", type=int, default=16, help="sequences decoded together")
    p.add_argument("--show", type=int, metavar="N", default=None, help="print N pairs of the latest run for reading")
    p.add_argument("--export", metavar="FILE", help="write the latest run's pairs as JSONL (trl conversational format)")
    p.add_argument("--split", default="train", choices=["train", "heldout", "all"], help="which pairs --export writes")
    p.set_defaults(func=_cmd_pairs)

    p = sub.add_parser("train", help="LoRA DPO on your pairs, then merge, export to GGUF and quantize")
    p.add_argument("--base", default=None, help="catalog name, GGUF path or model folder (default: your chosen model)")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--device", default=None, help="auto (cuda > mps > cpu), cuda, mps or cpu")
    p.add_argument("--resume", action="store_true", help="continue the last stopped run from its last checkpoint")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--beta", type=float, default=None, help="DPO beta")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (alpha = 2 x rank)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--quant", default=None, help="quantization of the exported model (default: by the model's widths)")
    p.add_argument("--no-export", action="store_true", help="train the adapter only")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("doctor", help="versions, device, threads, disk, and whether llama.cpp can decode here")
    p.add_argument("--no-probe", action="store_true", help="skip the decode test")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("app", help="open the app (the same as no command)")
    p.set_defaults(func=_cmd_app)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", _cmd_app)
    try:
        return func(args)
    except MipoError as exc:
        print(f"mipo-local: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mipo-local: interrupted; nothing partial was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
