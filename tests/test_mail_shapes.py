"""Mail as people keep it (issue 13): MH folders and trees of numbered files, replies without
threading headers (Outlook, in English, German and French), the same message in several folders
under different Message-IDs, Outlook .msg and .pst files."""

from __future__ import annotations

import datetime as dt
import mailbox
import sqlite3
import sys
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

from mipo_local.context import ContextStore, import_paths, suggest_user_addresses
from mipo_local.context.outlook import PST_HELP
from mipo_local.context.quotes import parse_quoted, split_reply
from mipo_local.context.store import MIGRATIONS
from mipo_local.context.threads import is_reply_subject, normalize_subject
from mipo_local.context.walk import source_kind
from mipo_local.settings import UserSettings

from .helpers import tree_digest
from .mail_fixtures import ME, plain
from .outlook_fixtures import outlook_msg

SETTINGS = UserSettings(addresses=(ME,))


def outlook(sender: str, subject: str, body: str, date: str, *, msg_id: str, to: str = ME) -> EmailMessage:
    """A message as Outlook sends it: no In-Reply-To, no References."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Date"] = sender, to, subject, date
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    msg.set_content(body)
    return msg


def crlf(msg: EmailMessage) -> bytes:
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_mh_folder(tmp_path):
    folder = tmp_path / "Mail"
    inbox = mailbox.MH(str(folder), create=True).add_folder("inbox")     # writes .mh_sequences
    for i in range(3):
        inbox.add(plain(f"mh-{i}", "bob@example.net", f"Harbour note {i}", f"The harbour crane number {i} is fixed."))
    draft = folder / "inbox" / "4"
    draft.write_bytes(b"To: bob@example.net\nSubject: draft about kelp\n\nKelp draft text.\n")   # few headers
    (folder / "inbox" / "5").write_bytes(bytes(range(256)) * 4)              # not mail
    (folder / "inbox" / ".xmhcache").write_text("cache")
    before = tree_digest(folder)
    with ContextStore() as store:
        summary = import_paths([folder], store=store, settings=SETTINGS)
        assert summary.added == 4 and not summary.skipped
        assert summary.ignored_files == [(str(folder / "inbox" / "5"), "not an email (a numbered file in a mail folder)")]
        titles = sorted(d["title"] for d in store.documents(kind="email"))
        assert titles == ["Harbour note 0", "Harbour note 1", "Harbour note 2", "draft about kelp"]
    assert source_kind(folder / "inbox") == "mh" and source_kind(folder) == "folder"
    assert tree_digest(folder) == before


@pytest.fixture
def numbered_tree(tmp_path):
    """The Enron corpus's layout: inbox/, sent_items/, deleted_items/ of files named 1., 2., 3. with
    CRLF line ends; a nameless binary among them."""
    root = tmp_path / "allen-p"
    for sub in ("inbox", "sent_items", "deleted_items"):
        (root / sub).mkdir(parents=True)
    boss = "Tim Belden <tim.belden@example.com>"
    (root / "inbox" / "1.").write_bytes(crlf(outlook(boss, "Forecast", "Send me the gas forecast for May.",
                                                     "Mon, 14 May 2001 14:00:00 -0700", msg_id="in1")))
    (root / "inbox" / "2.").write_bytes(crlf(outlook("news@example.com", "Weekly", "News of the week.",
                                                     "Tue, 15 May 2001 09:00:00 -0700", msg_id="in2")))
    for i in (1, 2, 3):
        (root / "sent_items" / f"{i}.").write_bytes(crlf(outlook(
            f"Phillip Allen <{ME}>", f"Re: Forecast {i}" if i > 1 else "RE: Forecast",
            f"Here is forecast number {i}, heavier in the west.\r\n\r\n -----Original Message-----\r\n"
            "From: \tBelden, Tim  \r\nSent:\tMonday, May 14, 2001 2:00 PM\r\nTo:\tAllen, Phillip K.\r\n"
            "Subject:\tForecast\r\n\r\nSend me the gas forecast for May.\r\n",
            f"Mon, 14 May 2001 {14 + i}:39:00 -0700", msg_id=f"out{i}", to="tim.belden@example.com")))
    (root / "deleted_items" / "1").write_bytes(crlf(outlook("x@example.com", "Lunch", "Lunch?", "Wed, 16 May 2001 12:00:00 -0700",
                                                            msg_id="del1")))
    (root / "deleted_items" / "2").write_bytes(b"\x00\x01binary attachment saved without a name")
    return root


@pytest.fixture
def numbered_import(numbered_tree):
    """The numbered tree imported with no address given: the summary and the open store."""
    with ContextStore() as store:
        yield SimpleNamespace(summary=import_paths([numbered_tree], store=store, settings=UserSettings()), store=store)


def test_numbered_tree_names_the_user_by_its_sent_folder(numbered_tree, numbered_import):
    assert suggest_user_addresses([numbered_tree]) == [ME]
    assert numbered_import.summary.detected_addresses == [ME]


def test_numbered_files_are_read_as_mail(numbered_import):
    assert numbered_import.summary.added == 6 and not numbered_import.summary.skipped
    counts = numbered_import.store.counts()
    assert (counts["emails"], counts["own_emails"]) == (6, 3)


def test_numbered_file_that_is_not_mail_is_ignored(numbered_tree, numbered_import):
    assert numbered_import.summary.ignored_files == [
        (str(numbered_tree / "deleted_items" / "2"), "not an email (a numbered file in a mail folder)")]


def test_numbered_replies_are_linked_by_subject(numbered_import):
    # "RE: Forecast" answers "Forecast"; "Re: Forecast 2" answers nothing stored
    assert numbered_import.store.counts()["reply_links"] == 1


def test_crlf_reply_body_is_the_users_text_without_cr(numbered_import):
    reply = next(d for d in numbered_import.store.documents(user_only=True) if d["title"] == "RE: Forecast")
    assert reply["body"] == "Here is forecast number 1, heavier in the west." and "\r" not in reply["body"]


def _outlook_thread(folder: Path) -> None:
    """Originals and the user's replies, none with threading headers: English Outlook, German
    Outlook, French and German attributions; two originals share a subject."""
    folder.mkdir()
    msgs = [
        outlook("Bob Berg <bob@example.net>", "Budget 2027", "Can you send the budget draft by Friday?",
                "Mon, 02 Mar 2026 09:00:00 +0100", msg_id="o-en"),
        outlook("Carla Diaz <carla@example.net>", "Budget 2027", "The board wants the budget on one page.",
                "Mon, 02 Mar 2026 11:30:00 +0100", msg_id="o-en2"),
        outlook(f"Ada Lind <{ME}>", "RE: Budget 2027",
                "Yes, it will be on your desk Thursday.\n\nAda\n\n-----Original Message-----\n"
                "From: Bob Berg [mailto:bob@example.net]\nSent: Monday, March 2, 2026 9:00 AM\nTo: Ada Lind\n"
                "Subject: Budget 2027\n\nCan you send the budget draft by Friday?\n",
                "Mon, 02 Mar 2026 13:00:00 +0100", msg_id="r-en", to="bob@example.net"),
        outlook("Jürgen Haas <juergen@example.de>", "Chorprobe", "Kommst du am Donnerstag zur Chorprobe?",
                "Tue, 03 Mar 2026 08:15:00 +0100", msg_id="o-de"),
        outlook(f"Ada Lind <{ME}>", "AW: Chorprobe",
                "Ja, ich bringe die Noten mit.\n\n-- \nAda Lind\n\nVon: Jürgen Haas <juergen@example.de>\n"
                "Gesendet: Dienstag, 3. März 2026 08:15\nAn: Ada Lind\nBetreff: Chorprobe\n\n"
                "Kommst du am Donnerstag zur Chorprobe?\n",
                "Tue, 03 Mar 2026 10:00:00 +0100", msg_id="r-de", to="juergen@example.de"),
        outlook("Claire Martin <claire@example.fr>", "Réunion jeudi", "Peux-tu venir à la réunion jeudi ?",
                "Wed, 04 Mar 2026 09:00:00 +0100", msg_id="o-fr"),
        outlook(f"Ada Lind <{ME}>", "Re: Réunion jeudi",
                "Oui, je viendrai avec les cartes.\n\nLe mer. 4 mars 2026 à 09:00, Claire Martin "
                "<claire@example.fr> a écrit :\n> Peux-tu venir à la réunion jeudi ?\n",
                "Wed, 04 Mar 2026 12:00:00 +0100", msg_id="r-fr", to="claire@example.fr"),
        outlook("Jürgen Haas <juergen@example.de>", "Noten", "Hast du die Noten für Sonntag?",
                "Thu, 05 Mar 2026 08:00:00 +0100", msg_id="o-de2"),
        outlook(f"Ada Lind <{ME}>", "AW: Noten",
                "Ja, alle drei Stimmen.\n\nAm 05.03.2026 um 08:00 schrieb Jürgen Haas:\n> Hast du die Noten für Sonntag?\n",
                "Thu, 05 Mar 2026 09:00:00 +0100", msg_id="r-de2", to="juergen@example.de"),
        outlook(f"Ada Lind <{ME}>", "Re: Budget 2027",     # answers Carla's message, not Bob's
                "One page it is.\n\nOn Mon, Mar 2, 2026 at 11:30 AM Carla Diaz <carla@example.net> wrote:\n"
                "> The board wants the budget on one page.\n",
                "Mon, 02 Mar 2026 15:00:00 +0100", msg_id="r-en2", to="carla@example.net"),
    ]
    for i, msg in enumerate(msgs, 1):
        (folder / str(i)).write_bytes(bytes(msg))


def test_outlook_thread_without_threading_headers(tmp_path):
    _outlook_thread(tmp_path / "mail")
    with ContextStore() as store:
        import_paths([tmp_path / "mail"], store=store, settings=SETTINGS)
        links = {(inc["message_id"], rep["message_id"]) for inc, rep in store.reply_pairs()}
        assert links == {("<o-en@example.org>", "<r-en@example.org>"), ("<o-en2@example.org>", "<r-en2@example.org>"),
                         ("<o-de@example.org>", "<r-de@example.org>"), ("<o-fr@example.org>", "<r-fr@example.org>"),
                         ("<o-de2@example.org>", "<r-de2@example.org>")}
        own = {d["message_id"]: d for d in store.documents(user_only=True)}
        assert own["<r-en@example.org>"]["body"] == "Yes, it will be on your desk Thursday.\n\nAda"
        assert own["<r-de@example.org>"]["body"] == "Ja, ich bringe die Noten mit."
        assert own["<r-de@example.org>"]["signature"] == "Ada Lind"
        assert own["<r-fr@example.org>"]["body"] == "Oui, je viendrai avec les cartes."
        assert own["<r-de2@example.org>"]["body"] == "Ja, alle drei Stimmen."
        assert not store.search("board wants")          # the quoted words are not the user's writing


def test_subjects_and_quote_headers():
    assert normalize_subject("RE: AW: [team] Fwd: Budget   2027") == "budget 2027"
    assert normalize_subject("SV: Re[2]: WG: TR: Budget") == "budget"
    assert is_reply_subject("AW: x") and is_reply_subject("Re: x") and not is_reply_subject("Fwd: x")
    quote = parse_quoted("De : Claire Martin\nEnvoyé : mercredi 4 mars 2026 09:00\nÀ : Ada\nObjet : Réunion\n\nPeux-tu venir ?")
    assert (quote.name, quote.date, quote.words) == ("Claire Martin", dt.datetime(2026, 3, 4, 9, 0), ("peux", "tu", "venir"))
    own, quoted, _ = split_reply("Looks good.\n\nTim Belden@ECT\n05/14/2001 02:00 PM\nTo: Phillip K Allen/HOU/ECT@ECT\n"
                                 "cc:\nSubject: forecast\n\nSend it")
    assert own == "Looks good." and quoted.startswith("Tim Belden@ECT")
    assert parse_quoted(quoted).date == dt.datetime(2001, 5, 14, 14, 0)


def test_same_message_in_several_folders_is_stored_once(tmp_path):
    root = tmp_path / "mail"
    text = "The kelp survey moves to Tuesday; bring the quadrats."
    for n, folder in enumerate(("sent", "sent_items", "all_documents")):
        (root / folder).mkdir(parents=True)
        msg = outlook(f"Ada Lind <{ME}>", "Kelp survey", text if n != 2 else text.replace("; ", ";\n"),
                      "Mon, 02 Mar 2026 10:00:00 +0100", msg_id=f"copy-{folder}")
        (root / folder / "1").write_bytes(bytes(msg))
    other = outlook(f"Ada Lind <{ME}>", "Kelp survey", "A different message, same minute and subject.",
                    "Mon, 02 Mar 2026 10:00:00 +0100", msg_id="different")
    (root / "sent" / "2").write_bytes(bytes(other))
    with ContextStore() as store:
        summary = import_paths([root], store=store, settings=SETTINGS)
        assert summary.added == 4
        assert store.counts()["emails"] == 2
        again = import_paths([root], store=store, settings=SETTINGS)
        assert again.documents_changed == 0 and store.counts()["emails"] == 2
        (root / "all_documents" / "1").unlink()           # the copy kept goes: another copy takes its place
        (root / "sent" / "1").unlink()
        import_paths([root], store=store, settings=SETTINGS)
        kept = sorted(" ".join(d["body"].split()) for d in store.documents())
        assert kept == ["A different message, same minute and subject.", text]   # the copy in sent_items
        assert store.integrity_ok()


def test_outlook_msg_files_and_a_reply_linked_across_them(tmp_path):
    src = tmp_path / "outlook"
    src.mkdir()
    sent = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    (src / "boat.msg").write_bytes(outlook_msg(
        subject="Boat trip", body="Shall we take the boat out to the skerries on Saturday?", sender_name="Bob Berg",
        sender_email="bob@example.net", sent=sent, message_id="<boat-1@example.net>"))
    (src / "reply.msg").write_bytes(outlook_msg(
        subject="RE: Boat trip", sender_name="Ada Lind", sender_email=ME, sent=sent + dt.timedelta(hours=2),
        body="Saturday works, I will bring the thermos.\r\n\r\n-----Original Message-----\r\nFrom: Bob Berg\r\n"
             "Sent: Monday, March 2, 2026 8:00 AM\r\nSubject: Boat trip\r\n\r\nShall we take the boat out to the skerries?\r\n",
        transport_headers="Message-ID: <reply-1@example.org>\r\nTo: Bob Berg <bob@example.net>\r\n"))
    (src / "broken.msg").write_bytes(b"not an OLE file" * 200)
    with ContextStore() as store:
        summary = import_paths([src], store=store, settings=SETTINGS)
        assert summary.added == 2
        assert [(Path(p).name, r.split(" (")[0]) for p, r in summary.skipped] == [("broken.msg", "damaged Outlook .msg")]
        docs = {d["message_id"]: d for d in store.documents()}
        boat = docs["<boat-1@example.net>"]
        assert (boat["title"], boat["author"], boat["date"]) == ("Boat trip", "bob@example.net", "2026-03-02T08:00:00+00:00")
        assert docs["<reply-1@example.org>"]["body"] == "Saturday works, I will bring the thermos."
        assert [(a["title"], b["title"]) for a, b in store.reply_pairs()] == [("Boat trip", "RE: Boat trip")]


def test_pst_files_are_read_or_skipped_with_a_reason(tmp_path, monkeypatch):
    """No library writes .pst files and none ships a sample: a damaged one, and one without the
    optional reader, are skips that say what to do."""
    src = tmp_path / "outlook"
    src.mkdir()
    (src / "archive.pst").write_bytes(b"!BDN" + bytes(2000))
    summary = import_paths([src], settings=SETTINGS)
    assert summary.added == 0 and len(summary.skipped) == 1
    reason = summary.skipped[0][1]
    try:
        import pypff  # noqa: F401
        assert reason.startswith("damaged or unsupported Outlook .pst")
    except ImportError:
        assert reason == PST_HELP
    monkeypatch.setitem(sys.modules, "pypff", None)        # the optional reader not installed
    (src / "archive.pst").write_bytes(b"!BDN" + bytes(2001))
    summary = import_paths([src], settings=SETTINGS)
    assert summary.skipped == [(str(src / "archive.pst"), PST_HELP)]
    assert "readpst" in PST_HELP


def test_a_pst_that_crashes_its_reader_is_a_skip(tmp_path, monkeypatch):
    """libpff is C code reading whatever the file holds: it runs in a child process, and a crash
    there costs that file only."""
    import importlib.util

    from mipo_local.context import outlook

    src = tmp_path / "outlook"
    src.mkdir()
    (src / "crafted.pst").write_bytes(b"!BDN" + bytes(4000))
    (src / "note.md").write_text("A note beside the crafted archive.\n")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: True if name == "pypff" else real_find_spec(name, *a))
    monkeypatch.setattr(outlook, "_reader_command",
                        lambda: [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    summary = import_paths([src], settings=SETTINGS)
    assert summary.added == 1
    assert summary.skipped == [(str(src / "crafted.pst"), "the Outlook .pst reader failed on this file (exit status -11)")]


def test_store_from_before_issue_13_is_migrated(tmp_path):
    """A schema-4 store gains the thread and fingerprint columns; its mail files are read again."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    from mipo_local.context.store import _statements

    for script in MIGRATIONS[:4]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    _outlook_thread(tmp_path / "mail")
    with ContextStore(path) as store:
        assert store.schema_version == len(MIGRATIONS) == 7
        import_paths([tmp_path / "mail"], store=store, settings=SETTINGS)
        assert store.counts()["reply_links"] == 5


def test_crafted_quote_lines_cannot_stall_the_splitter():
    """An attribution-like line of '<' and '@' took split_reply 70 s (the attribution regex
    backtracked); one of spaces made the quote parser's two lazy groups cubic."""
    import time

    bodies = [("<" * 150 + "@" * 800 + ":\n") * 2000, ("On " + " " * 590 + "xwrote:\n") * 400,
              "Re: " * 250_000, ("1/1/2001 " * 100 + "PM\n") * 2000]
    start = time.perf_counter()
    for body in bodies:
        split_reply(body)
        parse_quoted(body)
        normalize_subject(body)
    assert time.perf_counter() - start < 2


def test_sent_folders_are_named_so_in_a_word(tmp_path):
    """Folders of message files are now read for the user's addresses: only those whose name says
    'sent' as a word (Sent Items, sent_items, Gesendet, Éléments envoyés), not 'presentations'."""
    from mipo_local.context.importer import is_sent_name

    assert all(map(is_sent_name, ["Sent", "sent_items", "_sent_mail", "Sent Items", "Gesendete Objekte", "Éléments envoyés"]))
    assert not any(map(is_sent_name, ["presentations", "Consent forms", "dissent.mbox"]))
    for folder, sender in (("presentations", "carla@example.net"), ("Sent Items", ME)):
        (tmp_path / "mail" / folder).mkdir(parents=True)
        (tmp_path / "mail" / folder / "1").write_bytes(bytes(plain(f"s-{sender}", sender, "Slides", "The slides.")))
    assert suggest_user_addresses([tmp_path / "mail"]) == [ME]


def test_mail_whose_head_cuts_a_header_name_is_still_mail(tmp_path):
    """A message without an extension whose first 8 KB end inside a header name (long DKIM/ARC
    headers) was taken for a file of another type: the cut line is no longer read as a header."""
    from mipo_local.context.files import HEAD_BYTES

    top = b"From: bob@example.net\nTo: ada@example.org\nSubject: Long headers\nMessage-ID: <long@x>\n"
    filler = [b"X-Filler-%02d: " % i + b"a" * 300 + b"\n" for i in range(24)]
    head = top + b"".join(filler)
    pad = HEAD_BYTES - len(head) - len(b"X-Pad: \n") - 3        # the cut falls 3 characters into the next name
    raw = head + b"X-Pad: " + b"p" * pad + b"\n" + b"DKIM-Signature: v=1\n\nThe body of a message with long headers.\n"
    assert raw[HEAD_BYTES - 3:HEAD_BYTES] == b"DKI"
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "message").write_bytes(raw)
    summary = import_paths([tmp_path / "mail"], settings=SETTINGS)
    assert summary.added == 1 and not summary.ignored_files
