"""Chatting with the personal model in the terminal."""

from __future__ import annotations

import argparse
import sys

from ..errors import MipoError
from .common import echo


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


def chat_target(args: argparse.Namespace):
    """What `--base` / `--profile NAME` ask chat (and serve) to load: a GGUF path, or a profile's
    base + adapter (`profiles.ProfileModel`). Without either: the default profile's merged model."""
    from ..chat.session import chat_model

    if args.profile is not None:
        if args.base:
            raise MipoError("--base and --profile name two different models; give one of them")
        from ..chat.profiles import profile_model

        return profile_model(args.profile)
    return chat_model(base=args.base)


COMMANDS_HELP = ("Type a message; /new starts a new conversation, /profile NAME switches profile, /quit (or Ctrl-D) "
                 "leaves; a message that begins with / is written //.")


def _switch_profile(session, name: str, label: str = "personal") -> None:
    """`/profile NAME` inside chat: the session goes on with that profile's adapter and sources."""
    from ..chat.profile_names import DEFAULT
    from ..chat.profiles import list_profiles, profile_model

    if not name:
        current = session.profile.label if session.profile else (f"(the {label} model)" if session.model.adapter is None else "?")
        echo(f"(profile: {current}; profiles: {', '.join([DEFAULT] + [p.name for p in list_profiles()])})")
        return
    try:
        target = profile_model(name)
    except MipoError as exc:
        echo(f"(no switch: {exc})")
        return
    seconds = session.use_profile(target)
    echo(f"(profile {target.label}: switched in {seconds * 1000:.0f} ms; your writing is now searched in "
         f"{'all your sources' if target.sources is None else 'its sources'})")


def _cmd_chat(args: argparse.Namespace) -> int:
    from ..chat.session import ChatSession, chat_model, list_conversations, load_conversation

    if args.list:
        conversations = list_conversations()
        for c in conversations:
            echo(f"{c.id}  {len(c.messages) // 2:3} turns  {c.created}  {c.title}")
        if not conversations:
            echo("no saved conversations yet; start one with `mipo-local chat`")
        return 0
    if args.message is not None and not args.message.strip():
        raise MipoError("-m was given nothing; give the message to send, or leave -m out to chat")
    if args.compare and args.base:
        raise MipoError("--compare puts your personal model beside the base; with --base both would be the base. "
                        "Use one of them")
    if args.compare and (args.resume or args.conversation):
        raise MipoError("--compare starts a new side-by-side conversation; it cannot continue a saved one "
                        "(leave out --resume/--conversation)")
    conversation = None
    if args.resume or args.conversation:
        found = list_conversations()
        if args.conversation:
            conversation = load_conversation(args.conversation)
        elif found:
            conversation = found[0]
        else:
            raise MipoError("there is no saved conversation to continue; start one with `mipo-local chat`")
    target = chat_target(args)
    sessions = [("personal" if not args.base else "base", ChatSession(target, conversation=conversation))]
    if args.compare:
        sessions[0][1].close()
        sessions = [("personal", ChatSession(target)), ("base", ChatSession(chat_model(base=True), save=False))]
    try:
        if conversation:
            for m in conversation.messages[-6:]:
                echo(f"{'you' if m['role'] == 'user' else 'model'}> {m['content']}")
        messages = [args.message] if args.message is not None else None
        if messages is None:
            echo(COMMANDS_HELP)
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
            if text.strip() == "/profile" or text.strip().startswith("/profile "):
                _switch_profile(sessions[0][1], text.strip()[len("/profile"):].strip(), sessions[0][0])
                continue
            if text.strip() == "/new":
                sessions = [(label, ChatSession(s.profile or s.model.path, save=s.save)) for label, s in sessions]
                echo("(new conversation)")
                continue
            if text.strip().startswith("//"):          # a message that begins with "/"
                text = text.strip()[1:]
            elif text.strip().startswith("/"):         # /help, or a command mistyped: not for the model
                echo(COMMANDS_HELP if text.strip() == "/help" else f"(unknown command {text.strip().split()[0]!r}) "
                     + COMMANDS_HELP)
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



def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with your personal model (your relevant writing retrieved each turn)")
    p.add_argument("--base", action="store_true", help="chat with the base model instead")
    p.add_argument("--profile", metavar="NAME", help="chat with a profile's model: the base with its LoRA adapter, "
                                                     "retrieving from its sources (`/profile NAME` switches inside chat)")
    p.add_argument("--compare", action="store_true", help="each message answered by the personal and the base model")
    p.add_argument("--resume", action="store_true", help="continue the most recent conversation")
    p.add_argument("--conversation", metavar="ID", help="continue a saved conversation")
    p.add_argument("--list", action="store_true", help="list saved conversations")
    p.add_argument("--message", "-m", metavar="TEXT", help="send one message, print the answer and exit")
    p.add_argument("--show-context", action="store_true", help="print which of your excerpts were given to the model")
    p.add_argument("--demo", action="store_true", help="in the demo workspace (after `mipo-local run --demo`)")
    p.set_defaults(func=_cmd_chat)
