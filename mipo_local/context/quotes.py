"""Where the writer's own words end: quoted earlier messages (`>` lines, "On … wrote:", "Am …
schrieb:", "Le … a écrit :", Outlook's "-----Original Message-----" and `From: … Sent: …` blocks in
English, German, French and more, Lotus Notes headers) and signatures; and what a quoted original
says about itself (sender, date, first words), for linking a reply to it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass
from typing import Optional, Sequence

@dataclass(frozen=True)
class QuotedOriginal:
    """What a reply's quoted block says about the message it answers."""
    name: str = ""                      # the original sender's name, as quoted
    address: str = ""                   # their address, when quoted
    date: Optional[dt.datetime] = None  # naive: the replier's local time, as the header showed it
    words: tuple[str, ...] = ()         # the first words of the quoted text


_FROM_LINE = re.compile(r"^\*?(From|Von|De|Van|Fra|Från|Da|Od|Lähettäjä)\s*:\*?\s*(.+)$", re.I)
_DATE_LINE = re.compile(r"^\*?(Sent|Date|Gesendet|Datum|Envoyé|Date d'envoi|Verzonden|Sendt|Skickat|Inviato|Data|"
                        r"Wysłano|Lähetetty)\s*:\*?\s*(.+)$", re.I)
# Attributions, as (opening word, closing words): "On <date>, <who> wrote:", "Am <date> schrieb <who>:",
# "Le <date>, <who> a écrit :", "El <date>, <who> escribió:", "Op <date> schreef <who>:". Told apart by
# plain string tests (a regex with two lazy groups backtracks cubically on a long line).
_WHO_AFTER = (("am ", " schrieb "), ("op ", " schreef "))
_WHO_BEFORE = (("on ", "wrote:"), ("le ", "a écrit :"), ("le ", "a écrit:"), ("el ", "escribió:"))
_TIME_OR_YEAR = re.compile(r"\d{1,2}[:h]\d{2}(?::\d{2})?(?:\s*[AaPp]\.?[Mm]\.?)?|\b\d{4}\b")
_LOTUS_DATE = re.compile(r"^(?P<who>.*?)\s*(?:on\s+)?(?P<date>\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*[AP]M)\s*$", re.I)
_HEADER_NAMES = re.compile(r"^\*?(To|Cc|Subject|An|Betreff|À|A|Objet|Cc ?:|Aan|Onderwerp|Til|Emne|Till|Ämne|Oggetto)\s*:", re.I)
_SEPARATOR = re.compile(r"^\s*(?:_{10,}|[-=*]{2,}[-_=* ]{0,40}(Original Message|Ursprüngliche Nachricht|Message d'origine|Original-Nachricht|"
                        r"Message original|Forwarded message|Oorspronkelijk bericht|Opprinnelig melding|"
                        r"Ursprungligt meddelande|Forwarded by.*)[-_=* ]{0,80}|Begin forwarded message:)\s*$", re.I)


_SCAN_LINES = 400
_LINE_CHARS = 2000


def parse_quoted(quoted: str) -> QuotedOriginal:
    """Sender, date and first words of the first message quoted in `quoted` (an empty record when
    it names none: plain `>` quoting still gives the first words)."""
    return _first_quoted(quoted)[0]


def quoted_message(quoted: str) -> tuple[str, str]:
    """(sender's name, text) of the first message quoted in `quoted`: its words after its header, up
    to where it quotes an earlier one in turn; ("", "") when it quotes none that can be told apart."""
    found, lines, start = _first_quoted(quoted)
    if start is None:
        return "", ""
    body = _unquote(lines[start:]).split("\n")
    while body and (not body[0].strip() or _HEADER_NAMES.match(body[0].strip())):
        body.pop(0)                      # header lines after a blank one (Lotus Notes' "Subject:")
    return found.name, split_reply("\n".join(body))[0]


def _first_quoted(quoted: str) -> tuple[QuotedOriginal, list[str], Optional[int]]:
    """`parse_quoted`'s record, the quote's lines and the line its message's text starts on (None: no message)."""
    # a quote's header opens it: only its first lines are looked at, and only so much of each line
    lines = [line.rstrip()[:_LINE_CHARS] for line in (quoted or "").replace("\r\n", "\n").split("\n", _SCAN_LINES)]
    n = len(lines)
    for i, line in enumerate(lines[:_SCAN_LINES]):
        stripped = line.strip().lstrip("> ").strip()
        if not stripped or _SEPARATOR.match(stripped):
            continue
        m = _FROM_LINE.match(stripped)
        if m and any(_DATE_LINE.match(lines[j].strip().lstrip("> ")) or _HEADER_NAMES.match(lines[j].strip().lstrip("> "))
                     for j in range(i + 1, min(n, i + 5))):
            date = None
            j = i + 1
            while j < n and lines[j].strip().lstrip("> ").strip():
                h = lines[j].strip().lstrip("> ")
                d = _DATE_LINE.match(h)
                if d and date is None:
                    date = parse_loose_date(d.group(2))
                j += 1
            name, address = _who(m.group(2))
            return QuotedOriginal(name, address, date, first_words(_unquote(lines[j:j + 20]))), lines, j
        for k in (1, 2, 3):      # an attribution may be wrapped over up to three lines
            if i + k > n:
                break
            joined = " ".join(l.strip() for l in lines[i:i + k])
            if not joined.endswith(":") or len(joined) > 600:
                continue
            found = _attribution(joined)
            if found:
                name, address = _who(found[0])
                return (QuotedOriginal(name, address, parse_loose_date(found[1]),
                                       first_words(_unquote(lines[i + k:i + k + 20]))), lines, i + k)
        lotus = _LOTUS_DATE.match(stripped) if stripped[-1:] in ("M", "m") and "/" in stripped else None
        if lotus and any(_HEADER_NAMES.match(lines[j].strip()) for j in range(i + 1, min(n, i + 3))):
            who = lotus.group("who") or (lines[i - 1].strip() if i > 0 else "")
            j = i + 1
            while j < n and lines[j].strip():
                j += 1
            name, address = _who(who)
            return (QuotedOriginal(name, address, parse_loose_date(lotus.group("date")),
                                   first_words(_unquote(lines[j:j + 20]))), lines, j)
        if line.lstrip().startswith(">"):
            return QuotedOriginal(words=first_words(_unquote(lines[i:i + 20]))), lines, i
    return QuotedOriginal(), lines, None


def _attribution(line: str) -> Optional[tuple[str, str]]:
    """(who, date text) of an attribution line, or None."""
    lower = line.lower()
    for opening, middle in _WHO_AFTER:
        at = lower.find(middle)
        if lower.startswith(opening) and at > 0 and lower.endswith(":"):
            return line[at + len(middle):-1], line[len(opening):at]
    for opening, closing in _WHO_BEFORE:
        if lower.startswith(opening) and lower.endswith(closing):
            inner = line[len(opening):len(line) - len(closing)].strip()
            ends = [m.end() for m in _TIME_OR_YEAR.finditer(inner)]
            if not ends:
                return None
            who = re.sub(r"^[\s,]*(?:(?:at|à|a las|um)\s+)?", "", inner[ends[-1]:])
            return who.strip(" ,"), inner[:ends[-1]]
    return None


def _rfc2822(text: str) -> Optional[dt.datetime]:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.replace(tzinfo=None) if parsed is not None else None


def _unquote(lines: Sequence[str]) -> str:
    return "\n".join(re.sub(r"^(\s*>)+\s?", "", line) for line in lines)


def _who(text: str) -> tuple[str, str]:
    """A quoted sender as (name, address): `Name <a@b>`, `"Last, First" <a@b>`, `[mailto:a@b]`, `Name/ORG@ORG`."""
    text = text[:300].strip().strip("*").strip()
    address = ""
    m = re.search(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", text)
    if m:
        address = m.group(0).lower()
        text = (text[:m.start()] + text[m.end():])
    text = re.sub(r"\[mailto:\s*\]|<\s*>|\(\s*\)|mailto:", " ", text)
    text = re.sub(r"/[A-Z0-9/]+(@\w+)?$|@\w+$", "", text.strip())       # Lotus Notes: Tim Belden/HOU/ECT@ECT
    name = " ".join(text.replace('"', " ").replace("'", " ").split()).strip(" ,;:<>[]")
    return name, address


def first_words(text: str, n: int = 12) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.casefold())[:n])


_MONTHS = {}
for _i, _names in enumerate((
    "january jan januar janvier janv jänner", "february feb februar février févr fevrier", "march mar märz maerz mars mrz",
    "april apr avril avr", "may mai", "june jun juni juin", "july jul juli juillet juil",
    "august aug août aout", "september sep sept septembre", "october oct oktober okt octobre",
    "november nov novembre", "december dec dezember dez décembre decembre déc"), 1):
    for _name in _names.split():
        _MONTHS[_name] = _i
_MONTH_RE = "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True))
_DMY_NAMED = re.compile(rf"\b(\d{{1,2}})(?:er|\.)?\s+({_MONTH_RE})\.?,?\s+(\d{{4}})", re.I)
_MDY_NAMED = re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})")
_DOTTED = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{2,4})\b")
_DASHED = re.compile(r"\b(\d{1,2})-(\d{1,2})-(\d{4})\b")
_SLASHED = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b")
_TIME = re.compile(r"\b(\d{1,2})[:h](\d{2})(?::\d{2})?\s*([AaPp]\.?[Mm]\.?)?")


def parse_loose_date(text: str) -> Optional[dt.datetime]:
    """A date as quote headers write it, in English, German or French, named or numeric months
    ("Monday, May 14, 2001 2:00 PM", "Montag, 14. Mai 2001 14:00", "lun. 14 mai 2001 à 14:00",
    "14.05.2001 14:00", "05/14/2001 02:00 PM", RFC 2822). Naive (the writer's local time); None
    when no date is found."""
    text = " ".join((text or "")[:300].split())
    if not text:
        return None
    day = month = year = None
    rest = text
    for pattern, order in ((_DMY_NAMED, "dmy"), (_MDY_NAMED, "mdy"), (_ISO, "ymd"), (_DOTTED, "dmy"), (_DASHED, "dmy"), (_SLASHED, "mdy")):
        m = pattern.search(text)
        if not m:
            continue
        parts = dict(zip(order, m.groups()))
        try:
            month = _MONTHS[parts["m"].lower()] if not parts["m"].isdigit() else int(parts["m"])
            day, year = int(parts["d"]), int(parts["y"])
        except (KeyError, ValueError):
            continue
        if year < 100:
            year += 2000 if year < 70 else 1900
        if pattern is _SLASHED and month > 12:          # 14/05/2001: day first
            day, month = month, day
        rest = text[:m.start()] + " " + text[m.end():]
        break
    if day is None:
        return _rfc2822(text)
    hour = minute = 0
    t = _TIME.search(rest)
    if t:
        hour, minute = int(t.group(1)), int(t.group(2))
        ampm = (t.group(3) or "").lower().replace(".", "")
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
    try:
        return dt.datetime(year, month, day, hour, minute)
    except ValueError:
        return None




# ----------------------------------------------------------------------------- the own words

_ATTRIBUTION = re.compile(
    r"^(On\b.{0,300}\bwrote:|Le\b.{0,300}\ba écrit\s?:|Am\b.{0,300}\bschrieb.{0,100}:|El\b.{0,300}\bescribió:|"
    r"Den\b.{0,300}\bskrev.{0,100}:|Op\b.{0,300}\bschreef.{0,100}:|[^<>]{0,200}<[^<>@\s]+@[^<>\s]+>\s+(wrote|skrev|schrieb):)\s*$",
    re.I,
)
_SIGNATURE_LINES = re.compile(r"^(Sent from my \w+|Get Outlook for \w+|Sendt fra min \w+|Von meinem \w+ gesendet|"
                              r"Envoyé de mon \w+)", re.I)


def _header_block_at(lines: Sequence[str], i: int) -> bool:
    """Line i opens a quoted message's header block: a separator, `From: …` (Von:, De : …) followed
    by a Sent/Date line or two To/Subject lines, or a Lotus Notes `date time` line followed by To:/cc:."""
    stripped = lines[i].strip()
    if _SEPARATOR.match(stripped):
        return True
    if _FROM_LINE.match(stripped):      # then a date line, or two header lines: "From: Oslo\nTo: Bergen" is a trip
        after = [l.strip() for l in lines[i + 1:i + 5]]
        return any(_DATE_LINE.match(l) for l in after) or sum(1 for l in after if _HEADER_NAMES.match(l)) >= 2
    return (stripped[-1:] in ("M", "m") and "/" in stripped and bool(_LOTUS_DATE.match(stripped))
            and any(_HEADER_NAMES.match(l.strip()) for l in lines[i + 1:i + 3]))


def split_reply(body: str) -> tuple[str, str, str]:
    """Separate the writer's own words from quoted earlier messages and the signature.

    Returns (own, quoted, signature). Quoted: `>` lines, an attribution ("On … wrote:", "Am …
    schrieb:", "Le … a écrit :", wrapped over up to three lines) and everything from an Outlook
    separator or header block (or a Lotus Notes one) on.
    """
    lines = body.replace("\r\n", "\n").split("\n")
    own: list[str] = []
    quoted: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped and not stripped.startswith(">") and _header_block_at(lines, i):
            lotus = _LOTUS_DATE.match(stripped) if stripped[-1:] in ("M", "m") and "/" in stripped else None
            if lotus and not lotus.group("who").strip() and own and own[-1].strip() and len(own[-1]) < 100:
                quoted.append(own.pop())          # the sender's name stands on the line above the date
            quoted.extend(lines[i:])
            break
        if stripped and not stripped.startswith(">"):
            span = next((k for k in (1, 2, 3) if i + k <= len(lines)
                         and lines[i + k - 1].rstrip().endswith(":")        # every attribution ends so
                         and sum(len(l) for l in lines[i:i + k]) <= 1000       # and is short (the regex backtracks)
                         and all(l.strip() for l in lines[i:i + k])
                         and _ATTRIBUTION.match(" ".join(l.strip() for l in lines[i:i + k]))), 0)
            if span:
                quoted.extend(lines[i:i + span])
                i += span
                continue
        if stripped.startswith(">"):
            quoted.append(line)
        else:
            own.append(line)
        i += 1
    signature: list[str] = []
    for j in range(len(own) - 1, -1, -1):
        if own[j].rstrip() in ("--", "-- ") or own[j] == "-- ":
            signature = own[j + 1:]
            own = own[:j]
            break
    while own and (not own[-1].strip() or _SIGNATURE_LINES.match(own[-1].strip())):
        if own[-1].strip():
            signature.insert(0, own[-1])
        own.pop()
    text = "\n".join(own).strip()
    return re.sub(r"\n{3,}", "\n\n", text), "\n".join(quoted).strip(), "\n".join(signature).strip()
