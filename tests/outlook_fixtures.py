"""A small Outlook .msg written by the tests: an OLE compound file (MS-CFB, version 3) holding the
MAPI property streams of one message (MS-OXMSG). No library writes .msg files, so this builder does;
olefile reads them back."""

from __future__ import annotations

import datetime as dt
import struct

_END, _FREE, _FATSECT, _NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
_SECTOR, _MINI, _CUTOFF = 512, 64, 4096


def _chain(fat: list[int], start: int, count: int) -> None:
    for i in range(count):
        fat[start + i] = start + i + 1 if i < count - 1 else _END


def compound_file(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file with these streams at its top level (small ones in the mini stream)."""
    names = list(streams)
    mini, minifat, big = bytearray(), [], []
    starts, sizes = {}, {}
    for name in names:
        data = streams[name]
        sizes[name] = len(data)
        if len(data) < _CUTOFF:
            first = len(mini) // _MINI
            n = -(-len(data) // _MINI)
            starts[name] = first
            for i in range(n):
                minifat.append(first + i + 1 if i < n - 1 else _END)
            mini += data + bytes(n * _MINI - len(data))
        else:
            big.append(name)
    n_dir = -(-(len(names) + 1) // 4)
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_bytes += b"\xff" * (-len(minifat_bytes) % _SECTOR)
    n_minifat = len(minifat_bytes) // _SECTOR
    mini += bytes(-len(mini) % _SECTOR)
    n_mini = len(mini) // _SECTOR
    layout = [("dir", n_dir), ("minifat", n_minifat), ("mini", n_mini)]
    layout += [(name, -(-sizes[name] // _SECTOR)) for name in big]
    others = sum(n for _, n in layout)
    n_fat = 1
    while n_fat * 128 < others + n_fat:
        n_fat += 1
    fat = [_FREE] * (n_fat * 128)
    sector, where = 0, {}
    for name, n in layout:
        where[name] = sector if n else _END
        _chain(fat, sector, n)
        sector += n
    for i in range(n_fat):
        fat[sector + i] = _FATSECT
    fat_start = sector

    def entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
        encoded = name.encode("utf-16-le")
        return (encoded + bytes(64 - len(encoded)) + struct.pack("<HBBIII", len(encoded) + 2 if name else 0, kind, 1,
                _NOSTREAM, right, child) + bytes(16 + 4 + 16) + struct.pack("<IQ", start, size))

    dirs = [entry("Root Entry", 5, 1 if names else _NOSTREAM, _NOSTREAM, where["mini"] if n_mini else _END, len(mini))]
    for i, name in enumerate(names):
        right = i + 2 if i + 1 < len(names) else _NOSTREAM
        start = starts[name] if name in starts else where[name]
        dirs.append(entry(name, 2, _NOSTREAM, right, start, sizes[name]))
    while len(dirs) % 4:
        dirs.append(entry("", 0, _NOSTREAM, _NOSTREAM, _END, 0))
    difat = [fat_start + i for i in range(n_fat)] + [_FREE] * (109 - n_fat)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
              + struct.pack("<IIIIIIIII", 0, n_fat, where["dir"], 0, _CUTOFF,
                            where["minifat"] if n_minifat else _END, n_minifat, _END, 0)
              + b"".join(struct.pack("<I", v) for v in difat))
    body = b"".join(dirs) + minifat_bytes + bytes(mini)
    for name in big:
        data = streams[name]
        body += data + bytes(-len(data) % _SECTOR)
    body += b"".join(struct.pack("<I", v) for v in fat)
    return header + body


def _filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 10_000_000)


def outlook_msg(*, subject: str, body: str, sender_name: str, sender_email: str, sent: dt.datetime,
                to: str = "", message_id: str = "", transport_headers: str = "") -> bytes:
    """An Outlook .msg of one message, its strings as UTF-16 (PT_UNICODE) property streams."""
    def s(pid: int, text: str) -> tuple[str, bytes]:
        return f"__substg1.0_{pid:04X}001F", text.encode("utf-16-le")

    streams = dict([s(0x001A, "IPM.Note"), s(0x0037, subject), s(0x1000, body), s(0x0C1A, sender_name),
                    s(0x0C1E, "SMTP"), s(0x0C1F, sender_email), s(0x0E04, to)])
    if message_id:
        streams.update([s(0x1035, message_id)])
    if transport_headers:
        streams.update([s(0x007D, transport_headers)])
    props = bytes(32) + struct.pack("<HHIQ", 0x0040, 0x0039, 6, _filetime(sent))
    streams["__properties_version1.0"] = props
    return compound_file(streams)
