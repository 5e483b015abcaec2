"""Email: .eml files, mbox files and Maildir folders, read with the standard library, read-only.

mbox files are split here rather than with `mailbox.mbox`, which opens files for writing.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.headerregistry
import email.policy
import email.utils
import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .documents import ParsedDocument
from .files import HEAD_BYTES
from .notes import NOTE_EXTENSIONS
from ..addresses import normalize_address, unspell_at
from .quotes import split_reply
from .text import Unreadable, decode_text, html_to_text, strip_controls

# -------------------------------------------------------------------------------------- messages


class _Headers(email.headerregistry.HeaderRegistry):
    """The email package's default header registry, minus two costs that are pure repetition
    (most of the parsing time on a large mailbox): it made a new header class on every header
    access, and parsed a header again on every access — Content-Type eight to ten times per
    message (`get_content_type()` and friends). Here each header class is made once per name,
    and the parsed MIME and address headers are kept by their exact value (most mail repeats a
    few Content-Type values and the same correspondents' From and To). Header objects are
    immutable, so every result is what the default registry returns. Both caches are bounded
    (crafted mail may hold any number of names and values), and a Content-* header is read up to
    8 KB: parsing a crafted one of 250 KB took 7 s."""

    MAX_CLASSES = 512
    MAX_PARSED = 4096
    MAX_VALUE = 256
    MAX_MIME_VALUE = 8192   # a Content-* header read up to this (real ones are well under 1 KB)
    REPEATED = ("content-", "mime-version", "from", "to", "cc", "reply-to", "sender")

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}
        self._parsed: dict[tuple[str, str], object] = {}

    def __getitem__(self, name):
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = super().__getitem__(name)
            if len(self._classes) < self.MAX_CLASSES:
                self._classes[key] = cls
        return cls

    def __call__(self, name, value):
        if len(value) > self.MAX_MIME_VALUE and name.lower().startswith("content-"):
            value = value[:self.MAX_MIME_VALUE]   # crafted parameters: parsing grows faster than the header
        if len(value) > self.MAX_VALUE or not _repeated(name.lower()):
            return self[name](name, value)
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= self.MAX_PARSED:
                self._parsed.clear()
            header = self._parsed[key] = self[name](name, value)
        return header


def _repeated(name: str) -> bool:
    return name.startswith("content-") or name in _Headers.REPEATED


# policy.default with the registry above: the same parse, the same objects
_POLICY = email.policy.default.clone(header_factory=_Headers())


def _raw_header(msg, name: str) -> str:
    """A header's first value as it was in the file, unfolded: never parsed by the policy (a
    malformed address there raises), so a broken header costs that header, not the message."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()
    return ""


def _declared_charset(msg) -> Optional[str]:
    try:
        return msg.get_content_charset()
    except Exception:  # a malformed Content-Type
        return None


def _decode_8bit(value: str, declared: Optional[str]) -> str:
    """Raw 8-bit bytes in a header (the parser keeps them as surrogate escapes) decoded as UTF-8,
    the message's declared charset, or a detected one, instead of shown as replacement characters."""
    if not _has_surrogates(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return decode_text(raw, declared)
    except Unreadable:
        return raw.decode("utf-8", "replace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _unsurrogate(text: str, declared: Optional[str] = None) -> str:
    """Text the email package left with undecodable bytes in it (as surrogates, which cannot be
    stored) decoded like a raw 8-bit header; anything left becomes U+FFFD."""
    if not _has_surrogates(text):
        return text
    text = _decode_8bit(text, declared)
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words (=?charset?q?…?=) decoded; an unknown charset detected instead."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        pass
    out = []
    try:
        parts = email.header.decode_header(value)
    except (ValueError, email.errors.HeaderParseError):
        return value
    for data, charset in parts:
        if isinstance(data, str):
            out.append(data)
            continue
        try:
            out.append(decode_text(data, charset))
        except Unreadable:
            out.append(data.decode("utf-8", "replace"))
    return "".join(out)


def _header(msg, name: str, declared: Optional[str] = None) -> str:
    """A header as one line of text: 8-bit bytes and encoded words decoded, controls stripped."""
    value = _decode_8bit(_raw_header(msg, name), declared)
    return strip_controls(_unsurrogate(_decode_words(value), declared), single_line=True).strip()


def _addresses(msg, name: str, declared: Optional[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, addresses normalized.

    The email package's parser first (it knows encoded words inside display names); where it
    raises (an encoded CR/LF), or the header holds raw 8-bit bytes or a pipermail `x at y`
    address, the header is split here: structure from the raw text, then names decoded."""
    raw = _raw_header(msg, name)
    if not raw:
        return []
    if "@" in raw and not _has_surrogates(raw):
        try:
            header = msg.get(name)
            return [(strip_controls(_unsurrogate(a.display_name, declared), single_line=True).strip(),
                     normalize_address(_unsurrogate(a.addr_spec)))
                    for a in header.addresses if a.addr_spec and a.addr_spec != "<>"]
        except Exception:  # the policy's parser refused it
            pass
    value = strip_controls(unspell_at(_decode_8bit(raw, declared)), single_line=True)
    angle = re.search(r"<([^<>\s]+@[^<>\s]+)>\s*$", value)
    if angle:   # the common `Name <address>` form, whatever the name holds
        display = _unsurrogate(_decode_words(value[:angle.start()]), declared).strip().strip('"').strip()
        return [(strip_controls(display, single_line=True), normalize_address(angle.group(1)))]
    pairs = []
    for display, address in email.utils.getaddresses([value]):
        display = strip_controls(_unsurrogate(_decode_words(display), declared), single_line=True).strip()
        pairs.append((display, normalize_address(address) if address else ""))
    return pairs


def _first_id(value: str) -> Optional[str]:
    match = re.search(r"<[^<>\s]+>", value or "")
    return match.group(0) if match else (value.strip() or None)


def _part_text(part) -> str:
    """A text part's payload as text. The charset a message declares is often wrong or missing
    (8-bit UTF-8 under "us-ascii", Latin-1 under "utf-8"), so the bytes are decoded as a note's are:
    UTF-8 when they are valid UTF-8, then the declared charset, then a detected one
    (`decode_text`); what no charset fits is decoded with replacement characters."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding the email package could not undo
        payload = None
    if not isinstance(payload, bytes):
        payload = b""
    try:
        charset = part.get_content_charset()
    except Exception:  # a malformed Content-Type
        charset = None
    if charset and payload.isascii():   # 7-bit charsets (ISO-2022-JP, UTF-7) are also valid ASCII
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return decode_text(payload, charset)
    except Unreadable:
        try:
            return payload.decode(charset or "utf-8", "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")


def _inline_text_parts(msg) -> list:
    """The text/plain parts of a multipart/mixed message shown inline, in order (Apple Mail writes
    text, then a picture, then more text as three parts); [] when there are fewer than two."""
    if msg.get_content_type() != "multipart/mixed":
        return []
    parts = []
    for part in msg.iter_parts():
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            parts.append(part)
    return parts if len(parts) > 1 else []


def message_body(msg) -> str:
    """The readable text of a message: its text/plain body (every inline text/plain part of a
    multipart/mixed message), else its HTML body as text."""
    inline = _inline_text_parts(msg)
    if inline:
        return "\n\n".join(t for t in (_part_text(p).replace("\r\n", "\n").strip() for p in inline) if t)
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        if msg.get_content_maintype() == "text":
            part = msg
        else:
            return ""
    text = _part_text(part)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").strip()


def parse_message(raw: bytes, *, fallback_id: str) -> ParsedDocument:
    """One RFC 5322 message → a document (author_is_user is decided later, from the user's addresses).

    Raises Unreadable with the reason for anything that cannot be used, whatever went wrong inside
    the email package (a malformed header, MIME parts nested thousands deep)."""
    if not raw.strip():
        raise Unreadable("empty message")
    try:
        return _parse_message(raw, fallback_id)
    except Unreadable:
        raise
    except RecursionError:
        raise Unreadable("malformed email (MIME parts nested too deeply)") from None
    except Exception as exc:  # the email package's own errors on broken input
        raise Unreadable(f"malformed email ({type(exc).__name__})") from None


_LEADING_JUNK = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n)*")


def _parse_message(raw: bytes, fallback_id: str) -> ParsedDocument:
    # a byte-order mark or blank lines before the headers (some exporters write them) would end
    # the header block before it starts
    msg = email.message_from_bytes(_LEADING_JUNK.sub(b"", raw, count=1), policy=_POLICY)
    if msg.defects and not msg.keys():
        raise Unreadable("malformed email (no headers)")
    declared = _declared_charset(msg)
    senders = _addresses(msg, "From", declared)
    subject = _header(msg, "Subject", declared)
    raw_message_id = _header(msg, "Message-ID")
    if not senders and not subject and not raw_message_id:
        raise Unreadable("malformed email (no From, Subject or Message-ID header)")
    name, address = senders[0] if senders else ("", "")
    date = None
    if raw_date := _header(msg, "Date"):
        try:
            date = email.utils.parsedate_to_datetime(raw_date).isoformat()
        except (TypeError, ValueError, IndexError, OverflowError):
            date = None
    own, quoted, signature = split_reply(strip_controls(_unsurrogate(message_body(msg), declared)))
    message_id = _first_id(raw_message_id) or f"<{fallback_id}>"
    in_reply_to = _first_id(_header(msg, "In-Reply-To"))
    if not in_reply_to:
        refs = re.findall(r"<[^<>\s]+>", _header(msg, "References"))
        in_reply_to = refs[-1] if refs else None
    to = [a for _, a in _addresses(msg, "To", declared) + _addresses(msg, "Cc", declared) if a]
    return ParsedDocument(
        locator=message_id,
        kind="email",
        title=subject or "(no subject)",
        body=own,
        date=date,
        author=address,
        author_is_user=False,
        quoted=quoted,
        signature=signature,
        message_id=message_id,
        in_reply_to=in_reply_to,
        meta={"from_name": name, "to": to},
    )


# ----------------------------------------------------------------------------------- containers

_HEADER_LINE = re.compile(rb"[!-9;-~]+:")
_MAIL_HEADERS = {b"from", b"to", b"cc", b"date", b"subject", b"message-id", b"received", b"return-path",
                 b"in-reply-to", b"references", b"mime-version", b"content-type", b"delivered-to", b"reply-to"}


def looks_like_mbox(head: bytes) -> bool:
    """A file named as a mailbox: it starts with a "From " line."""
    return head.startswith(b"From ")


def _header_names(lines: list[bytes]) -> list[bytes]:
    names = []
    for line in lines:
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue
        match = _HEADER_LINE.match(line)
        if not match:
            return []
        names.append(match.group(0)[:-1].lower())
    return names


def _head_lines(head: bytes) -> list[bytes]:
    """The first 40 whole lines of a file's head (a line cut by the head's end is left out)."""
    lines = head.split(b"\n", 40)
    if len(lines) <= 40 and len(head) >= HEAD_BYTES and not head.endswith(b"\n"):
        lines = lines[:-1]
    return lines[:40]


def has_mail_headers(head: bytes) -> bool:
    """The file starts with a header block that names at least one mail header."""
    return bool(_MAIL_HEADERS.intersection(_header_names(_head_lines(head))))


def sniff_mail(head: bytes) -> Optional[str]:
    """What the first few KB of a file say it is, whatever its name: "mbox" (a "From " line and
    then mail headers: mbox files, pipermail's `2016-April.txt` archives), "eml" (a block of mail
    headers), or None (a note, or anything else)."""
    lines = _head_lines(head)
    if head.startswith(b"From ") and len(lines) > 1:
        names = _header_names(lines[1:])
        return "mbox" if len(_MAIL_HEADERS.intersection(names)) >= 2 else None
    names = _header_names(lines)
    return "eml" if len(_MAIL_HEADERS.intersection(names)) >= 3 and (b"from" in names or b"received" in names) else None


# A message starts at a "From " line after a blank line (mboxo/mboxrd) when the line has the
# envelope's shape ("From addr Mon Jan  1 10:00:00 [+0000] 2024") or a header line follows it; after a
# plain line end (two mailboxes joined with `cat`) when it has both. A paragraph of a body that begins
# with "From " (left unescaped by mboxo writers) is no separator: it has neither.
_ENVELOPE = re.compile(rb"From \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       rb"+\d{1,2} +\d{1,2}:\d\d(?::\d\d)?(?: +\S+)? +\d{4}")
_FROM_LINE = re.compile(rb"From [^\r\n]*\r?\n")        # a literal start: the search for candidates is fast
_HEADER = re.compile(rb"[!-9;-~]+:[^\n]*\n")


def _separators(buf, pos: int, endpos: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each separator whose "From " line starts in buf[pos:endpos] and which lies
    whole in buf[:endpos]: start is where its "From " line begins."""
    for m in _FROM_LINE.finditer(buf, pos, endpos):
        at = m.start()
        if at == 0 or buf[at - 1] != 0x0A:                                    # not at a line's start
            continue
        blank = at >= 2 and (buf[at - 2] == 0x0A or (at >= 3 and buf[at - 3:at - 1] == b"\n\r"))
        envelope = _ENVELOPE.match(buf, at, m.end()) is not None
        if (blank and envelope) or ((blank or envelope) and _HEADER.match(buf, m.end(), endpos)):
            yield at, m.end()


def split_mbox(raw: bytes) -> Iterator[bytes]:
    """Messages of an mbox file (mboxo/mboxrd): split at "From " lines that follow a blank line,
    LF or CRLF line ends alike."""
    return split_mbox_stream([raw])


def split_mbox_stream(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """`split_mbox` over a file read in blocks of any size, holding no more than a block and the
    message being read: the same messages, byte for byte, as splitting the whole file."""
    return map(unescape_mbox_chunk, mbox_chunks(blocks))


def mbox_chunks(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The messages of an mbox read in blocks, each as it stands in the file: its "From " line
    first, ">From " lines escaped (`unescape_mbox_chunk` makes it the message).

    The separator (with the header line after it) is searched in whole lines only, so a match is
    never cut by a block's end: every match found in the lines read so far is final, and one not yet
    whole has its "From " line as the last whole line — the search resumes there."""
    buf = bytearray()
    pos = 0        # the separator search resumes here (no match starts before it)
    lines_end = 0  # buf[:lines_end] holds whole lines
    checked = False
    for block in blocks:
        if not block:
            continue
        buf += block
        if not checked:
            if len(buf) < 5:
                continue
            if not looks_like_mbox(bytes(buf[:5])):
                raise Unreadable("not an mbox file (it does not start with a 'From ' line)")
            checked = True
        newline = block.rfind(b"\n")
        if newline < 0:
            continue
        lines_end = len(buf) - len(block) + newline + 1
        cuts, last_end = [], pos
        for cut, end in _separators(buf, pos, lines_end):
            cuts.append(cut)
            last_end = end
        start = 0
        for cut in cuts:
            yield bytes(buf[start:cut])
            start = cut
        # a separator not yet found may wait for the header line after its "From " line, the last
        # whole line: the search resumes at that line
        last_line = buf.rfind(b"\n", 0, lines_end - 1) + 1
        pos = max(last_end, last_line) - start
        lines_end -= start
        del buf[:start]
    if not checked and not looks_like_mbox(bytes(buf)):
        raise Unreadable("not an mbox file (it does not start with a 'From ' line)")
    yield bytes(buf)


def unescape_mbox_chunk(chunk: bytes) -> bytes:
    """A message as split (its "From " line first) without that line, ">From " lines un-escaped."""
    newline = chunk.find(b"\n")
    message = chunk[newline + 1:] if newline >= 0 else b""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", message)


def message_locator(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:20]


def is_maildir(folder: Path) -> bool:
    """`cur/` and `new/` folders, whose files are not notes: a notes folder may have folders of
    those names (`projects/cur/plan.md`). A message's name may end like a note's (`….example.org`)."""
    if not ((folder / "cur").is_dir() and (folder / "new").is_dir()):
        return False
    for sub in ("cur", "new"):
        with os.scandir(folder / sub) as it:
            for n, entry in enumerate(it):
                if n >= 50:
                    break
                if (Path(entry.name).suffix.lower() in NOTE_EXTENSIONS and not _MAILDIR_NAME.match(entry.name)
                        and entry.is_file()):
                    return False
    return True


# a Maildir message's name starts with its delivery time: "1700000001.M1P2Q2.mail.example.org"
_MAILDIR_NAME = re.compile(r"\d{9,}\.")


def maildir_messages(folder: Path) -> Iterator[Path]:
    for sub in ("new", "cur"):
        d = folder / sub
        if d.is_dir():
            for path in sorted(d.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    yield path


def maildir_key(path: Path) -> str:
    """A Maildir message's stable name: the file name without its flags (which change on read)."""
    return path.name.split(":2,")[0].split("!2,")[0]
