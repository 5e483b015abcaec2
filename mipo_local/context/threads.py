"""Which stored message a reply answers when it carries no In-Reply-To or References (most mail
written in Outlook): by its normalized subject and what its quoted original says about itself (the
sender, date and first words under `-----Original Message-----`, `From: … Sent: …`, `On … wrote:`,
`Am … schrieb:`, `Le … a écrit :` or `>` quoting). Pure functions; the store asks them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .quotes import QuotedOriginal, first_words, parse_quoted

# Reply and forward prefixes in the languages mail clients write them: Re, Aw/Antw (de, nl), Sv/Vs
# (nordic), Rif/R (it), Odp (pl), Fwd/Fw/WG (de)/TR (fr)/Doorst (nl); "Re[2]:" and "Re(2):" too.
_REPLY = r"(?:re|aw|antw|antwort|sv|vs|rif|r|odp|ynt|atb)"
_FORWARD = r"(?:fwd?|wg|tr|doorst|vb|rv|enc)"
_LEADING = re.compile(rf"^(?:\s*(?:{_REPLY}|{_FORWARD})\s*(?:\[\d+\]|\(\d+\))?\s*:|\s*\[[^\]]{{1,40}}\])+", re.I)
_REPLY_PREFIX = re.compile(rf"^\s*(?:\[[^\]]{{1,40}}\]\s*)?{_REPLY}\s*(?:\[\d+\]|\(\d+\))?\s*:", re.I)


def bare_subject(subject: str) -> str:
    """A subject without its reply/forward prefixes and list tags, spaces folded ("" for none)."""
    text = " ".join(_LEADING.sub("", (subject or "")[:1000], count=1).split())
    return "" if text.casefold() == "(no subject)" else text


def normalize_subject(subject: str) -> str:
    """The subject a thread shares: `bare_subject`, case folded."""
    return bare_subject(subject).casefold()


def is_reply_subject(subject: str) -> bool:
    """A subject that says it answers something ("Re:", "AW:", "SV:" …; not a plain forward)."""
    return bool(_REPLY_PREFIX.match(subject or ""))


# ------------------------------------------------------------------------------------ matching

# A reply is compared with at most this many of the latest earlier messages of its thread (a list's
# "Weekly report" may hold thousands).
MAX_CANDIDATES = 50


def _name_words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[^\W\d_]+", text.casefold()) if len(w) > 1)


def _as_datetime(iso: Optional[str]) -> Optional[dt.datetime]:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso)
    except ValueError:
        return None


def _comparable(when: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """A date to order messages by: UTC, or as written when it has no time zone."""
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when


class Candidate:
    """A stored message that a reply might answer, with what the matcher compares computed once."""

    __slots__ = ("id", "author", "local", "order", "words", "names")

    def __init__(self, id: int, author: str, name: str, date: Optional[str], body: str) -> None:
        self.id = id
        self.author = author.lower()
        when = _as_datetime(date)
        self.local = when.replace(tzinfo=None) if when else None     # the wall time the sender wrote it at
        self.order = _comparable(when)
        self.words = first_words(body, 40)
        self.names = _name_words(name) | _name_words(self.author.split("@")[0].replace(".", " ").replace("_", " "))


@dataclass(frozen=True)
class Reply:
    """The user's reply, as the matcher needs it."""
    date: Optional[str]
    quoted: str
    recipients: tuple[str, ...]


def _sender_score(quote: QuotedOriginal, wanted: frozenset[str], cand: Candidate) -> int:
    if quote.address:
        return 3 if quote.address == cand.author else -2
    if not wanted:
        return 0
    if wanted <= cand.names:
        return 2
    return 1 if wanted & cand.names else -2


def _date_score(quote: QuotedOriginal, cand: Candidate) -> int:
    if quote.date is None or cand.local is None:
        return 0
    # the quote shows the replier's local time, the stored date the sender's: allow any time zone
    gap = abs((cand.local - quote.date).total_seconds())
    if gap < 120 or ((gap % 1800 < 120 or gap % 1800 > 1680) and gap <= 14 * 3600):
        return 2
    return 1 if gap <= 26 * 3600 else -2


def _words_score(quote: QuotedOriginal, cand: Candidate) -> int:
    if not quote.words or not cand.words:
        return 0
    if cand.words[:len(quote.words)] == quote.words:
        return 3
    shared = len(set(quote.words) & set(cand.words)) / len(set(quote.words))
    return 2 if shared >= 0.7 else (0 if shared >= 0.3 else -1)


class Thread:
    """The stored messages of one thread (one normalized subject), ordered by date once for all the
    replies matched against them."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.undated = [c for c in candidates if c.order is None]
        self.dated = sorted((c for c in candidates if c.order is not None), key=lambda c: c.order)
        self.orders = [c.order for c in self.dated]

    def before(self, sent: Optional[dt.datetime]) -> list[Candidate]:
        """The latest MAX_CANDIDATES messages sent before `sent` (an hour's clock skew forgiven;
        messages without a date, and every message when `sent` is unknown, pass), latest first."""
        end = len(self.dated) if sent is None else bisect.bisect_right(self.orders, sent + dt.timedelta(hours=1))
        return (self.dated[max(0, end - MAX_CANDIDATES):end][::-1] + self.undated)[:MAX_CANDIDATES]


def best_original(reply: Reply, thread: "Thread | Sequence[Candidate]") -> Optional[int]:
    """The id of the message of `thread` (stored messages with the reply's normalized subject) that
    the reply answers, or None. With a quoted original its sender, date and first words decide;
    without one, the latest earlier message from someone the reply was sent to (or, failing that,
    the only earlier message)."""
    if not isinstance(thread, Thread):
        thread = Thread(thread)
    candidates = thread.before(_comparable(_as_datetime(reply.date)))
    if not candidates:
        return None
    quote = parse_quoted(reply.quoted)
    wanted = _name_words(quote.name) if quote.name else frozenset()
    recipients = {r.lower() for r in reply.recipients}
    best = None
    for rank, c in enumerate(candidates):           # latest first: ties go to the latest
        evidence = _sender_score(quote, wanted, c) + _date_score(quote, c) + _words_score(quote, c)
        if c.author in recipients:
            evidence += 1
        if best is None or evidence > best[0]:
            best = (evidence, c.id)
    has_quote = bool(quote.name or quote.address or quote.date or quote.words)
    if best[0] >= (2 if has_quote else 1):
        return best[1]
    return candidates[0].id if len(candidates) == 1 and not has_quote else None
