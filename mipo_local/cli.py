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


def echo(*parts, **kwargs) -> None:
    """print(), with terminal escapes and control characters taken out of what is printed: titles,
    paths and text come from the user's files and mail, and must not drive the terminal."""
    from .context.text import for_terminal

    print(*(for_terminal(p) if isinstance(p, str) else p for p in parts), **kwargs)


def _cmd_models(args: argparse.Namespace) -> int:
    from .catalog import download, get_card, load_catalog

    if args.download:
        from .cli_progress import TerminalProgress

        path = download(get_card(args.download), progress=TerminalProgress())
        echo(path)
        return 0
    echo(f"{'name':24} {'arch':6} {'params':>6} {'size':>8} {'memory':>7}  available")
    for card in load_catalog():
        where = card.local_path()
        status = f"yes ({'bundled' if card.source_kind == 'bundled' else where})" if where else f"no: `mipo-local models --download {card.name}`"
        mark = "*" if card.default else " "
        echo(f"{card.name + mark:24} {card.architecture:6} {card.parameters:>6} {card.size_mb:>5} MB {card.memory_gb:>5.1f} GB  {status}")
    echo("* the default. Any GGUF file or Hugging Face model folder also works as --base.")
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    from .catalog import resolve_base
    from .cli_progress import TerminalProgress
    from .modelio import base_checkpoint

    base = resolve_base(args.base)
    echo(base_checkpoint(base, progress=TerminalProgress()))
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
    echo(f"wrote {result.path} ({result.quant}, {result.size_bytes / 1e6:.1f} MB{check})")
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
    for line in summary.lines(verbose=args.verbose):
        echo(line)
    return 0


def _cmd_context(args: argparse.Namespace) -> int:
    from .context import ContextStore
    from .settings import load_settings

    with ContextStore() as store:
        if args.remove:
            source = store.remove_source(args.remove)
            echo(f"removed {source.path} ({source.documents} documents); your files were not touched")
            return 0
        if args.search:
            for hit in store.search(args.search, args.k):
                text = " ".join(hit.text.split())
                echo(f"[{hit.score:5.2f}] {hit.title} ({hit.kind}{', ' + hit.date[:10] if hit.date else ''})\n        {text[:300]}")
            return 0
        if args.list:
            for s in store.sources():
                echo(f"{s.id:3}  {s.path}  [{s.kind}]  {s.files} files, {s.documents} documents, imported {s.imported_at or 'never'}")
            return 0
        counts = store.counts()
        addresses = ", ".join(load_settings().addresses) or "none set (mipo-local import --me ADDRESS)"
        echo(f"{counts['sources']} sources, {counts['files']} files: {counts['notes']} notes, {counts['emails']} emails "
              f"({counts['own_emails']} yours), {counts['chunks']} chunks, {counts['reply_links']} reply links")
        echo(f"your addresses: {addresses}")
    return 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from .context import ContextStore
    from .pairs import PairSettings, export_jsonl, format_pair, generate_pairs, pair_rows

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
        from .catalog import resolve_base
        from .cli_progress import TerminalProgress
        from .modelio.bases import sampling_gguf
        from .settings import load_settings

        progress = TerminalProgress()
        base = resolve_base(args.base or load_settings().base_model or None)
        given = {"examples": args.examples, "heldout_pairs": args.heldout_pairs, "strategy": args.strategy,
                 "samples": args.samples, "temperature": args.temperature, "top_p": args.top_p,
                 "max_new_tokens": args.max_new_tokens, "seed": args.seed, "n_parallel": args.parallel,
                 "candidates": args.candidates, "context_in": args.context_in}
        settings = PairSettings(**{k: v for k, v in given.items() if v is not None})
        from .modelio import base_checkpoint

        gguf = sampling_gguf(base, progress=progress)
        summary = generate_pairs(store, gguf, settings, progress=progress,
                                 base_checkpoint=base_checkpoint(base, progress=progress))
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.dropped.items())) or "none"
        echo(f"{summary.made} new pairs ({summary.done_before} from before, {summary.total} in this run); "
             f"dropped: {dropped}; {summary.truncated} answers hit the token limit (trimmed to their last sentence); "
             f"{summary.tokens_per_second:.0f} tokens/s")
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
        echo(f"stopped at a step boundary with a checkpoint in {result.run_dir}; continue with `mipo-local train --resume`")
        return 130
    before, after = result.metrics.get("heldout_before"), result.metrics.get("heldout_after")
    if before and after:
        echo(f"held-out pairs ({after['pairs']}): reward accuracy {before['reward_accuracy']:.0%} -> {after['reward_accuracy']:.0%}, "
              f"margin {before['reward_margin']:+.3f} -> {after['reward_margin']:+.3f}")
    echo(f"run: {result.run_dir}")
    if result.gguf:
        echo(f"personal model: {result.gguf}\nLoRA for llama.cpp (on the base GGUF): {result.lora_gguf}")
    return 0


def _run_settings(args: argparse.Namespace):
    import dataclasses

    from .pipeline import RunSettings, demo_settings

    settings = demo_settings() if args.demo else RunSettings()
    pairs = {k: v for k, v in {"examples": args.examples, "heldout_pairs": args.heldout_pairs, "strategy": args.strategy,
                               "max_new_tokens": args.max_new_tokens, "candidates": args.candidates,
                               "context_in": args.context_in}.items() if v is not None}
    train = {k: v for k, v in {"epochs": args.epochs, "device": args.device}.items() if v is not None}
    evaluation = {"examples": args.eval_examples} if args.eval_examples is not None else {}
    return dataclasses.replace(
        settings, base=args.base or settings.base, quant=args.quant or settings.quant,
        max_steps=args.max_steps if args.max_steps is not None else settings.max_steps,
        pairs=dataclasses.replace(settings.pairs, **pairs), train=dataclasses.replace(settings.train, **train),
        evaluation=dataclasses.replace(settings.evaluation, **evaluation))


def _cmd_run(args: argparse.Namespace) -> int:
    import time

    from .cli_progress import TerminalProgress
    from .pipeline import run_pipeline

    sources, addresses = [Path(p) for p in args.paths], list(args.me or [])
    if args.demo:
        from . import workspace
        from .demo import DEMO_ADDRESSES, demo_sources

        if sources:
            raise MipoError("--demo uses the bundled demo corpus; leave out the paths (or drop --demo)")
        echo(f"demo workspace: {workspace.home()} (the fictional Ada Lindqvist; your own data is not touched)")
        sources, addresses = demo_sources(), list(DEMO_ADDRESSES)
    start = time.perf_counter()
    result = run_pipeline(sources, _run_settings(args), addresses=addresses, new=args.new,
                          until="pairs" if args.pairs_only else None, progress=TerminalProgress())
    total = time.perf_counter() - start
    if result.up_to_date:
        echo(f"nothing changed since {result.run_dir.name} finished; its report: {result.run_dir / 'report.md'} "
              "(--new runs again)")
        return 0
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
    echo(f"active model: {result.model}  (chat: mipo-local chat{' --demo' if args.demo else ''})")
    echo(f"total {total:.0f} s")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .cli_progress import TerminalProgress
    from .pipeline import evaluate_run

    _, md = evaluate_run(Path(args.run) if args.run else None, progress=TerminalProgress())
    echo(md.read_text(encoding="utf-8"))
    echo(f"(written to {md} and {md.with_suffix('.json')})")
    return 0


def _print_turn(session, text: str, label: str = "") -> None:
    if label:
        echo(f"[{label}] ", end="", flush=True)
    for piece in session.send(text):
        echo(piece, end="", flush=True)
    echo()


def _side_by_side_width() -> int:
    """The terminal's width when it is wide enough for two answers side by side, else 0."""
    import shutil

    width = shutil.get_terminal_size((0, 0)).columns
    return width if sys.stdout.isatty() and width >= 100 else 0


def _print_side_by_side(answers: list[tuple[str, str]], width: int) -> None:
    import itertools
    import textwrap

    col = (width - 3) // 2
    columns = []
    for label, text in answers:
        lines = [f"[{label}]"]
        for para in text.splitlines() or [""]:
            lines += textwrap.wrap(para, col) or [""]
        columns.append(lines)
    for left, right in itertools.zip_longest(*columns, fillvalue=""):
        echo(f"{left:<{col}} | {right}")


def _cmd_chat(args: argparse.Namespace) -> int:
    from .chat import ChatSession, chat_model, list_conversations, load_conversation

    if args.list:
        for c in list_conversations():
            echo(f"{c.id}  {len(c.messages) // 2:3} turns  {c.created}  {c.title}")
        return 0
    conversation = None
    if args.resume or args.conversation:
        found = list_conversations()
        if args.conversation:
            conversation = load_conversation(args.conversation)
        elif found:
            conversation = found[0]
        else:
            raise MipoError("there is no saved conversation to continue; start one with `mipo-local chat`")
    sessions = [("personal" if not args.base else "base", ChatSession(chat_model(base=args.base), conversation=conversation))]
    if args.compare:
        sessions = [("personal", ChatSession(chat_model())), ("base", ChatSession(chat_model(base=True), save=False))]
    try:
        if conversation:
            for m in conversation.messages[-6:]:
                echo(f"{'you' if m['role'] == 'user' else 'model'}> {m['content']}")
        messages = [args.message] if args.message else None
        if messages is None:
            echo("Type a message; /new starts a new conversation, /quit (or Ctrl-D) leaves.")
        while True:
            if messages is not None:
                if not messages:
                    break
                text = messages.pop(0)
            else:
                try:
                    text = input("you> ")
                except EOFError:
                    echo()
                    break
            if text.strip() in ("/quit", "/exit"):
                break
            if text.strip() == "/new":
                sessions = [(label, ChatSession(s.model_path, save=s.save)) for label, s in sessions]
                echo("(new conversation)")
                continue
            if not text.strip():
                continue
            if len(sessions) > 1 and _side_by_side_width():
                _print_side_by_side([(label, session.ask(text)) for label, session in sessions], _side_by_side_width())
            else:
                for label, session in sessions:
                    _print_turn(session, text, label if len(sessions) > 1 else "")
            if args.show_context and sessions[0][1].last_snippets:
                for s in sessions[0][1].last_snippets:
                    echo(f"  (context: {s.title})")
    finally:
        for _, s in sessions:
            s.close()
    return 0


def _cmd_active(args: argparse.Namespace) -> int:
    from .active_model import active_model, history, switch_back

    if args.switch_back:
        echo(f"active again: {switch_back()}")
        return 0
    model = active_model()
    echo(f"active model: {model or 'none yet (mipo-local run makes one)'}")
    for earlier in reversed(history()):
        echo(f"  earlier: {earlier}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    checks = run_doctor(probe=not args.no_probe)
    for check in checks:
        echo(f"{'ok ' if check.ok else 'BAD'} {check.name:16} {check.detail}")
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

    p = sub.add_parser("import", help="import notes folders, Obsidian vaults, mbox/.eml/Outlook files and mail folders (Maildir, MH)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--me", action="append", metavar="ADDRESS", help="one of your email addresses (repeatable)")
    p.add_argument("--max-file-mb", type=float, default=None, help="skip notes and emails larger than this (saved)")
    p.add_argument("--verbose", "-v", action="store_true", help="list every skipped and ignored file, not only counts by reason")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("context", help="what was imported: counts, sources, search, remove a source")
    p.add_argument("--list", action="store_true", help="list the imported sources")
    p.add_argument("--remove", metavar="SOURCE", help="forget a source (its path or number); your files stay")
    p.add_argument("--search", metavar="QUERY", help="the best chunks of your writing for QUERY")
    p.add_argument("-k", type=int, default=8, help="how many results --search shows")
    p.set_defaults(func=_cmd_context)

    p = sub.add_parser("pairs", help="sample MIPO preference pairs (with and without your context); resumable")
    p.add_argument("--base", default=None, help="catalog name, GGUF path or model folder (default: your chosen model)")
    p.add_argument("--examples", type=int, default=None, help="at most this many training examples")
    p.add_argument("--heldout-pairs", type=int, default=None, help="and pairs for at most this many held-out examples")
    p.add_argument("--strategy", default=None, choices=["drop", "shuffle", "persona"],
                   help="the negative's context: none, another example's, or an unrelated persona")
    p.add_argument("--samples", type=int, default=None, help="pairs per example")
    p.add_argument("--candidates", type=int, default=None, help="answers sampled per side; the highest-MI pair is kept")
    p.add_argument("--context-in", default=None, choices=["system", "user"], help="where the context goes in the prompt")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--parallel", type=int, default=None, help="sequences decoded together")
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

    p = sub.add_parser("run", help="the whole pipeline: import, pairs, train, export, evaluate (resumable)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="notes folders, vaults, mail files to import first")
    p.add_argument("--demo", action="store_true", help="the bundled demo corpus and model, in a separate demo workspace")
    p.add_argument("--me", action="append", metavar="ADDRESS", help="one of your email addresses (repeatable)")
    p.add_argument("--base", default=None, help="catalog name, GGUF path or model folder (default: your chosen model)")
    p.add_argument("--examples", type=int, default=None, help="examples to make pairs from (default 200; demo 40)")
    p.add_argument("--heldout-pairs", type=int, default=None, help="pairs for at most this many held-out examples")
    p.add_argument("--strategy", default=None, choices=["drop", "shuffle", "persona"], help="the negative's context")
    p.add_argument("--candidates", type=int, default=None, help="answers sampled per side; the highest-MI pair is kept")
    p.add_argument("--context-in", default=None, choices=["system", "user"], help="where the context goes in the prompt")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest sampled answer")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--device", default=None, help="auto (cuda > mps > cpu), cuda, mps or cpu")
    p.add_argument("--max-steps", type=int, default=None, help="stop training after this many steps")
    p.add_argument("--quant", default=None, help="F16, Q8_0, Q6_K, Q5_K_M or Q4_K_M (default: by the model's widths)")
    p.add_argument("--eval-examples", type=int, default=None, help="held-out examples to evaluate on")
    p.add_argument("--new", action="store_true", help="start a new run even if one with these settings can continue")
    p.add_argument("--pairs-only", action="store_true", help="stop after the pairs, to read them first (`pairs --show`)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("chat", help="chat with your personal model (your relevant writing retrieved each turn)")
    p.add_argument("--base", action="store_true", help="chat with the base model instead")
    p.add_argument("--compare", action="store_true", help="each message answered by the personal and the base model")
    p.add_argument("--resume", action="store_true", help="continue the most recent conversation")
    p.add_argument("--conversation", metavar="ID", help="continue a saved conversation")
    p.add_argument("--list", action="store_true", help="list saved conversations")
    p.add_argument("--message", "-m", metavar="TEXT", help="send one message, print the answer and exit")
    p.add_argument("--show-context", action="store_true", help="print which of your excerpts were given to the model")
    p.add_argument("--demo", action="store_true", help="in the demo workspace (after `mipo-local run --demo`)")
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("eval", help="evaluate a finished run's model against its base on your held-out data")
    p.add_argument("--run", metavar="DIR", help="the run folder (default: the latest finished run)")
    p.add_argument("--demo", action="store_true", help="in the demo workspace")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("active", help="which personal model is active, the earlier ones, and switching back")
    p.add_argument("--switch-back", action="store_true", help="make the previously active model active again")
    p.add_argument("--demo", action="store_true", help="in the demo workspace")
    p.set_defaults(func=_cmd_active)

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
    if getattr(args, "demo", False):   # run/chat/eval/active --demo: all in the demo's own workspace
        from . import workspace

        workspace.use_demo_workspace()
    try:
        return func(args)
    except MipoError as exc:
        echo(f"mipo-local: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        echo("mipo-local: interrupted; nothing partial was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
