"""Email addresses in one form: lower case, `x at y` (mailing-list archives' spelling) as `x@y`."""

from __future__ import annotations

import re

_SPELLED_AT = re.compile(r"(?<![\w.+@-])([\w.+-]+) at ([\w-]+(?:\.[\w-]+)+)(?![\w@-])")


def normalize_address(address: str) -> str:
    """`Ada@Example.org`, `<ada@example.org>` and `ada at example.org` → `ada@example.org`."""
    text = address.strip().strip("<>").strip()
    if "@" not in text:
        text = _SPELLED_AT.sub(r"\1@\2", text)
    return text.lower()


def unspell_at(header: str) -> str:
    """A From/To header with `x at y` addresses (pipermail) rewritten as `x@y`, for address parsing."""
    return header if "@" in header else _SPELLED_AT.sub(r"\1@\2", header)
