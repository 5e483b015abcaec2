"""What real mailboxes and home folders hold, found by a review: notes in 8-bit charsets other than
Western ones, UTF-8 with a stray byte, Notepad's UTF-16, mail whose declared charset lies, several
inline text parts, and .eml files with a byte-order mark. Each is read as written, not as mojibake,
replacement characters or a skip."""

from __future__ import annotations

import base64

import pytest

from mipo_local.context import ContextStore, import_paths
from mipo_local.context.mail import parse_message
from mipo_local.context.text import Unreadable, decode_text

NOTES = {
    "Привет, как дела? Сегодня хорошая погода.": "cp1251",
    "Zażółć gęślą jaźń. Dzisiaj była piękna pogoda i poszliśmy na spacer.": "cp1250",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.": "cp1250",
    "Καλημέρα, τι κάνεις; Σήμερα έχει ωραίο καιρό.": "cp1253",
    "Le café était très bon, et la crème brûlée aussi. À bientôt!": "cp1252",
    "Réunion à 10h": "cp1252",
    "Sykkelen min heter Grønnsak. Blåbær!": "cp1252",
    "¿Dónde está la estación? Mañana.": "cp1252",
    "La col·lecció és molt interessant.": "cp1252",
    "He said \u201chello\u201d \u2013 it\u2019s fine\u2026 £5 or 10€, 20°C, ½ cup": "cp1252",
}


@pytest.mark.parametrize("text,charset", NOTES.items())
def test_8bit_notes_are_read_in_their_charset(text, charset):
    assert decode_text(text.encode(charset)) == text


def test_utf8_with_a_stray_byte_keeps_its_utf8_and_reads_the_byte_as_cp1252():
    text = "Great day – “quotes” … it’s fine. " * 5
    assert decode_text(text.encode() + b"caf\xe9 \x92ok\x92") == text + "café ’ok’"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_unicode_notes_with_a_byte_order_mark(encoding):
    assert decode_text("\ufeffNotepad note\r\nline two — ok\r\n".encode(encoding)) == "Notepad note\r\nline two — ok\r\n"


def test_binary_is_still_refused():
    with pytest.raises(Unreadable):
        decode_text(bytes(range(1, 256)) * 20)


def test_notes_folder_in_several_charsets_imports_readable_text(tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    for i, (text, charset) in enumerate(NOTES.items()):
        (src / f"note{i}.md").write_bytes((text + "\n").encode(charset))
    (src / "notepad.txt").write_bytes("\ufeffA Notepad note in UTF-16.\r\n".encode("utf-16-le"))
    summary = import_paths([src])
    assert not summary.skipped and summary.added == len(NOTES) + 1
    with ContextStore() as store:
        assert store.search("погода")[0].text.startswith("Привет")
        assert store.search("Notepad")[0].text.startswith("A Notepad note")


H = b"From: a@b.com\r\nTo: c@d.com\r\nSubject: hi\r\nMessage-ID: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"


def _body(headers: bytes, payload: bytes) -> str:
    return parse_message(H + headers + b"\r\n" + payload, fallback_id="x").body


@pytest.mark.parametrize("headers,payload", [
    (b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 8bit\r\n", "Café crème".encode()),
    (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", "Café crème".encode("latin-1")),
    (b"Content-Type: text/plain\r\n", "Café crème".encode()),
    (b"", "Café crème".encode()),
    (b"Content-Type: text/plain; charset=iso-8859-1\r\n", "Café crème".encode()),
    (b"Content-Type: text/plain; charset=x-unknown\r\n", "Café crème".encode()),
])
def test_a_mail_body_whose_charset_is_wrong_or_missing_is_read_as_written(headers, payload):
    assert _body(headers, payload) == "Café crème"


def test_7bit_charsets_are_decoded_as_declared():
    assert _body(b"Content-Type: text/plain; charset=utf-7\r\n", b"Hi Mom -+Jjo--!") == "Hi Mom -\u263a-!"
    assert _body(b"Content-Type: text/plain; charset=iso-2022-jp\r\n",
                 "こんにちは、元気ですか".encode("iso-2022-jp")) == "こんにちは、元気ですか"
    assert _body(b"Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n",
                 base64.b64encode("Hello there".encode("utf-16"))) == "Hello there"


def test_every_inline_text_part_of_a_mixed_message_is_kept():
    mixed = (b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
             b"Content-Type: text/plain; charset=utf-8\r\n\r\nFirst part of my message.\r\n--B\r\n"
             b'Content-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n'
             b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--B\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\nSecond part, after the picture.\r\n--B\r\n"
             b'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="log.txt"\r\n\r\n'
             b"an attached log, not the message\r\n--B--\r\n")
    body = parse_message(H + mixed, fallback_id="x").body
    assert body == "First part of my message.\n\nSecond part, after the picture."


@pytest.mark.parametrize("lead", [b"\xef\xbb\xbf", b"\r\n", b"\n\n", b"\xef\xbb\xbf\n"])
def test_an_eml_with_a_byte_order_mark_or_blank_lines_first_is_read(lead):
    doc = parse_message(lead + H + b"\r\nHello.\r\n", fallback_id="x")
    assert (doc.title, doc.author, doc.body) == ("hi", "a@b.com", "Hello.")


def _messages(raw: bytes) -> list:
    from mipo_local.context.mail import split_mbox

    return [parse_message(m, fallback_id="x") for m in split_mbox(raw)]


def test_a_body_paragraph_starting_with_from_stays_in_its_message():
    raw = (b"From a@b.com Mon Jan  1 10:00:00 2024\nFrom: a@b.com\nSubject: one\nMessage-ID: <1@x>\n\n"
           b"It went well.\n\nFrom the start, yes.\nWe knew it.\n\n"
           b"From c@d.com Tue Jan  2 10:00:00 2024\nFrom: c@d.com\nSubject: two\nMessage-ID: <2@x>\n\nSecond.\n")
    one, two = _messages(raw)
    assert one.body == "It went well.\n\nFrom the start, yes.\nWe knew it." and two.title == "two"


def test_two_mailboxes_joined_without_a_blank_line_are_two_messages():
    raw = (b"From a@b.com Mon Jan  1 10:00:00 2024\nFrom: a@b.com\nSubject: one\nMessage-ID: <1@x>\n\nbody\n"
           b"From 1647563218394@xxx Fri Mar 18 01:03:39 +0000 2022\nX-GM-THRID: 1\nFrom: c@d.com\nSubject: two\n"
           b"Message-ID: <2@x>\n\nSecond.\n")
    one, two = _messages(raw)
    assert (one.body, one.quoted, two.title, two.body) == ("body", "", "two", "Second.")


def test_front_matter_that_yaml_cannot_build_keeps_the_note():
    from pathlib import Path

    from mipo_local.context.notes import parse_note, split_front_matter

    note = parse_note(Path("n.md"), b"---\ndate: 2024-02-30\ntags: [kelp, survey]\n---\nMy text\n")
    assert (note.body, note.date, note.meta["tags"]) == ("My text", "2024-02-30", ["kelp", "survey"])
    assert parse_note(Path("n.md"), b"---\ncreated: 2024-03-01 10:00\n---\nx\n").date == "2024-03-01T10:00:00"
    assert parse_note(Path("n.md"), b"---\ndate: 2024-03-01\n---\nx\n").date == "2024-03-01"
    # nested aliases (a few hundred bytes that expand to gigabytes) and deep nesting are not read
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    bomb = "---\n" + "\n".join(levels) + "\ntags: *i\n---\nbody"
    meta, body = split_front_matter(bomb)
    assert meta == {} and body == bomb
    assert split_front_matter("---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\nbody")[0] == {}
    many = parse_note(Path("n.md"), ("---\ntags: [" + ", ".join(f"t{i}" for i in range(5000)) + "]\n---\nx\n").encode())
    assert len(many.meta["tags"]) == 64


def test_maildir_plus_plus_folders_are_read_and_name_the_user(tmp_path):
    """Dovecot and Courier keep folders inside the Maildir as hidden Maildirs (`.Sent`, `.Archive.2020`):
    their mail is imported, and the Sent one names the user; other things in the Maildir are walked."""
    from mipo_local.context import suggest_user_addresses

    from .mail_fixtures import plain, write_maildir

    box = write_maildir(tmp_path / "Mail", [plain("in-1", "friend@example.net", "Dinner?", "Dinner on Friday?")])
    write_maildir(box / ".Sent", [plain("out-1", "me@example.org", "Re: Dinner?", "Yes, Friday works.")])
    write_maildir(box / ".Archive.2020", [plain("old-1", "old@example.net", "Old news", "From 2020.")])
    (box / "notes.txt").write_text("A note kept beside the mail.\n")
    summary = import_paths([box])
    assert not summary.skipped and summary.added == 4
    with ContextStore() as store:
        assert store.search("Friday works")[0].text.startswith("Yes, Friday works")
    assert suggest_user_addresses([box]) == ["me@example.org"]


def test_a_notes_folder_with_cur_and_new_folders_is_not_a_maildir(tmp_path):
    notes = tmp_path / "notes"
    for sub in ("projects/cur", "projects/new", "projects/old"):
        (notes / sub).mkdir(parents=True)
    (notes / "projects/cur/plan.md").write_text("The current plan: finish the kelp survey.\n")
    (notes / "projects/new/idea.md").write_text("A new idea: a tide-pool guide.\n")
    (notes / "projects/overview.md").write_text("Overview of the projects.\n")
    (notes / "projects/old/done.md").write_text("Done: the balcony garden.\n")
    summary = import_paths([notes])
    assert not summary.skipped and summary.added == 4


def test_different_messages_under_one_message_id_are_all_kept(tmp_path):
    """Mail programs and spammers reuse Message-IDs: a message is a copy of another only when its
    content is the same, not its Message-ID alone."""
    src = tmp_path / "mail"
    src.mkdir()

    def message(subject: str, day: int, body: str, envelope: bool) -> bytes:
        head = b"From x@example.net Mon Jan  %d 10:00:00 2024\n" % day if envelope else b""
        return head + (f"From: x@example.net\nSubject: {subject}\nMessage-ID: <same@x>\n"
                       f"Date: Mon, {day} Jan 2024 10:00:00 +0000\n\n{body}\n\n").encode()

    (src / "box.mbox").write_bytes(message("First", 1, "The first text.", True) + message("Second", 2, "The second text.", True)
                                   + message("First", 1, "The first text.", True))      # a true copy
    (src / "third.eml").write_bytes(message("Third", 3, "The third text.", False))
    (src / "copy.eml").write_bytes(message("Second", 2, "The second text.", False))  # a copy, in another file
    summary = import_paths([src])
    assert summary.added == 3 and not summary.skipped
    with ContextStore() as store:
        assert sorted(d["title"] for d in store.documents()) == ["First", "Second", "Third"]
    assert import_paths([src]).added == 0          # again: nothing new, nothing changed


def test_a_source_inside_another_is_stored_once(tmp_path):
    from .mail_fixtures import write_notes

    notes = write_notes(tmp_path / "notes")
    import_paths([notes])
    with ContextStore() as store:
        before = store.counts()
    again = import_paths([notes / "garden.md"])              # a file of a folder imported before
    assert any("imported before" in n for n in again.notes)
    journal_first = tmp_path / "second"
    write_notes(journal_first)
    import_paths([journal_first / "journal"])                  # a folder first, then the folder around it
    around = import_paths([journal_first])
    with ContextStore() as store:
        assert len(store.search("zucchini", 10, user_only=False)) == 2      # one per notes folder
        assert len(store.search("Fløyen", 10, user_only=False)) == 2
        assert store.counts()["notes"] == 2 * before["notes"]
        assert len(store.sources()) == 3
    assert any("stays a source of its own" in n for n in around.notes)


def test_a_from_and_to_line_of_ones_own_text_is_not_a_quote():
    from mipo_local.context.quotes import split_reply

    own = "My trip plan:\nFrom: London Heathrow\nTo: Paris CDG\nDeparture at 10.\n\nSee you!"
    assert split_reply(own) == (own, "", "")
    assert split_reply("Fine.\n\nFrom: Ada <ada@x.org>\nTo: me\nSubject: plan\n\nold")[0] == "Fine."


def test_a_crafted_content_type_of_thousands_of_parameters_is_read_in_part():
    """Parsing MIME parameters grows faster than the header (250 KB took 7 s): a Content-* header is
    read up to 8 KB, and the message is still read."""
    params = b"".join(b";\r\n p%d=v%d" % (i, i) for i in range(160_000))
    doc = parse_message(H + b"Content-Type: text/plain; charset=utf-8" + params + b"\r\n\r\nhello\r\n", fallback_id="x")
    assert doc.body == "hello"


def _reused_id(subject: str, day: int) -> bytes:
    return (b"From x@example.net Mon Jan  %d 10:00:00 2024\n" % day + f"From: x@example.net\nSubject: {subject}\n"
            f"Message-ID: <X@x>\nDate: Mon, {day} Jan 2024 10:00:00 +0000\n\nThe text of {subject}.\n\n".encode())


@pytest.mark.parametrize("a,b", [(["M1"], ["M2", "M1"]), (["M1", "M2"], ["M2"]), (["M1", "M2"], ["M2", "M1"])])
def test_a_mailbox_removed_leaves_each_message_where_a_copy_of_it_is(tmp_path, a, b):
    """Copies are told apart by content: when a mailbox goes, each of its messages that another file
    holds a copy of moves there, and only those."""
    src = tmp_path / "mail"
    src.mkdir()
    days = {"M1": 1, "M2": 2}
    (src / "a.mbox").write_bytes(b"".join(_reused_id(m, days[m]) for m in a))
    (src / "b.mbox").write_bytes(b"".join(_reused_id(m, days[m]) for m in b))
    import_paths([src])
    (src / "a.mbox").unlink()
    import_paths([src])
    import_paths([src])                                  # and again: nothing changes
    with ContextStore() as store:
        held = sorted((d["title"], d["body"]) for d in store.documents())
    assert held == sorted((m, f"The text of {m}.") for m in b)


@pytest.mark.parametrize("text", ["Paris–Lyon : réunion à 9h", "Die Strecke Köln–Düsseldorf ist schön—wirklich schön.",
                                  "Vi tok toget Oslo–Bergen i går, og det var så fint.", "Ça été élu",
                                  "Ärger im CAFÉ’S", "Er sagte „schön“ und ging."])
def test_western_text_with_dashes_quotes_and_capitals_stays_cp1252(text):
    assert decode_text(text.encode("cp1252")) == text


def test_a_maildir_whose_message_names_end_like_notes_is_still_a_maildir(tmp_path):
    from mipo_local.context.mail import is_maildir

    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1700000001.M1P2Q2.mail.example.org").write_bytes(H + b"\r\nhello\r\n")
    (box / "maildirfolder").write_bytes(b"")
    (box / "dovecot-uidlist").write_bytes(b"3 V1 N2\n")
    assert is_maildir(box)
    summary = import_paths([box])
    assert summary.added == 1 and not summary.skipped and not summary.ignored_files


def test_junk_and_trash_maildir_folders_are_left_out(tmp_path):
    from .mail_fixtures import plain, write_maildir

    box = write_maildir(tmp_path / "Mail", [plain("in-1", "friend@example.net", "Dinner?", "Dinner on Friday?")])
    for name in (".Junk", ".Spam", ".Trash"):
        write_maildir(box / name, [plain(f"x{name}", "spam@example.net", "Win", "You won.")])
    assert import_paths([box]).added == 1


def test_a_source_inside_another_imported_on_its_own_is_reimported_as_itself(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("First words.\n")
    (notes / "b.md").write_text("Other words.\n")
    import_paths([notes / "a.md"])
    import_paths([notes])
    (notes / "a.md").write_text("Second words, edited.\n")
    again = import_paths([notes / "a.md"])
    assert again.updated == 1 and not again.notes
    with ContextStore() as store:
        assert store.search("edited", 5, user_only=False)[0].text.startswith("Second words")


def test_a_new_source_that_gives_nothing_is_not_kept(tmp_path):
    (tmp_path / "empty").mkdir()
    summary = import_paths([tmp_path / "empty", "/dev/null"])
    assert sum("not kept as a source" in n for n in summary.notes) == 2
    with ContextStore() as store:
        assert store.sources() == []
