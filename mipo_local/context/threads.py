"""Which stored message a reply answers when it carries no In-Reply-To or References (most mail
written in Outlook): by its normalized subject and what its quoted original says about itself (the
sender, date and first words under `-----Original Message-----`, `From: … Sent: …`, `On … wrote:`,
`Am … schrieb:`, `Le … a écrit :` or `>` quoting). Pure functions; the store asks them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .quotes import QuotedOriginal, first_words, parse_quoted

# Reply and forward prefixes in the languages mail clients write them: Re, Aw/Antw (de, nl), Sv/Vs
# (nordic), Rif/R (it), Odp (pl), Fwd/Fw/WG (de)/TR (fr)/Doorst (nl); "Re[2]:" and "Re(2):" too.
_REPLY = r"(?:re|aw|antw|antwort|sv|vs|rif|r|odp|ynt|atb)"
_FORWARD = r"(?:fwd?|wg|tr|doorst|vb|rv|enc)"
_PREFIX = re.compile(rf"^\s*(?:\[[^\]]{{1,40}}\]\s*)?(?:{_REPLY}|{_FORWARD})\s*(?:\[\d+\]|\(\d+\))?\s*:\s*", re.I)
_REPLY_PREFIX = re.compile(rf"^\s*(?:\[[^\]]{{1,40}}\]\s*)?{_REPLY}\s*(?:\[\d+\]|\(\d+\))?\s*:", re.I)
_LIST_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")


def normalize_subject(subject: str) -> str:
    """The subject a thread shares: reply/forward prefixes and list tags stripped, case and spaces folded."""
    text = subject or ""
    while True:
        stripped = _LIST_TAG.sub("", _PREFIX.sub("", text, count=1), count=1)
        if stripped == text:
            break
        text = stripped
    text = " ".join(text.split()).casefold()
    return "" if text == "(no subject)" else text


def is_reply_subject(subject: str) -> bool:
    """A subject that says it answers something ("Re:", "AW:", "SV:" …; not a plain forward)."""
    return bool(_REPLY_PREFIX.match(subject or ""))


# ------------------------------------------------------------------------------------ matching

@dataclass(frozen=True)
class Candidate:
    """A stored message that a reply might answer."""
    id: int
    author: str
    name: str
    date: Optional[str]        # ISO 8601, as stored
    body: str


@dataclass(frozen=True)
class Reply:
    """The user's reply, as the matcher needs it."""
    date: Optional[str]
    quoted: str
    recipients: tuple[str, ...]


def _name_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W\d_]+", text.casefold()) if len(w) > 1}


def _sender_score(quote: QuotedOriginal, cand: Candidate) -> int:
    if quote.address:
        return 3 if quote.address == cand.author.lower() else -2
    if not quote.name:
        return 0
    wanted = _name_words(quote.name)
    if not wanted:
        return 0
    known = _name_words(cand.name) | _name_words(cand.author.split("@")[0].replace(".", " ").replace("_", " "))
    if wanted <= known:
        return 2
    if wanted & known:
        return 1
    return -2


def _as_local(iso: Optional[str]) -> Optional[dt.datetime]:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        return None


def _date_score(quote: QuotedOriginal, cand: Candidate) -> int:
    stored = _as_local(cand.date)
    if quote.date is None or stored is None:
        return 0
    # the quote shows the replier's local time, the stored date the sender's: allow any time zone
    gap = abs((stored.replace(tzinfo=None) - quote.date).total_seconds())
    if gap < 120 or (gap % 1800 < 120 or gap % 1800 > 1680) and gap <= 14 * 3600:
        return 2
    if gap <= 26 * 3600:
        return 1
    return -2


def _words_score(quote: QuotedOriginal, cand: Candidate) -> int:
    if not quote.words:
        return 0
    theirs = first_words(cand.body, 40)
    if not theirs:
        return 0
    if theirs[:len(quote.words)] == quote.words:
        return 3
    shared = len(set(quote.words) & set(theirs)) / len(set(quote.words))
    return 2 if shared >= 0.7 else (0 if shared >= 0.3 else -1)


def _before(cand: Candidate, reply: Reply) -> bool:
    """The candidate was sent before the reply (an hour's clock skew forgiven; unknown dates pass)."""
    a, b = _as_local(cand.date), _as_local(reply.date)
    if a is None or b is None:
        return True
    try:
        return a <= b + dt.timedelta(hours=1)
    except TypeError:       # one with a time zone, one without
        return a.replace(tzinfo=None) <= b.replace(tzinfo=None) + dt.timedelta(hours=14)


def best_original(reply: Reply, candidates: Sequence[Candidate]) -> Optional[int]:
    """The id of the candidate (a stored message with the reply's normalized subject) that the
    reply answers, or None. With a quoted original its sender, date and first words decide; without
    one, the latest earlier message from someone the reply was sent to."""
    candidates = [c for c in candidates if _before(c, reply)]
    if not candidates:
        return None
    quote = parse_quoted(reply.quoted)
    recipients = {r.lower() for r in reply.recipients}
    scored = []
    for c in candidates:
        evidence = _sender_score(quote, c) + _date_score(quote, c) + _words_score(quote, c)
        if c.author.lower() in recipients:
            evidence += 1
        scored.append((evidence, c.date or "", c.id))
    scored.sort(reverse=True)
    best = scored[0]
    has_quote = bool(quote.name or quote.address or quote.date or quote.words)
    return best[2] if best[0] >= (2 if has_quote else 1) else None
