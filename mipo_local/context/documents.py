"""The parsed form of one piece of imported writing, before it is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class ParsedDocument:
    locator: str                 # unique within its file: "" for a note, the message id for an email
    kind: str                    # "note" | "email"
    title: str
    body: str                    # the writer's own words
    date: Optional[str] = None   # ISO 8601
    author: str = ""             # an email address, or "" for the user's notes
    author_is_user: bool = True
    quoted: str = ""             # quoted earlier messages (emails)
    signature: str = ""
    message_id: Optional[str] = None
    in_reply_to: Optional[str] = None
    meta: dict[str, Any] = field(default_factory=dict)
    # (chunk_tokens, [(chunk, its token estimate)…]): the body already chunked (by a worker
    # process that parsed it), used by the store when it chunks with the same budget
    chunks: Optional[tuple[int, list[tuple[str, int]]]] = field(default=None, compare=False, repr=False)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.kind, self.title, self.body, self.quoted, self.date or "", self.author):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\x00")
        return h.hexdigest()

    def fingerprint(self) -> Optional[str]:
        """An email's identity whatever its Message-ID: sender, date (to the minute, in UTC), subject and
        text (case, spacing and punctuation folded). The same message kept in `sent`, `sent_items` and
        `all_documents` by a mail program that gave each copy its own Message-ID has one fingerprint.
        None for notes, and for an email without a sender or a date (too little to tell copies apart)."""
        if self.kind != "email" or not self.author or not self.date:
            return None
        try:
            when = dt.datetime.fromisoformat(self.date)
        except ValueError:
            return None
        if when.tzinfo is not None:
            when = when.astimezone(dt.timezone.utc)
        h = hashlib.sha256()
        for part in (self.author.lower(), when.strftime("%Y-%m-%dT%H:%M"), _folded(self.title),
                     _folded(" ".join((self.body, self.quoted, self.signature)))):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\x00")
        return h.hexdigest()


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())
