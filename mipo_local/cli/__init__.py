"""The `mipo-local` command. Without arguments it opens the app; subcommands run single stages.

One module per group of commands, each with a `register(sub)` that adds its parsers; flags that set
a run's settings are made from the settings dataclasses (`common.add_settings_flags`). Heavy
libraries are imported inside the commands that need them so `--help` is instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import MipoError
from . import chat, context, models, pairs, profile, run, serve, train
from .common import OneLineParser, echo

__all__ = ["build_parser", "echo", "main"]


def _cmd_app(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise MipoError("the app needs a terminal (input or output is redirected here); run `mipo-local` in a "
                        "terminal, or use a command: `mipo-local --help` lists them")
    from .. import workspace

    workspace.home()           # a workspace that cannot be used: one line here, not a traceback in the app
    try:
        from tui.app import run_app
    except ImportError as exc:
        raise MipoError(f"the app cannot start ({exc}); run `make setup` to install its dependencies") from None
    run_app()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mipo-local",
        description="Make a small language model personal to you, entirely on this machine. "
        "Without a command, the app opens.",
    )
    parser.add_argument("--version", action="version", version=f"mipo-local {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (context, profile, pairs, train, run, chat, serve, models):   # in the order a person uses them
        group.register(sub)
    p = sub.add_parser("app", help="open the app (the same as no command)")
    p.set_defaults(func=_cmd_app)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", _cmd_app)
    if getattr(args, "demo", False):   # run/chat/eval/active --demo: all in the demo's own workspace
        from .. import workspace

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
