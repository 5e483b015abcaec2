"""Email addresses in one form: lower case, `x at y` (mailing-list archives' spelling) as `x@y`."""

from __future__ import annotations

import re

_SPELLED_AT = re.compile(r"(?<![\w.+@-])([\w.+-]+) at ([\w-]+(?:\.[\w-]+)+)(?![\w@-])")


def normalize_address(address: str) -> str:
    """`Ada@Example.org`, `<ada@example.org>`, `Ada <ada@example.org>` and `ada at example.org` →
    `ada@example.org`."""
    text = address.strip()
    if "<" in text and ">" in text:                  # a display name with the address in brackets
        import email.utils

        text = email.utils.parseaddr(text)[1] or text
    text = text.strip().strip("<>").strip()
    if "@" not in text:
        text = _SPELLED_AT.sub(r"\1@\2", text)
    return text.lower()


def unspell_at(header: str) -> str:
    """A From/To header with `x at y` addresses (pipermail) rewritten as `x@y`, for address parsing."""
    return header if "@" in header else _SPELLED_AT.sub(r"\1@\2", header)


_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;.][^@\s<>,;]*(?<!\.)")


def parse_addresses(text: str) -> list[str]:
    """The addresses a person typed into one field, separated by commas or semicolons, each normalized
    (`normalize_address`), in order, without repeats; blank entries are skipped. The app's first-run
    walk-through and its Settings read the field with this one rule.

    Raises `MipoError` naming the first entry that is not an email address."""
    from .errors import MipoError

    out: list[str] = []
    for entry in text.replace(";", ",").split(","):
        if not entry.strip():
            continue
        address = normalize_address(entry)
        if not _ADDRESS.fullmatch(address):
            raise MipoError(f"{entry.strip()!r} is not an email address (name@example.org); fix it or leave it out")
        if address not in out:
            out.append(address)
    return out
