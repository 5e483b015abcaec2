"""`mipo-local serve`: the personal model behind an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import argparse

from .common import echo, int_in


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from ..chat.openai_protocol import MODEL_ALIAS
    from ..chat.server import API_KEY_ENV, Server, check_exposure
    from .chat import chat_target

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    check_exposure(args.host, api_key)            # before the model is loaded: one clear line
    server = Server(chat_target(args), host=args.host, port=args.port, api_key=api_key)
    echo(f"Serving {server.model_id} (or \"{MODEL_ALIAS}\") at {server.url}"
         f"{' (API key required)' if api_key else ''}; your writing is retrieved into every request. Ctrl-C stops.",
         flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    echo("Stopped.")
    return 0


def register(sub) -> None:
    from ..chat.server import API_KEY_ENV, DEFAULT_HOST, DEFAULT_PORT

    p = sub.add_parser("serve", help="an OpenAI-compatible HTTP endpoint for your personal model (/v1/chat/completions)")
    p.add_argument("--base", action="store_true", help="serve the base model instead")
    p.add_argument("--profile", metavar="NAME", help="serve a profile's model (the base with its LoRA adapter), "
                                                     "retrieving from its sources")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; any other needs an API key)")
    p.add_argument("--port", type=int_in(0, 65535), default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--api-key", metavar="KEY",
                   help=f"require `Authorization: Bearer KEY` on every request (default: ${API_KEY_ENV}, if set)")
    p.add_argument("--demo", action="store_true", help="in the demo workspace (after `mipo-local run --demo`)")
    p.set_defaults(func=_cmd_serve)
