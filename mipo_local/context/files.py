"""Opening the user's files: read-only, regular files only, never blocking, never more than a cap.

A FIFO, socket or device is never read (opening a FIFO for reading blocks until a writer comes);
a file is read through one descriptor whose type is checked after it is opened, so it cannot be
swapped for something else in between. `.gz` files are read through gzip, with the same cap on
what they unpack to.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from pathlib import Path

from .text import Unreadable

HEAD_BYTES = 8192
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def file_type(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def os_reason(exc: OSError) -> str:
    """An OSError as a skip reason."""
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return (exc.strerror or str(exc)).lower()


def is_compressed(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


class _Opened:
    """A regular file open for reading; Unreadable (with the reason) for anything else."""

    def __init__(self, path: Path) -> None:
        try:
            self.fd = os.open(path, _FLAGS)
        except OSError as exc:
            raise Unreadable(os_reason(exc)) from None
        try:
            self.stat = os.fstat(self.fd)
            if not stat.S_ISREG(self.stat.st_mode):
                raise Unreadable(f"not a regular file ({file_type(self.stat.st_mode)})")
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the file)."""
        parts, left = [], n
        while left > 0:
            try:
                data = os.read(self.fd, min(left, 1 << 24))
            except OSError as exc:
                raise Unreadable(os_reason(exc)) from None
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)


def open_regular(path: Path) -> _Opened:
    """A regular file open for reading (a context manager with `.fd` and `.stat`); Unreadable
    with the reason for anything else."""
    return _Opened(path)


BLOCK_BYTES = 1 << 20


def digest_and_size(fd: int, cap: int) -> tuple[str, int]:
    """The SHA-256 of a file open at `fd` and its length, read by offset in blocks (never whole;
    the descriptor's position is not used). Unreadable when it holds more than `cap` bytes."""
    import hashlib

    h, offset = hashlib.sha256(), 0
    while True:
        block = _pread(fd, BLOCK_BYTES, offset)
        if not block:
            return h.hexdigest(), offset
        offset += len(block)
        if offset > cap:
            raise _too_large(cap)
        h.update(block)


def read_blocks(fd: int, size: int, *, compressed: bool, cap: int):
    """The first `size` bytes of a file open at `fd`, in blocks, read by offset (several readers
    may share the descriptor); unpacked for `.gz`, with at most `cap` bytes unpacked."""
    if not compressed:
        offset = 0
        while offset < size:
            block = _pread(fd, min(BLOCK_BYTES, size - offset), offset)
            if not block:
                return
            offset += len(block)
            yield block
        return
    total = 0
    try:
        with gzip.GzipFile(fileobj=_OffsetReader(fd, size)) as gz:
            while True:
                block = gz.read(BLOCK_BYTES)
                if not block:
                    return
                total += len(block)
                if total > cap:
                    raise _too_large(cap, " once unpacked")
                yield block
    except (OSError, EOFError, zlib.error) as exc:
        raise Unreadable(f"damaged gzip file ({exc})") from None


def _pread(fd: int, n: int, offset: int) -> bytes:
    try:
        return os.pread(fd, n, offset)
    except OSError as exc:
        raise Unreadable(os_reason(exc)) from None


class _OffsetReader:
    """The first `size` bytes of a file descriptor as a file object of its own, read by offset."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size, self.offset = fd, size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.offset
        n = left if n is None or n < 0 else min(n, left)
        data = _pread(self.fd, n, self.offset) if n > 0 else b""
        self.offset += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.offset = {0: offset, 1: self.offset + offset, 2: self.size + offset}[whence]
        return self.offset

    def tell(self) -> int:
        return self.offset


def _too_large(cap: int, what: str = "") -> Unreadable:
    return Unreadable(f"larger than the {cap / 1024 / 1024:.0f} MB limit{what} (a setting)")


def read_file(path: Path, cap: int) -> tuple[bytes, os.stat_result]:
    """The file's bytes as stored (compressed for `.gz`), at most `cap` of them, and its stat."""
    with _Opened(path) as fh:
        if fh.stat.st_size > cap:
            raise _too_large(cap)
        raw = fh.read(cap + 1)
        if len(raw) > cap:       # it grew since it was looked at
            raise _too_large(cap)
        return raw, fh.stat


def unpack(path: Path, raw: bytes, cap: int) -> bytes:
    """The text of a file read by `read_file`: `.gz` unpacked (at most `cap` bytes), else as is."""
    if not is_compressed(path):
        return raw
    try:
        with gzip.GzipFile(fileobj=_BytesReader(raw)) as gz:
            data = gz.read(cap + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise Unreadable(f"damaged gzip file ({exc})") from None
    if len(data) > cap:
        raise _too_large(cap, " once unpacked")
    return data


def read_head(path: Path, n: int = HEAD_BYTES) -> bytes:
    """The first n bytes of a regular file (unpacked for `.gz`), to tell what it holds."""
    with _Opened(path) as fh:
        if not is_compressed(path):
            return fh.read(n)
        raw = fh.read(min(fh.stat.st_size, 1 << 20))
    try:
        with gzip.GzipFile(fileobj=_BytesReader(raw)) as gz:
            return gz.read(n)
    except (OSError, EOFError, zlib.error):
        return b""


def iter_lines(path: Path, limit: int):
    """The lines of a regular file, at most `limit` bytes of it, read in blocks (a mailbox scanned for
    its senders is never held whole in memory)."""
    with _Opened(path) as fh:
        pending, left = b"", limit
        while left > 0:
            block = fh.read(min(left, 1 << 20))
            if not block:
                break
            left -= len(block)
            lines = (pending + block).split(b"\n")
            pending = lines.pop()
            yield from lines
        if pending and left > 0:
            yield pending


def _BytesReader(raw: bytes):
    import io

    return io.BytesIO(raw)
