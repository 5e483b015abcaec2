"""`profile`: several personal models over one base, each from a subset of your sources."""

from __future__ import annotations

import argparse

from ..errors import MipoError
from .common import echo


def _cmd_profile(args: argparse.Namespace) -> int:
    from ..chat.active_model import active_model
    from ..chat.profiles import create_profile, list_profiles, remove_profile

    if args.create:
        profile = create_profile(args.create, args.source or [])
        echo(f"profile {profile.name}: {', '.join(s.path for s in profile.sources)}")
        echo(f"personalize it with `mipo-local run --profile {profile.name}`, then `mipo-local chat --profile {profile.name}`")
        return 0
    if args.source:
        raise MipoError("--source goes with --create NAME")
    if args.remove:
        profile = remove_profile(args.remove)
        echo(f"removed profile {profile.name}; its runs and models stay in the workspace, your sources stay imported")
        return 0
    profiles = list_profiles()
    default = active_model()
    echo(f"default  (all sources)  model: {default or 'none yet (mipo-local run)'}")
    for p in profiles:
        model = active_model(p.name)
        sources = ", ".join(s.path for s in p.sources) or "no sources left (they were removed)"
        echo(f"{p.name}  ({sources})  model: {model or f'none yet (mipo-local run --profile {p.name})'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("profile", help="profiles: a personal model per subset of your sources (work mail, home notes)")
    p.add_argument("--create", metavar="NAME", help="a new profile over the sources given with --source")
    p.add_argument("--source", action="append", metavar="SOURCE",
                   help="an imported source (its path or number in `context --list`) for --create (repeatable)")
    p.add_argument("--list", action="store_true", help="the profiles, their sources and models (the default)")
    p.add_argument("--remove", metavar="NAME", help="forget a profile (its runs, models and sources stay)")
    p.add_argument("--demo", action="store_true", help="in the demo workspace")
    p.set_defaults(func=_cmd_profile)
