"""Outlook files: `.msg` (one message, an OLE compound file read with olefile, BSD) and `.pst`/`.ost`
(a whole mailbox, read with libpff's Python bindings `pypff`, LGPL-3.0-or-later, an optional
dependency: `pip install 'mipo-local[outlook]'`). Each message is turned into RFC 822 bytes (its
original internet headers where Outlook kept them) and parsed like any other email.

Licences checked for Apache-2.0: olefile BSD-2-Clause and libpff-python LGPL-3.0+ (used as a library,
unmodified, optional) fit; extract-msg is GPL-3.0 and is not used.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import io
import re
import struct
from typing import Iterator, Optional

from .documents import ParsedDocument
from .mail import parse_message
from .text import Unreadable

PST_HELP = ("Outlook .pst: install the optional reader (pip install 'mipo-local[outlook]'), "
            "or export it to mbox with readpst (pst-utils) and import that")
MSG_HELP = "Outlook .msg: install olefile (pip install olefile)"

# MAPI property ids
_SUBJECT, _BODY, _HTML, _HEADERS = 0x0037, 0x1000, 0x1013, 0x007D
_SENDER_NAME, _SENDER_EMAIL, _SENDER_SMTP, _SENT_REP_EMAIL, _SENT_REP_SMTP = 0x0C1A, 0x0C1F, 0x5D01, 0x0065, 0x5D02
_MESSAGE_ID, _IN_REPLY_TO = 0x1035, 0x1042
_SUBMIT_TIME, _DELIVERY_TIME, _CREATION_TIME = 0x0039, 0x0E06, 0x3007
_CPID, _CODEPAGE = 0x3FDE, 0x3FFD
_RECIP_SMTP, _RECIP_EMAIL, _RECIP_NAME, _RECIP_TYPE = 0x39FE, 0x3003, 0x3001, 0x0C15
_KEPT = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references")


def _clean(value: str) -> str:
    return " ".join((value or "").replace("\x00", "").split())


def to_rfc822(headers: list[tuple[str, str]], transport: str, body: str, html: bool) -> bytes:
    """One message as RFC 822 bytes: the headers Outlook kept from the internet (`transport`) first,
    the message's properties for what they lack; the body as UTF-8."""
    have = {}
    if transport.strip():
        parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(transport)
        for name in _KEPT:
            value = parsed.get(name)
            if value:
                have[name] = _clean(str(value))
    lines = []
    for name, value in headers:
        value = have.pop(name.lower(), None) or _clean(value)
        if value:
            lines.append(f"{name}: {value}")
    lines += [f"{name.title()}: {value}" for name, value in have.items()]
    lines += ["MIME-Version: 1.0", f"Content-Type: text/{'html' if html else 'plain'}; charset=utf-8",
              "Content-Transfer-Encoding: 8bit"]
    return ("\n".join(lines) + "\n\n" + body.replace("\r\n", "\n")).encode("utf-8", "replace")


def _rfc2822_date(when: Optional[dt.datetime]) -> str:
    if when is None:
        return ""
    import email.utils

    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return email.utils.format_datetime(when)


def _filetime(value: int) -> Optional[dt.datetime]:
    if value <= 0:
        return None
    try:
        return dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=value // 10)
    except OverflowError:
        return None


# ------------------------------------------------------------------------------------------ .msg

class _Msg:
    """The properties of a .msg file (MS-OXMSG): strings in `__substg1.0_*` streams, fixed-size
    values in `__properties_version1.0`."""

    def __init__(self, ole) -> None:
        self.ole = ole
        self.fixed = self._fixed("__properties_version1.0", 32)
        self.codepage = _codepage(self.fixed.get(_CPID) or self.fixed.get(_CODEPAGE))

    def _fixed(self, stream: str, header: int) -> dict[int, int]:
        if not self.ole.exists(stream):
            return {}
        data = self.ole.openstream(stream).read()
        out = {}
        for off in range(header, len(data) - 15, 16):
            ptype, pid, _flags, value = struct.unpack_from("<HHIQ", data, off)
            if ptype in (0x0003, 0x000B):        # 32-bit values in the low half
                out[pid] = value & 0xFFFFFFFF
            elif ptype in (0x0040, 0x0014):      # FILETIME, 64-bit integers
                out[pid] = value
        return out

    def string(self, pid: int, storage: str = "") -> str:
        for ptype in ("001F", "001E"):
            name = f"{storage}__substg1.0_{pid:04X}{ptype}"
            if self.ole.exists(name):
                data = self.ole.openstream(name).read()
                text = data.decode("utf-16-le", "replace") if ptype == "001F" else data.decode(self.codepage, "replace")
                return text.rstrip("\x00")
        return ""

    def binary(self, pid: int) -> bytes:
        name = f"__substg1.0_{pid:04X}0102"
        return self.ole.openstream(name).read() if self.ole.exists(name) else b""

    def recipients(self) -> tuple[list[str], list[str]]:
        to, cc = [], []
        storages = sorted({"/".join(p[:1]) for p in self.ole.listdir(streams=True, storages=False)
                           if len(p) > 1 and p[0].startswith("__recip_version1.0_")})
        for storage in storages:
            address = self.string(_RECIP_SMTP, storage + "/") or self.string(_RECIP_EMAIL, storage + "/")
            name = self.string(_RECIP_NAME, storage + "/")
            kind = self._fixed(f"{storage}/__properties_version1.0", 8).get(_RECIP_TYPE, 1)
            entry = f'"{_clean(name)}" <{_clean(address)}>' if "@" in address and name else (_clean(address) if "@" in address else "")
            if entry:
                (cc if kind == 2 else to).append(entry)
        return to, cc


def _codepage(value: Optional[int]) -> str:
    if not value:
        return "cp1252"
    name = "utf-8" if value == 65001 else f"cp{value}"
    try:
        "".encode(name)
        return name
    except LookupError:
        return "cp1252"


def parse_msg(raw: bytes, *, fallback_id: str) -> ParsedDocument:
    """An Outlook .msg file → a document; Unreadable with the reason when it cannot be read."""
    try:
        import olefile
    except ImportError:
        raise Unreadable(MSG_HELP) from None
    try:
        ole = olefile.OleFileIO(io.BytesIO(raw))
    except Exception as exc:  # olefile raises OSError, struct.error, … on a damaged file
        raise Unreadable(f"damaged Outlook .msg ({type(exc).__name__})") from None
    try:
        msg = _Msg(ole)
        body, html = msg.string(_BODY), False
        if not body.strip():
            data = msg.binary(_HTML) or msg.string(_HTML).encode("utf-8")
            if data:
                body, html = data.decode(msg.codepage, "replace"), True
        address = next((a for a in (msg.string(_SENDER_SMTP), msg.string(_SENDER_EMAIL), msg.string(_SENT_REP_SMTP),
                                    msg.string(_SENT_REP_EMAIL)) if "@" in a), "")
        name = _clean(msg.string(_SENDER_NAME))
        sender = f'"{name}" <{_clean(address)}>' if name and address else (_clean(address) or name)
        to, cc = msg.recipients()
        when = next((_filetime(msg.fixed[p]) for p in (_SUBMIT_TIME, _DELIVERY_TIME, _CREATION_TIME) if msg.fixed.get(p)), None)
        headers = [("From", sender), ("To", ", ".join(to)), ("Cc", ", ".join(cc)),
                   ("Subject", msg.string(_SUBJECT)), ("Date", _rfc2822_date(when)),
                   ("Message-ID", msg.string(_MESSAGE_ID)), ("In-Reply-To", msg.string(_IN_REPLY_TO))]
        rfc822 = to_rfc822(headers, msg.string(_HEADERS), body, html)
    except Unreadable:
        raise
    except Exception as exc:
        raise Unreadable(f"damaged Outlook .msg ({type(exc).__name__})") from None
    finally:
        ole.close()
    return parse_message(rfc822, fallback_id=fallback_id)


# ------------------------------------------------------------------------------------------ .pst

def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        for encoding in ("utf-8", "cp1252"):
            try:
                return value.decode(encoding)
            except UnicodeDecodeError:
                continue
        return value.decode("utf-8", "replace")
    return str(value)


def _pst_message(message) -> bytes:
    body = _text(message.plain_text_body).rstrip("\x00")
    html = False
    if not body.strip():
        body, html = _text(message.html_body).rstrip("\x00"), True
    when = None
    for attr in ("client_submit_time", "delivery_time", "creation_time"):
        try:
            when = getattr(message, attr)
        except Exception:  # an unset time raises in some versions
            when = None
        if when:
            break
    headers = [("From", message.sender_name or ""), ("Subject", message.subject or ""), ("Date", _rfc2822_date(when))]
    return to_rfc822(headers, _text(message.transport_headers), body, html)


def _folders(folder) -> Iterator:
    yield folder
    for i in range(folder.number_of_sub_folders):
        yield from _folders(folder.get_sub_folder(i))


# A .pst is read by libpff, C code, in a child process: a crafted file that crashes or hangs it costs
# that file (a skip with the reason), never the import.
PST_SILENCE_S = 300      # no message from the reader for this long: it is stopped


def pst_messages(raw: bytes) -> Iterator["bytes | Unreadable"]:
    """The messages of an Outlook .pst/.ost as RFC 822 bytes, or an Unreadable for each one that
    cannot be read. Unreadable (raised) when the file cannot be opened at all."""
    import importlib.util
    import queue
    import subprocess
    import threading

    if importlib.util.find_spec("pypff") is None:
        raise Unreadable(PST_HELP)
    proc = subprocess.Popen(_reader_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=_reader_env())
    records: "queue.Queue[tuple[bytes, bytes] | None]" = queue.Queue(maxsize=64)

    def feed() -> None:
        try:
            proc.stdin.write(raw)
            proc.stdin.close()
        except OSError:       # the reader stopped early
            pass

    def read() -> None:
        try:
            while True:
                head = proc.stdout.read(9)
                if len(head) < 9:
                    break
                body = proc.stdout.read(struct.unpack("<Q", head[1:])[0])
                records.put((head[:1], body))
        finally:
            records.put(None)

    threading.Thread(target=feed, daemon=True).start()
    threading.Thread(target=read, daemon=True).start()
    done = False
    try:
        while True:
            try:
                record = records.get(timeout=PST_SILENCE_S)
            except queue.Empty:
                raise Unreadable(f"the Outlook .pst reader stopped answering (nothing for {PST_SILENCE_S} s)") from None
            if record is None:
                break
            kind, body = record
            if kind == b"M":
                yield body
            elif kind == b"E":
                yield Unreadable(body.decode("utf-8", "replace"))
            elif kind == b"F":
                raise Unreadable(body.decode("utf-8", "replace"))
            elif kind == b"D":
                done = True
        if not done:
            code = proc.wait(timeout=30)
            raise Unreadable(f"the Outlook .pst reader failed on this file (exit status {code})")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _reader_command() -> list[str]:
    import sys

    return [sys.executable, "-m", "mipo_local.context.outlook"]


def _reader_env() -> dict[str, str]:
    """The environment with this package importable whatever the working folder."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _pst_records(raw: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The reader's side: (kind, bytes) for each message (M), unreadable message (E), a file that
    cannot be opened (F), and the end (D)."""
    import pypff

    pst = pypff.file()
    try:
        pst.open_file_object(io.BytesIO(raw))
    except Exception as exc:  # pypff raises OSError/IOError with libpff's message
        yield b"F", f"damaged or unsupported Outlook .pst ({_short(exc)})".encode()
        return
    try:
        for folder in _folders(pst.get_root_folder()):
            for i in range(folder.number_of_sub_messages):
                try:
                    yield b"M", _pst_message(folder.get_sub_message(i))
                except Exception as exc:
                    yield b"E", f"unreadable Outlook message ({_short(exc)})".encode()
    except Exception as exc:
        yield b"E", f"unreadable Outlook folder ({_short(exc)})".encode()
    finally:
        pst.close()
    yield b"D", b""


def _serve_pst() -> None:
    """Read a .pst from stdin, write its records to stdout (length-prefixed)."""
    import sys

    raw = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    for kind, body in _pst_records(raw):
        out.write(kind + struct.pack("<Q", len(body)) + body)
        out.flush()


def _short(exc: Exception) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return (text.split(". ")[0][:120] if text else type(exc).__name__)


if __name__ == "__main__":
    _serve_pst()
