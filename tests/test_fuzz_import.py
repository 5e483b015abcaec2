"""Fuzzing the importers (hypothesis): over mutated mbox, .eml and Markdown files, an import never
raises, never hangs and never changes the source file; the parsers raise nothing but Unreadable.

Bounded to well under a minute in all: a fixed number of examples per test, each with a deadline.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

# at import, not in a fixture: Hypothesis writes its constants cache before fixtures run
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="mipo-hypothesis-"))   # nothing written to the checkout

from mipo_local.context import ContextStore, import_paths  # noqa: E402
from mipo_local.context.mail import message_locator, parse_message, split_mbox  # noqa: E402
from mipo_local.context.notes import parse_note  # noqa: E402
from mipo_local.context.text import Unreadable  # noqa: E402
from mipo_local.settings import UserSettings  # noqa: E402

from .mail_fixtures import ME, thread_messages  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("MIPO_FUZZ_EXAMPLES", 250)), deadline=dt.timedelta(seconds=10), database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _mbox_seed() -> bytes:
    out = []
    for msg in thread_messages():
        out.append(b"From sender@example.net Mon Mar  2 09:00:00 2026\n" + msg.as_bytes() + b"\n")
    return b"".join(out)


SEEDS = {
    "mbox": _mbox_seed(),
    "eml": thread_messages()[4].as_bytes(),
    "md": ("---\ntitle: Kelp survey\ntags: [kelp, fieldwork]\ncreated: 2026-04-02\n---\n# Heading\n\n"
           "Counted 14 urchins at [[Sites/North|the north site]], see ![[quadrat.png]] and [[Methods#Count]].\n\n"
           "Second paragraph. Æøå and naïve café.\n").encode(),
}

# Fragments real files hold and parsers trip on
TOKENS = [b"\r\n", b"\n\nFrom x@y Mon Mar  2 09:00:00 2026\n", b"From: =?utf-8?q?a=0D=0Ab?= <a@b.c>\n",
          b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\n", b"--zz--\n", b"Content-Transfer-Encoding: base64\n",
          b"=?iso-8859-1?b?////?=", b"=?x-unknown?q?abc?=", b"---\n", b"[[", b"]]", b"![[", b"\x1b[2J", b"\x1b]0;t\x07",
          b"\x00", b"\xff\xfe", b"\xc3", b">From ", b"Subject: ", b"Message-ID: <a@b>\n", b"charset=\"utf-8\"",
          b"Date: Mon, 99 Foo 99999 99:99:99 +9999\n", b"<html><body><p>", b"&#x10ffff;", b"\t", b" at "]

mutation = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(TOKENS)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(2, 50)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
)


def mutate(data: bytes, mutations) -> bytes:
    for op, where, arg in mutations:
        i = int(where * len(data)) if data else 0
        if op == "insert":
            data = data[:i] + arg + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + arg:]
        elif op == "flip" and data:
            i = min(i, len(data) - 1)
            data = data[:i] + bytes([arg]) + data[i + 1:]
        elif op == "repeat":
            data = data[:i] + data[i:i + 40] * arg + data[i:]
        elif op == "truncate":
            data = data[:i]
    return data


def _only_unreadable(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Unreadable:
        pass


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), mutations=st.lists(mutation, min_size=1, max_size=8))
def test_parsers_raise_nothing_but_unreadable(kind, mutations):
    data = mutate(SEEDS[kind], mutations)
    if kind == "md":
        _only_unreadable(parse_note, Path("note.md"), data)
    elif kind == "eml":
        _only_unreadable(parse_message, data, fallback_id=message_locator(data))
    else:
        try:
            messages = list(split_mbox(data))
        except Unreadable:
            return
        for message in messages:
            _only_unreadable(parse_message, message, fallback_id=message_locator(message))


def _fingerprint(path: Path) -> tuple:
    st_ = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st_.st_mtime_ns, st_.st_mode, st_.st_size


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), mutations=st.lists(mutation, min_size=1, max_size=8),
       name=st.sampled_from(["file", "no-extension", "archive.txt", "packed.gz"]))
def test_import_never_raises_and_never_touches_the_source(tmp_path_factory, kind, mutations, name):
    data = mutate(SEEDS[kind], mutations)
    tmp = tmp_path_factory.mktemp("fuzz")              # one per example (tmp_path is one per test)
    try:
        src = tmp / "src"
        src.mkdir()
        filename = {"file": f"input.{kind}", "no-extension": "input", "archive.txt": "2016-April.txt",
                    "packed.gz": f"input.{kind}.gz"}[name]
        path = src / filename
        path.write_bytes(gzip.compress(data) if filename.endswith(".gz") else data)
        before = _fingerprint(path)
        with ContextStore(tmp / "store.sqlite3") as store:
            summary = import_paths([src], store=store, settings=UserSettings(addresses=(ME,)))
            assert summary.added + len([p for p, _ in summary.skipped if p == str(path)]) + summary.ignored >= 1
            again = import_paths([src], store=store, settings=UserSettings(addresses=(ME,)))
            assert again.documents_changed == 0                      # idempotent, whatever it held
            assert store.integrity_ok()
        assert _fingerprint(path) == before
    finally:
        shutil.rmtree(tmp)
