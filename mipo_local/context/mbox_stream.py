"""The messages of an mbox parsed as a stream: in this process, or by worker processes while this
one writes the store (SQLite is only ever written by the importing process).

Memory stays bounded whatever the mailbox's size: the file is read in blocks, one message at a
time is held, and the pipes between the processes hold 1 MB at most (a worker waits when the
importer is behind). With n workers, each one reads the whole file (by offset, from the
one descriptor the importer opened and checked) and parses every n-th message; the importer takes
their records in turn, so the documents come in the file's order, exactly as a single process
gives them. A worker whose importer is gone (killed) stops at its next write.
"""

from __future__ import annotations

import marshal
import struct
from typing import Iterator, Optional, Union

from .documents import ParsedDocument
from .files import read_blocks
from .mail import mbox_chunks, message_locator, parse_message, unescape_mbox_chunk
from .text import Unreadable, chunk_text_counted

# Below this size a mailbox is parsed in the importing process (a worker takes ~0.15 s to start).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024

_FIELDS = ("locator", "kind", "title", "body", "date", "author", "author_is_user", "quoted", "signature",
           "message_id", "in_reply_to", "meta")
_HEAD = struct.Struct("<cI")
PIPE_BYTES = 1 << 20

Entry = Union[ParsedDocument, Unreadable]


def default_workers() -> int:
    """Worker processes for a large mailbox: one per core, two at most (the importer writes the
    store meanwhile); none where descriptors cannot be handed to a child (not POSIX)."""
    import os

    if os.name != "posix":
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def parsed_messages(fd: int, size: int, *, compressed: bool, cap: int, part: int = 0, parts: int = 1,
                    chunk_tokens: Optional[int] = None) -> Iterator[Entry]:
    """Every `parts`-th message of the mbox open at `fd` (from message `part` on): its document
    (with its body chunked, given `chunk_tokens`), or an Unreadable saying why that message cannot
    be used. Unreadable raised when the file as a whole cannot be read (not an mbox, a damaged
    .gz, too large once unpacked)."""
    for n, chunk in enumerate(mbox_chunks(read_blocks(fd, size, compressed=compressed, cap=cap))):
        if n % parts != part:
            continue
        message = unescape_mbox_chunk(chunk)
        try:
            doc = parse_message(message, fallback_id=message_locator(message))
        except Unreadable as exc:
            yield exc
            continue
        if chunk_tokens:
            doc.chunks = (chunk_tokens, chunk_text_counted(doc.body, chunk_tokens))
        yield doc


class MailboxStream:
    """The documents of an mbox open at `fd`, in order, as an iterable of `Entry`; a context
    manager (leaving it stops the workers). `workers` ≤ 1 parses here; workers also chunk each
    body with `chunk_tokens`, which the store would otherwise do."""

    def __init__(self, fd: int, size: int, *, compressed: bool, cap: int, workers: int, chunk_tokens: int) -> None:
        self.fd, self.size, self.compressed, self.cap = fd, size, compressed, cap
        self.workers, self.chunk_tokens = max(1, workers), chunk_tokens
        self._procs: list = []

    def __enter__(self) -> "MailboxStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Entry]:
        try:
            if self.workers == 1:
                yield from parsed_messages(self.fd, self.size, compressed=self.compressed, cap=self.cap)
            else:
                yield from self._from_workers()
        except Unreadable:
            raise
        except RecursionError:
            raise Unreadable("could not be parsed (nested too deeply)") from None
        except Exception as exc:  # a bug on odd input costs this file, not the import
            raise Unreadable(f"could not be parsed ({type(exc).__name__})") from None

    def _from_workers(self) -> Iterator[Entry]:
        import subprocess
        import sys

        try:
            if not sys.executable:
                raise OSError("no interpreter to start")
            for part in range(self.workers):
                command = [sys.executable, "-m", __name__, str(self.fd), str(self.size), str(int(self.compressed)),
                           str(self.cap), str(part), str(self.workers), str(self.chunk_tokens)]
                # its own session: Ctrl-C reaches the importer, which stops the workers itself
                self._procs.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                    stderr=subprocess.DEVNULL, pass_fds=(self.fd,),
                                                    env=_child_env(), start_new_session=True))
        except (OSError, ValueError):      # no process to be had (limits, no interpreter path): parse here
            self.close()
            yield from parsed_messages(self.fd, self.size, compressed=self.compressed, cap=self.cap)
            return
        n = 0
        while True:
            proc = self._procs[n % self.workers]
            kind, body = _read_record(proc.stdout)
            if kind == b"D":
                *fields, chunks = marshal.loads(body)
                doc = ParsedDocument(**dict(zip(_FIELDS, fields)))
                doc.chunks = (self.chunk_tokens, chunks)
                yield doc
            elif kind == b"P":
                yield Unreadable(body.decode("utf-8", "replace"))
            elif kind == b"F":
                raise Unreadable(body.decode("utf-8", "replace"))
            elif kind == b"E":
                return
            else:       # the worker died without a word
                raise Unreadable(f"the mailbox reader failed on this file (exit status {proc.wait()})")
            n += 1

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        self._procs = []


def _read_record(stream) -> tuple[Optional[bytes], bytes]:
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None, b""
    kind, length = _HEAD.unpack(head)
    body = stream.read(length)
    return (kind, body) if len(body) == length else (None, b"")


def _child_env() -> dict[str, str]:
    """The environment with this package importable whatever the working folder."""
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _widen_pipe(fd: int) -> None:
    """A 1 MB pipe instead of 64 KB (Linux): the importer takes the workers' records in turn, and
    a worker that the scheduler holds back for a moment then leaves the other one room to go on."""
    import fcntl

    command = getattr(fcntl, "F_SETPIPE_SZ", None)      # Linux only
    if command is None:
        return
    try:
        fcntl.fcntl(fd, command, PIPE_BYTES)
    except OSError:                                     # above /proc/sys/fs/pipe-max-size
        pass


def _serve(argv: list[str]) -> None:
    """A worker: its share of the messages as records on stdout, then E (or F and why)."""
    import os

    fd, size, compressed, cap, part, parts, chunk_tokens = (int(a) for a in argv)
    _widen_pipe(1)
    out = os.fdopen(1, "wb", buffering=1 << 16)

    def record(kind: bytes, body: bytes) -> None:
        out.write(_HEAD.pack(kind, len(body)))
        out.write(body)

    try:
        for entry in parsed_messages(fd, size, compressed=bool(compressed), cap=cap, part=part, parts=parts,
                                     chunk_tokens=chunk_tokens):
            if isinstance(entry, Unreadable):
                record(b"P", str(entry).encode("utf-8", "replace"))
            else:
                record(b"D", marshal.dumps((*(getattr(entry, f) for f in _FIELDS), entry.chunks[1])))
        record(b"E", b"")
    except Unreadable as exc:
        record(b"F", str(exc).encode("utf-8", "replace"))
    except RecursionError:
        record(b"F", b"could not be parsed (nested too deeply)")
    except Exception as exc:  # noqa: BLE001 — said to the importer, which skips the file
        record(b"F", f"could not be parsed ({type(exc).__name__})".encode())
    out.flush()


if __name__ == "__main__":
    import sys

    try:
        _serve(sys.argv[1:])
    except BrokenPipeError:      # the importer is gone
        sys.exit(1)
