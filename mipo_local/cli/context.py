"""Your writing: importing it and looking at what was imported."""

from __future__ import annotations

import argparse

from ..errors import MipoError
from .common import echo, int_in


def _cmd_import(args: argparse.Namespace) -> int:
    from ..context import import_paths
    from ..settings import load_settings, save_settings, size_limit_problem
    from .progress import TerminalProgress

    if args.max_file_mb is not None and (problem := size_limit_problem(args.max_file_mb)):
        raise MipoError(f"--max-file-mb: {problem}; give a size above 0, e.g. --max-file-mb 20 (the default)")
    settings = load_settings()
    if args.me:
        from ..addresses import parse_addresses

        given = [a for entry in args.me for a in parse_addresses(entry)]   # one line for one that is not an address
        settings = settings.with_addresses(list(settings.addresses) + given)
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
    from ..context import ContextStore
    from ..settings import load_settings

    with ContextStore() as store:
        for flag, value in (("--remove", args.remove), ("--search", args.search)):
            if value is not None and not value.strip():
                raise MipoError(f"{flag} was given nothing; give {'a source (see context --list)' if flag == '--remove' else 'words to search for'}")
        if args.remove:
            source = store.remove_source(args.remove)
            echo(f"removed {source.path} ({source.documents} documents); your files were not touched")
            return 0
        if args.search:
            hits = store.search(args.search, args.k)
            for hit in hits:
                text = " ".join(hit.text.split())
                echo(f"[{hit.score:5.2f}] {hit.title} ({hit.kind}{', ' + hit.date[:10] if hit.date else ''})\n        {text[:300]}")
            if not hits:
                echo(f"nothing of your writing matches {args.search!r}" if store.counts()["chunks"] else
                     "nothing imported yet; import your writing with `mipo-local import PATH`")
            return 0
        if args.list:
            sources = store.sources()
            for s in sources:
                echo(f"{s.id:3}  {s.path}  [{s.kind}]  {s.files} files, {s.documents} documents, imported {s.imported_at or 'never'}")
            if not sources:
                echo("no sources yet; import your writing with `mipo-local import PATH`")
            return 0
        counts = store.counts()
        addresses = ", ".join(load_settings().addresses) or "none set (mipo-local import --me ADDRESS)"
        echo(f"{counts['sources']} sources, {counts['files']} files: {counts['notes']} notes, {counts['emails']} emails "
              f"({counts['own_emails']} yours), {counts['chunks']} chunks, {counts['reply_links']} reply links")
        echo(f"your addresses: {addresses}")
    return 0


def register(sub) -> None:
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
    p.add_argument("-k", type=int_in(1, 1000), default=8, help="how many results --search shows (1 to 1000)")
    p.set_defaults(func=_cmd_context)
