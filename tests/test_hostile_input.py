"""Hostile and odd input found in real mailboxes and home folders: every file that cannot be used is
a counted skip with a reason, never an abort, a hang or a traceback (issue 12)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from mipo_local.cli import main as cli_main
from mipo_local.context import ContextStore, import_paths, suggest_user_addresses
from mipo_local.context.text import chunk_text, estimate_tokens
from mipo_local.settings import UserSettings

from .mail_fixtures import ME, plain, write_mbox

SETTINGS = UserSettings(addresses=(ME,))


def test_long_single_line_chunks_in_linear_time():
    """A 2 MB note on one line took ~18 s (the growing chunk was re-counted at every word)."""
    text = "word " * 400_000
    start = time.perf_counter()
    chunks = chunk_text(text, 200)
    assert time.perf_counter() - start < 2.0
    assert all(estimate_tokens(c) <= 200 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def _eml(path: Path, headers: bytes, body: bytes = b"Hello there, a plain body.\n") -> Path:
    path.write_bytes(headers.rstrip(b"\n") + b"\n\n" + body)
    return path


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply even to root (util-linux's setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _import_in_subprocess(paths, home: Path, prefix=(), timeout=60) -> str:
    code = ("from mipo_local.context import import_paths\nfrom mipo_local.settings import UserSettings\n"
            f"s = import_paths({[str(p) for p in paths]!r}, settings=UserSettings())\n"
            "print(s.added)\nfor p, r in s.skipped: print(p, '|', r)")
    env = {**os.environ, "MIPO_HOME": str(home)}
    proc = subprocess.run(list(prefix) + [sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_encoded_crlf_in_from_does_not_abort(tmp_path):
    """`From: =?utf-8?q?…=0D=0A…?=` made the email package raise ("address parts cannot contain CR
    or LF") and the whole import stopped with a traceback."""
    src = tmp_path / "mail"
    src.mkdir()
    _eml(src / "evil.eml", b"From: =?utf-8?q?Eve=0D=0ABcc:_all@example.com?= <eve@example.com>\n"
                           b"Subject: crafted\nMessage-ID: <evil-1@example.com>")
    _eml(src / "evil2.eml", b"From: =?utf-8?q?x=0D=0A?=@example.com\nSubject: crafted two\nMessage-ID: <evil-2@x>")
    (src / "note.md").write_text("A note imported after the crafted mail.\n")
    with ContextStore() as store:
        summary = import_paths([src], store=store, settings=SETTINGS)
        assert summary.added + len(summary.skipped) == 3 and summary.added >= 2
        emails = {d["title"]: d for d in store.documents(kind="email")}
        assert emails["crafted"]["author"] == "eve@example.com"
        assert all("\r" not in d["author"] and "\n" not in d["author"] for d in emails.values())
        assert "\n" not in emails["crafted"]["meta"].replace("\\n", "")


def test_deeply_nested_multipart_is_a_skip(tmp_path):
    """MIME parts nested thousands deep raised RecursionError and stopped the import."""
    src = tmp_path / "mail"
    src.mkdir()
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(5000))
    _eml(src / "deep.eml", b"From: a@example.com\nSubject: deep\nMessage-ID: <deep@x>\nMIME-Version: 1.0\n"
         + nested + b"Content-Type: text/plain\n", b"hello\n")
    (src / "note.md").write_text("Still imported.\n")
    summary = import_paths([src], settings=SETTINGS)
    reasons = {Path(p).name: r for p, r in summary.skipped}
    assert reasons == {"deep.eml": "malformed email (MIME parts nested too deeply)"}
    assert summary.added == 1


def test_unreadable_and_untraversable_folders_are_skips(tmp_path):
    """An unreadable subfolder, or a file under a folder that can be listed but not entered, raised
    PermissionError and nothing after it was imported."""
    src = tmp_path / "src"
    (src / "a-locked").mkdir(parents=True)
    (src / "a-locked" / "hidden.md").write_text("cannot be listed")
    (src / "b-listonly").mkdir()
    (src / "b-listonly" / "inside.md").write_text("listed, not readable")
    (src / "z-after.md").write_text("A note after the locked folders.\n")
    (src / "a-locked").chmod(0)
    (src / "b-listonly").chmod(0o444)      # r without x: names can be read, files not reached
    try:
        out = _import_in_subprocess([src], tmp_path / "home", _without_root_powers())
    finally:
        (src / "a-locked").chmod(0o755)
        (src / "b-listonly").chmod(0o755)
    lines = out.strip().splitlines()
    assert lines[0] == "1"
    assert f"{src / 'a-locked'} | permission denied (folder not readable)" in lines
    assert f"{src / 'b-listonly' / 'inside.md'} | permission denied" in lines


def test_a_file_in_a_folder_that_cannot_be_entered_is_a_one_line_error(tmp_path):
    """Importing a file whose folder cannot be entered (as a user without root meets it) ended in a
    PermissionError traceback from Path.exists (issue 28): one line that says what to do, and nothing
    stored."""
    from .helpers import assert_one_line_error

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "note.md").write_text("behind a folder that cannot be entered")
    locked.chmod(0o600)                    # rw without x: its files cannot be reached
    env = {**os.environ, "MIPO_HOME": str(tmp_path / "home")}
    try:
        proc = subprocess.run([*_without_root_powers(), sys.executable, "-m", "mipo_local", "import",
                               str(locked / "note.md")], env=env, capture_output=True, text=True, timeout=60)
    finally:
        locked.chmod(0o755)
    assert_one_line_error(proc, str(locked / "note.md"), "cannot be reached", "permission denied")
    assert "Traceback" not in proc.stderr


def test_fifo_and_special_files_are_never_opened(tmp_path):
    """A FIFO without an extension hung the import forever (opening it waits for a writer)."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    os.mkfifo(src / "pipe.md")
    (src / "note.md").write_text("A note beside two FIFOs.\n")
    out = _import_in_subprocess([src], tmp_path / "home", timeout=60)
    lines = out.strip().splitlines()
    assert lines[0] == "1"
    assert f"{src / 'pipe'} | not a regular file (a FIFO)" in lines
    assert f"{src / 'pipe.md'} | not a regular file (a FIFO)" in lines


def test_sent_folder_scan_reads_mail_headers_only(tmp_path):
    """Everything with "sent" in its name was read whole to find the user's addresses: a 400 MB video
    under Sent/ took 27 s and 4.5 GB. Now only mail is read, and only its headers."""
    sent = tmp_path / "mail" / "Sent"
    sent.mkdir(parents=True)
    with open(sent / "holiday.mp4", "wb") as fh:      # sparse: 512 MB that take no disk
        fh.truncate(512 * 1024 * 1024)
    write_mbox(sent / "sent.mbox", [plain(f"s{i}", f"Ada <{ME}>", "Hi", "Hello " * 2000) for i in range(20)])
    tracemalloc.start()
    start = time.perf_counter()
    try:
        found = suggest_user_addresses([tmp_path / "mail"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == [ME]
    assert time.perf_counter() - start < 5
    assert peak < 16 * 1024 * 1024


def test_pipermail_archives_are_mail_and_gz_is_read(tmp_path):
    """Mailman's `2016-April.txt` went in as the user's own notes; `.txt.gz` archives vanished without
    a word; `jgb at example.com` senders never matched the user's address."""
    archive = tmp_path / "list"
    archive.mkdir()
    month = (
        "From jgb at example.com  Mon Apr  4 10:00:00 2016\n"
        "From: jgb at example.com (Jesus M. Gonzalez)\n"
        "Date: Mon, 04 Apr 2016 10:00:00 +0200\n"
        "Subject: [list] Release plans\n"
        "Message-ID: <pm-1@example.com>\n\n"
        "I think we should release on Friday, after the kelp survey.\n\n"
        "From other at example.net  Mon Apr  4 11:00:00 2016\n"
        "From: other at example.net (Other Person)\n"
        "Date: Mon, 04 Apr 2016 11:00:00 +0200\n"
        "Subject: Re: [list] Release plans\n"
        "In-Reply-To: <pm-1@example.com>\n"
        "Message-ID: <pm-2@example.com>\n\n"
        "Friday works for me.\n"
    )
    (archive / "2016-April.txt").write_text(month)
    with gzip.open(archive / "2016-May.txt.gz", "wt") as fh:
        fh.write(month.replace("pm-1", "pm-3").replace("pm-2", "pm-4").replace("Apr", "May"))
    (archive / "plain-note.txt").write_text("From the garden: tomatoes are late this year.\n")
    settings = UserSettings().with_addresses(["jgb at example.com"])
    assert settings.addresses == ("jgb@example.com",)
    with ContextStore() as store:
        summary = import_paths([archive], store=store, settings=settings)
        assert summary.added == 3 and not summary.skipped
        counts = store.counts()
        assert (counts["notes"], counts["emails"], counts["own_emails"]) == (1, 4, 2)
        authors = {d["author"] for d in store.documents(kind="email")}
        assert authors == {"jgb@example.com", "other@example.net"}
        assert not any("From:" in d["body"] for d in store.documents())
        assert store.counts()["reply_links"] == 0       # the user's messages are not replies here


def test_crlf_mbox_is_split_into_its_messages(tmp_path):
    """An mbox with CRLF line ends: messages 2-3 were merged into the first."""
    box = tmp_path / "crlf.mbox"
    messages = [plain(f"crlf-{i}", "bob@example.net", f"Message {i}", f"Body number {i}.") for i in range(3)]
    box.write_bytes(b"".join(b"From bob@example.net Mon Mar  2 09:00:00 2026\r\n"
                             + m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n" for m in messages))
    with ContextStore() as store:
        import_paths([box], store=store, settings=SETTINGS)
        titles = sorted(d["title"] for d in store.documents(kind="email"))
        assert titles == ["Message 0", "Message 1", "Message 2"]
        assert all("From bob" not in d["body"] for d in store.documents())


def test_raw_8bit_headers_are_decoded(tmp_path):
    """A raw 8-bit header (no encoded words) was stored as mojibake; now by the declared charset, or a
    detected one."""
    src = tmp_path / "mail"
    src.mkdir()
    _eml(src / "latin1.eml", "From: Jørgen Håland <jorgen@example.net>\nSubject: Smørbrød på fredag\n"
         "Message-ID: <l1@x>".encode("latin-1"))
    _eml(src / "koi8.eml", "From: Иван <ivan@example.ru>\nSubject: Привет из Москвы\nMessage-ID: <k1@x>\n"
         "MIME-Version: 1.0\nContent-Type: text/plain; charset=koi8-r".encode("koi8-r"),
         "Тест".encode("koi8-r"))
    _eml(src / "utf8.eml", "From: Zoë <zoe@example.org>\nSubject: Crème brûlée\nMessage-ID: <u1@x>".encode())
    with ContextStore() as store:
        import_paths([src], store=store, settings=SETTINGS)
        docs = {d["message_id"]: d for d in store.documents()}
        assert docs["<l1@x>"]["title"] == "Smørbrød på fredag"
        assert '"from_name": "Jørgen Håland"' in docs["<l1@x>"]["meta"]
        assert docs["<k1@x>"]["title"] == "Привет из Москвы"
        assert docs["<u1@x>"]["title"] == "Crème brûlée"


def test_terminal_escapes_never_reach_the_terminal(tmp_path, capsys):
    """A Subject holding ESC]0;…BEL (set the window title) and ESC[2J (clear the screen) was printed
    raw by `context --search`."""
    src = tmp_path / "mail"
    src.mkdir()
    _eml(src / "escape.eml", b"From: x@example.com\nSubject: Boat \x1b]0;owned\x07trip \x1b[2Jplans\n"
                             b"Message-ID: <esc@x>", b"The boat trip to the skerries. \x1b[31mred\x1b[0m\n")
    (src / "note\x1b[2J.md").write_text("# Kayak \x1b]0;title\x07notes\n\nThe kayak needs \x9b2Jwax. "
                                        + "It goes out at dawn, along the skerries to the lighthouse. " * 8 + "\n")
    assert cli_main(["import", str(src), "--me", "x@example.com", "--verbose"]) == 0
    assert cli_main(["context", "--search", "boat kayak"]) == 0
    out = capsys.readouterr()
    for stream in (out.out, out.err):
        assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream
    assert "Boat trip plans" in out.out and "Kayak notes" in out.out
    with ContextStore() as store:
        assert all("\x1b" not in d["title"] + d["body"] for d in store.documents())


@pytest.fixture
def some_skipped(tmp_path):
    """A folder of four empty notes, a photo and one good note."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"empty-{i}.md").write_bytes(b"")
    (src / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (src / "ok.md").write_text("fine\n")
    return src


def test_summary_groups_skips_by_reason(some_skipped, capsys):
    assert cli_main(["import", str(some_skipped)]) == 0
    out = capsys.readouterr().out
    assert "1 added, 0 updated, 0 unchanged, 4 skipped, 1 ignored" in out
    assert "skipped 4 (empty file): " in out and "and 3 more" in out
    assert "ignored 1 (not a note or mail file (.png))" in out
    assert "--verbose" in out


def test_verbose_import_lists_every_skipped_and_ignored_file(some_skipped, capsys):
    assert cli_main(["import", str(some_skipped)]) == 0
    capsys.readouterr()
    assert cli_main(["import", str(some_skipped), "--verbose"]) == 0          # again: the skips are listed again
    out = capsys.readouterr().out
    assert sum(line.startswith("  skipped ") for line in out.splitlines()) == 4
    assert f"  ignored {some_skipped / 'photo.png'}: not a note or mail file (.png)" in out


def test_file_names_that_are_not_utf8(tmp_path, capsys):
    """A file name in Latin-1 (Python keeps such bytes as lone surrogates, which SQLite and a UTF-8
    terminal refuse) stopped the import with UnicodeEncodeError."""
    src = tmp_path / "src"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), b"caf\xe9 notes.md"), "w") as fh:
        fh.write("A note about the harbour cafe.\n")
    with open(os.path.join(os.fsencode(src), b"bad\xff.eml"), "wb") as fh:
        fh.write(b"")
    assert cli_main(["import", str(src), "--verbose"]) == 0
    assert cli_main(["context", "--search", "harbour"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "bad\\xff.eml: empty file" in out
    assert "caf\\xe9 notes" in out
    assert cli_main(["context", "--remove", str(src)]) == 0


def test_a_long_single_line_note_imports_quickly(tmp_path):
    """The whole import of a one-line note (the benchmark holds the 20 MB case: under 5 s)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "one-line.md").write_text("harbour kelp survey. " * 150_000)      # 3 MB, no newline
    start = time.perf_counter()
    with ContextStore() as store:
        summary = import_paths([src], store=store, settings=SETTINGS)
        assert summary.added == 1 and store.counts()["chunks"] > 1000
    assert time.perf_counter() - start < 5
