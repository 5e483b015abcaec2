"""The parsed form of one piece of imported writing, before it is stored."""

from __future__ import annotations

import hashlib
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

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.kind, self.title, self.body, self.quoted, self.date or "", self.author):
            h.update(part.encode("utf-8", "replace"))
            h.update(b"\x00")
        return h.hexdigest()
