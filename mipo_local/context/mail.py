"""Email: .eml files, mbox files and Maildir folders, read with the standard library, read-only.

mbox files are split here rather than with `mailbox.mbox`, which opens files for writing.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from pathlib import Path
from typing import Iterator, Optional

from .documents import ParsedDocument
from .text import Unreadable, decode_text, html_to_text

# ---------------------------------------------------------------------------------------- quotes

_ATTRIBUTION = re.compile(
    r"^(On\b.{0,300}\bwrote:|Le\b.{0,300}\ba écrit\s?:|Am\b.{0,300}\bschrieb.{0,100}:|El\b.{0,300}\bescribió:|"
    r"Den\b.{0,300}\bskrev.{0,100}:|.{0,200}<[^>]+@[^>]+>\s+(wrote|skrev|schrieb):)\s*$",
    re.I,
)
_FORWARD_OR_OUTLOOK = re.compile(r"^(-{2,}\s*(Original Message|Forwarded message|Ursprüngliche Nachricht)\s*-{2,}|_{10,})\s*$", re.I)
_OUTLOOK_HEADER = re.compile(r"^From:\s.+$")
_SIGNATURE_LINES = re.compile(r"^(Sent from my \w+|Get Outlook for \w+|Sendt fra min \w+)", re.I)


def split_reply(body: str) -> tuple[str, str, str]:
    """Separate the writer's own words from quoted earlier messages and the signature.

    Returns (own, quoted, signature). Quoted: `>` lines, an "On … wrote:" attribution and what
    follows an Outlook-style "Original Message" or header block.
    """
    lines = body.replace("\r\n", "\n").split("\n")
    own: list[str] = []
    quoted: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        joined = f"{stripped} {lines[i + 1].strip()}" if i + 1 < len(lines) else stripped
        if _FORWARD_OR_OUTLOOK.match(stripped) or (
            _OUTLOOK_HEADER.match(stripped) and any(re.match(r"^(Sent|Date|To|Subject):", l.strip()) for l in lines[i + 1:i + 4])
        ):
            quoted.extend(lines[i:])
            break
        if _ATTRIBUTION.match(stripped):
            quoted.append(line)
        elif i + 1 < len(lines) and _ATTRIBUTION.match(joined) and lines[i + 1].strip() and not stripped.startswith(">"):
            quoted.extend(lines[i:i + 2])
            i += 2
            continue
        elif stripped.startswith(">"):
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


# -------------------------------------------------------------------------------------- messages


def _header(msg, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse
        value = msg.get_all(name, [None])[0] if hasattr(msg, "get_all") else None
    return str(value).strip() if value is not None else ""


def _first_id(value: str) -> Optional[str]:
    match = re.search(r"<[^<>\s]+>", value or "")
    return match.group(0) if match else (value.strip() or None)


def _part_text(part) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError, AssertionError, ValueError):
        content = None
    if isinstance(content, bytes):
        content = None
    if content is None:
        payload = part.get_payload(decode=True) or b""
        content = decode_text(payload, part.get_content_charset())
    return content


def message_body(msg) -> str:
    """The readable text of a message: its text/plain body, else its HTML body as text."""
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
    """One RFC 5322 message → a document (author_is_user is decided later, from the user's addresses)."""
    if not raw.strip():
        raise Unreadable("empty message")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.defects and not msg.keys():
        raise Unreadable("malformed email (no headers)")
    sender = _header(msg, "From")
    subject = _header(msg, "Subject")
    if not sender and not subject and not msg.get("Message-ID"):
        raise Unreadable("malformed email (no From, Subject or Message-ID header)")
    name, address = email.utils.parseaddr(sender)
    date = None
    if raw_date := _header(msg, "Date"):
        try:
            date = email.utils.parsedate_to_datetime(raw_date).isoformat()
        except (TypeError, ValueError, IndexError):
            date = None
    try:
        body = message_body(msg)
    except Unreadable:
        raise
    except Exception as exc:  # a broken MIME structure
        raise Unreadable(f"malformed email ({type(exc).__name__})") from None
    own, quoted, signature = split_reply(body)
    message_id = _first_id(_header(msg, "Message-ID")) or f"<{fallback_id}>"
    in_reply_to = _first_id(_header(msg, "In-Reply-To"))
    if not in_reply_to:
        refs = re.findall(r"<[^<>\s]+>", _header(msg, "References"))
        in_reply_to = refs[-1] if refs else None
    to = [a for _, a in email.utils.getaddresses([_header(msg, "To"), _header(msg, "Cc")]) if a]
    return ParsedDocument(
        locator=message_id,
        kind="email",
        title=subject or "(no subject)",
        body=own,
        date=date,
        author=address.lower(),
        author_is_user=False,
        quoted=quoted,
        signature=signature,
        message_id=message_id,
        in_reply_to=in_reply_to,
        meta={"from_name": name, "to": to},
    )


# ----------------------------------------------------------------------------------- containers

_FROM_LINE = re.compile(rb"^From .*$", re.M)


def looks_like_mbox(head: bytes) -> bool:
    return head.startswith(b"From ")


def split_mbox(raw: bytes) -> Iterator[bytes]:
    """Messages of an mbox file (mboxo/mboxrd): split at "From " lines that follow a blank line."""
    if not looks_like_mbox(raw):
        raise Unreadable("not an mbox file (it does not start with a 'From ' line)")
    starts = [0]
    for m in re.finditer(rb"\n\n(From [^\n]*)\n", raw):
        starts.append(m.start(1))
    starts.append(len(raw))
    for a, b in zip(starts, starts[1:]):
        chunk = raw[a:b]
        newline = chunk.find(b"\n")
        message = chunk[newline + 1:] if newline >= 0 else b""
        yield re.sub(rb"(?m)^>(>*From )", rb"\1", message)  # un-escape ">From " lines


def message_locator(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:20]


def is_maildir(folder: Path) -> bool:
    return (folder / "cur").is_dir() and (folder / "new").is_dir()


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
