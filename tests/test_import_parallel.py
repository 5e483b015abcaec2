"""A large mbox is imported as a stream, its messages parsed by worker processes while the importer
writes the store (issue 15): the same store as a single process gives, memory bounded by
construction, workers that never outlive their import."""

from __future__ import annotations

import gzip
import itertools
import os
import random
import re
from pathlib import Path

import pytest

from mipo_local.context import ContextStore, files, import_paths, mail, mbox_stream
from mipo_local.context.store import ContextStore as Store
from mipo_local.context.text import Unreadable
from mipo_local.settings import UserSettings

from .mail_fixtures import ME, plain, thread_messages, write_mbox

SETTINGS = UserSettings(addresses=(ME,))
posix_only = pytest.mark.skipif(os.name != "posix", reason="workers get the mailbox's descriptor (POSIX)")


def _whole_split(raw: bytes) -> list[bytes]:
    """split_mbox's separators found in the whole file at once: the reference for the streamed split."""
    if not raw.startswith(b"From "):
        raise Unreadable("not an mbox file (it does not start with a 'From ' line)")
    starts = [0] + [at for at, _ in mail._separators(raw, 0, len(raw))] + [len(raw)]
    out = []
    for a, b in zip(starts, starts[1:]):
        chunk = raw[a:b]
        newline = chunk.find(b"\n")
        out.append(re.sub(rb"(?m)^>(>*From )", rb"\1", chunk[newline + 1:] if newline >= 0 else b""))
    return out


def _mixed_mailbox(path: Path) -> Path:
    """Good mail, a reply thread, the same message twice, and messages that cannot be used."""
    messages = thread_messages() + [plain(f"m-{i}", f"p{i}@example.net", f"Note {i}", f"Body {i} about kelp.")
                                    for i in range(7)]
    messages.append(thread_messages()[0])                        # a duplicate Message-ID
    write_mbox(path, messages)
    with open(path, "ab") as fh:
        fh.write(b"\nFrom nobody Mon Mar  2 09:00:00 2026\n\n\n"       # an empty message
                 b"\nFrom nobody Mon Mar  2 09:00:00 2026\nX-Junk: 1\n\nno From, Subject or Message-ID\n"
                 b"\nFrom nobody Mon Mar  2 09:00:00 2026\nFrom: =?utf-8?q?Eve=0D=0ABcc:_all@x.com?= <eve@x.com>\n"
                 b"Subject: crafted\nMessage-ID: <evil@x>\n\nhello\n"
                 b"\nFrom nobody Mon Mar  2 09:00:00 2026\nFrom: a@example.com\nSubject: deep\nMessage-ID: <deep@x>\n"
                 b"MIME-Version: 1.0\n"
                 + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(3000))
                 + b"Content-Type: text/plain\n\nhello\n"
                 b"\nFrom ada Mon Mar  2 09:00:00 2026\nFrom: Ada <ada@example.org>\nSubject: Re: Note 3\n"
                 b"Message-ID: <late@x>\nIn-Reply-To: <m-3@example.org>\n\nThanks!\n>From the start.\n")
    return path


def _contents(store) -> dict:
    return {
        "documents": [tuple(d) for d in store.documents()],
        "chunks": store.fingerprint(),           # their count, last id and total length
        "found": [(h.chunk_id, h.text) for h in store.search("kelp thanks choir body", 50, user_only=False)],
        "replies": [(a["id"], b["id"]) for a, b in store.reply_pairs()],
        "counts": store.counts(),
    }


def _import(box: Path, home: Path, workers: int):
    with ContextStore(home / "context.sqlite3") as store:
        summary = import_paths([box], store=store, settings=SETTINGS, workers=workers)
        assert store.integrity_ok()
        return summary, _contents(store)


@posix_only
def test_workers_give_the_store_a_single_process_gives(tmp_path):
    box = _mixed_mailbox(tmp_path / "mixed.mbox")
    one, contents_one = _import(box, tmp_path / "one", workers=1)
    for workers in (2, 3):
        summary, contents = _import(box, tmp_path / f"w{workers}", workers=workers)
        assert contents == contents_one
        assert (summary.added, summary.skipped, summary.documents_changed) == (one.added, one.skipped,
                                                                               one.documents_changed)
    assert one.added == 1 and [reason for _, reason in one.skipped] == [      # each unusable message, why
        "empty message", "malformed email (no From, Subject or Message-ID header)",
        "malformed email (MIME parts nested too deeply)"]
    assert contents_one["counts"]["reply_links"] == 2


@posix_only
def test_a_mailbox_that_is_no_mbox_is_skipped_alike(tmp_path):
    broken = tmp_path / "broken.mbox.gz"
    broken.write_bytes(gzip.compress(_mixed_mailbox(tmp_path / "m.mbox").read_bytes())[:-200])   # cut short
    reasons = {w: _import(broken, tmp_path / f"h{w}", workers=w)[0].skipped for w in (1, 2)}
    assert reasons[1] == reasons[2] and "damaged gzip file" in reasons[1][0][1]
    with ContextStore(tmp_path / "h2" / "context.sqlite3") as store:
        assert store.counts()["emails"] == 0                    # nothing of it half-imported


def test_streamed_split_is_the_whole_file_split():
    rng = random.Random(15)
    pieces = [b"From ", b"From a b\n", b"\n", b"\r\n", b"\r", b"x", b"text", b">From ", b">>From x\n", b"\n\n", b"F",
              b"From a Mon Jan  1 10:00:00 2024", b"Subject: x\n", b"X:", b"From the start, yes.\n"]
    for _ in range(3000):
        raw = (b"From " if rng.random() < 0.9 else b"") + b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        try:
            want = _whole_split(raw)
        except Unreadable:
            want = None
        size = rng.choice([1, 2, 3, 5, 8, 64])
        try:
            got = list(mail.split_mbox_stream(raw[i:i + size] for i in range(0, len(raw), size)))
        except Unreadable:
            got = None
        assert got == want, (raw, size)


def test_messages_come_out_before_the_mailbox_is_read_to_its_end():
    """Streaming by construction: an endless mailbox gives its first messages, having read only
    the blocks they are in."""
    read = []

    def endless():
        for i in itertools.count():
            read.append(i)
            yield b"From x\nSubject: %d\n\nbody %d\n\n" % (i, i)

    first = list(itertools.islice(mail.split_mbox_stream(endless()), 100))
    assert first[5] == b"Subject: 5\n\nbody 5\n\n" and len(read) <= 102


def test_the_importer_reads_a_mailbox_in_blocks_never_whole(tmp_path, monkeypatch):
    box = _mixed_mailbox(tmp_path / "mixed.mbox")
    with open(box, "ab") as fh:                 # a few MB, so that several blocks are read
        for i in range(3000):
            fh.write(b"\nFrom b Mon Mar  2 09:00:00 2026\nFrom: b@example.net\nSubject: Bulk %d\n"
                     b"Message-ID: <bulk-%d@x>\n\n%s\n" % (i, i, b"word " * 200))
    sizes = []
    real_pread = files._pread
    monkeypatch.setattr(files, "_pread", lambda fd, n, offset: sizes.append(n) or real_pread(fd, n, offset))
    monkeypatch.setattr(files, "read_file", lambda *a, **k: pytest.fail("the mailbox was read whole"))
    summary = import_paths([box], settings=SETTINGS, workers=1)
    assert summary.added == 1 and box.stat().st_size > 3 * files.BLOCK_BYTES
    assert max(sizes) <= files.BLOCK_BYTES and len(sizes) > 6   # hashed, then parsed, block by block


def _workers_of_this_process() -> list[int]:
    """Process ids of this process's children that are mailbox workers (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"mbox_stream" in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_interrupted_import_stops_its_workers_and_keeps_the_store(tmp_path, monkeypatch):
    box = _mixed_mailbox(tmp_path / "mixed.mbox")
    calls = []

    def interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    real = Store._insert_document
    monkeypatch.setattr(Store, "_insert_document", interrupt)
    with ContextStore(tmp_path / "s.sqlite3") as store:
        with pytest.raises(KeyboardInterrupt):
            import_paths([box], store=store, settings=SETTINGS, workers=2)
        assert _workers_of_this_process() == []
        assert store.counts()["emails"] == 0 and store.integrity_ok()


@posix_only
def test_a_worker_stops_when_its_importer_is_gone(tmp_path):
    """The importer killed (its end of the pipe closed): the worker's next write fails and it exits
    instead of waiting forever."""
    box = tmp_path / "big.mbox"
    with open(box, "wb") as fh:
        for i in range(5000):
            fh.write(b"From b Mon Mar  2 09:00:00 2026\nFrom: b@example.net\nSubject: %d\nMessage-ID: <%d@x>\n\n"
                     b"%s\n\n" % (i, i, b"word " * 100))
    with files.open_regular(box) as fh:
        stream = mbox_stream.MailboxStream(fh.fd, fh.stat.st_size, compressed=False, cap=1 << 30, workers=2,
                                              chunk_tokens=200)
        entries = iter(stream)
        assert next(entries).title == "0"
        procs = list(stream._procs)
        for proc in procs:
            proc.stdout.close()                   # as if the importer were gone
        for proc in procs:
            assert proc.wait(timeout=60) != 0
        stream._procs = []
