"""What the commands share: safe printing, and flags made from the settings dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Iterable

from ..options import check_choices, described, kind_of


def echo(*parts, **kwargs) -> None:
    """print(), with terminal escapes and control characters taken out of what is printed: titles,
    paths and text come from the user's files and mail, and must not drive the terminal."""
    from ..context.text import for_terminal

    print(*(for_terminal(p) if isinstance(p, str) else p for p in parts), **kwargs)


def add_settings_flags(parser: argparse.ArgumentParser, cls, names: Iterable[str], *, prefix: str) -> None:
    """One flag per named field of the settings dataclass `cls`, with the field's help, choices and
    default (`--field-name`, or the flag the field names). Values land in `prefix.field`."""
    fields = described(cls)
    for name in names:
        field = fields[name]
        meta = field.metadata
        shown = meta["help"] if field.default is None else f"{meta['help']} (default: {field.default})"
        kwargs = {"dest": f"{prefix}.{name}", "default": None, "help": shown}
        kind = kind_of(field)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            # choices are checked by check_choices (one clear line), not by argparse (usage + error)
            kwargs["type"] = kind
            kwargs["metavar"] = name.upper()
            if meta["choices"]:
                kwargs["help"] += f"; one of {', '.join(map(str, meta['choices']))}"
        parser.add_argument(meta["flag"] or "--" + name.replace("_", "-"), **kwargs)


def given_flags(args: argparse.Namespace, prefix: str) -> dict:
    """The settings fields given on the command line under `prefix`."""
    return {key.split(".", 1)[1]: value for key, value in vars(args).items()
            if key.startswith(prefix + ".") and value is not None}


def apply_flags(args: argparse.Namespace, settings, prefix: str):
    """`settings` with the fields given on the command line replaced (a value outside a field's
    choices is a one-line MipoError)."""
    given = given_flags(args, prefix)
    settings = dataclasses.replace(settings, **given) if given else settings
    check_choices(settings)
    return settings


def apply_train_flags(args: argparse.Namespace, settings):
    """As apply_flags for TrainSettings; --rank without --lora-alpha sets alpha to 2 × rank."""
    given = given_flags(args, "train")
    if "lora_rank" in given and "lora_alpha" not in given:
        given["lora_alpha"] = 2 * given["lora_rank"]
    settings = dataclasses.replace(settings, **given) if given else settings
    check_choices(settings)
    return settings


def int_in(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`, else a one-line error saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; give {low} to {high}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a wrong command line reported as one `mipo-local: error:` line (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"mipo-local: error: {message}; see `{self.prog} --help`\n")
