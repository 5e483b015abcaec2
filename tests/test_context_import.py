"""Importing notes, vaults and email into the context store (real files, real SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mipo_local.context import ContextStore, import_paths
from mipo_local.context.mail import split_reply
from mipo_local.context.store import MIGRATIONS
from mipo_local.context.text import chunk_text, estimate_tokens, html_to_text
from mipo_local.errors import MipoError
from mipo_local.settings import UserSettings, load_settings

from .helpers import assert_one_line_error, run_cli, tree_digest
from .mail_fixtures import (ME, encoded, plain, thread_messages, write_many_notes, write_maildir, write_mbox, write_notes,
                            write_vault)

SETTINGS = UserSettings(addresses=(ME,))


def docs_by_title(store):
    return {d["title"]: d for d in store.documents()}


def test_notes_folder(tmp_path):
    notes = write_notes(tmp_path / "notes")
    with ContextStore() as store:
        summary = import_paths([notes], store=store, settings=SETTINGS)
        assert (summary.added, summary.skipped) == (4, [])
        docs = docs_by_title(store)
        assert set(docs) == {"Garden plans", "2026 03 01", "ideas", "Reading list"}
        assert all(d["author_is_user"] == 1 and d["kind"] == "note" for d in docs.values())
        assert "The Overstory" in docs["Reading list"]["body"] and "#+TITLE" not in docs["Reading list"]["body"]
        assert store.search("zucchini")[0].title == "Garden plans"


@pytest.fixture
def vault(tmp_path):
    """The write_vault() vault imported: its summary, the store and its notes by title."""
    folder = write_vault(tmp_path / "vault")
    with ContextStore() as store:
        summary = import_paths([folder], store=store, settings=SETTINGS)
        yield SimpleNamespace(summary=summary, store=store, docs=docs_by_title(store))


def test_vault_imports_its_notes_and_ignores_the_rest(vault):
    assert vault.summary.added == 2 and vault.summary.skipped == [] and vault.summary.ignored == 1  # the .png


def test_vault_titles_come_from_front_matter_or_file_name(vault):
    assert set(vault.docs) == {"Kelp survey April", "Methods"}


def test_vault_wikilinks_become_their_text_and_embeds_go(vault):
    body = vault.docs["Kelp survey April"]["body"]
    assert "the north site" in body and "[[" not in body and "quadrat.png" not in body
    assert "See Methods and  and Methods." in body


def test_vault_front_matter_tags_and_date_are_kept(vault):
    kelp = vault.docs["Kelp survey April"]
    assert json.loads(kelp["meta"])["tags"] == ["kelp", "fieldwork"] and kelp["date"] == "2026-04-02"
    assert json.loads(vault.docs["Methods"]["meta"])["tags"] == ["methods"]


def test_vault_trash_is_not_imported(vault):
    assert not vault.store.search("discarded draft")


@pytest.fixture
def inbox(tmp_path):
    """The thread_messages() mbox imported: its summary, the store and its emails by Message-ID."""
    box = write_mbox(tmp_path / "Inbox.mbox", thread_messages())
    with ContextStore() as store:
        summary = import_paths([box], store=store, settings=SETTINGS)
        yield SimpleNamespace(summary=summary, store=store,
                              emails={d["message_id"]: d for d in store.documents(kind="email")})


def test_mbox_is_one_file_of_many_documents(inbox):
    assert inbox.summary.added == 1 and inbox.summary.documents_changed == 6


def test_reply_body_is_the_users_own_text(inbox):
    reply = inbox.emails["<re-1@example.org>"]
    assert reply["author_is_user"] == 1
    assert reply["body"] == "Yes! I will bring the alto scores and my tuning fork named Gustav."


def test_reply_quote_and_signature_are_kept_apart(inbox):
    reply = inbox.emails["<re-1@example.org>"]
    assert "are you coming" in reply["quoted"] and "wrote:" in reply["quoted"]
    assert reply["signature"] == "Ada Lind\nBergen"


def test_alternative_mail_is_read_from_its_plain_part(inbox):
    assert inbox.emails["<alt-1@example.org>"]["body"] == "Plain version of the news."


def test_html_mail_becomes_readable_text(inbox):
    body = inbox.emails["<html-1@example.org>"]["body"]
    assert "Order 42 shipped." in body and "<" not in body and "color:red" not in body
    assert "Kayak paddle | 90" in body


def test_quoted_printable_body_and_encoded_headers_are_decoded(inbox):
    qp = inbox.emails["<qp-1@example.org>"]
    assert "smørbrød og blåbærpai" in qp["body"] and qp["title"] == "Smørbrød på fredag"
    assert json.loads(qp["meta"])["from_name"] == "Jørgen Håland" and qp["author"] == "jorgen@example.net"


def test_attachments_are_not_imported(inbox):
    assert "attachment text" not in inbox.emails["<qp-1@example.org>"]["body"]


def test_base64_latin1_body_is_decoded(inbox):
    assert "façade of the café is naïve" in inbox.emails["<b64-1@example.org>"]["body"]


def test_reply_is_linked_to_the_message_it_answers(inbox):
    pairs = inbox.store.reply_pairs()
    assert [(a["message_id"], b["message_id"]) for a, b in pairs] == [("<in-1@example.org>", "<re-1@example.org>")]


def test_retrieval_covers_the_users_own_writing_only(inbox):
    assert [h.title for h in inbox.store.search("tuning fork Gustav")] == ["Re: Choir on Thursday?"]
    assert inbox.store.search("kayak paddle") == []
    assert inbox.store.search("kayak paddle", user_only=False)[0].title == "Your order"


def test_eml_and_maildir(tmp_path):
    eml = tmp_path / "one.eml"
    eml.write_bytes(encoded("eml-1", "Hei! Dette er en test med æøå.", cte="qp").as_bytes())
    maildir = write_maildir(tmp_path / "Mail", thread_messages()[:2])
    with ContextStore() as store:
        summary = import_paths([eml, maildir], store=store, settings=SETTINGS)
        assert summary.added == 3 and not summary.skipped
        assert "æøå" in docs_by_title(store)["Smørbrød på fredag"]["body"]
        assert len(store.reply_pairs()) == 1
        # reading a Maildir message renames it (new/ → cur/ with flags): same message, nothing new
        msg = next((maildir / "new").iterdir())
        os.rename(msg, maildir / "cur" / (msg.name + ":2,S"))
        again = import_paths([maildir], store=store, settings=SETTINGS)
        assert again.documents_changed == 0 and store.counts()["emails"] == 3


def test_user_address_defaults_to_sent_mailbox(tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    write_mbox(mail / "Sent.mbox", [thread_messages()[1], plain("s2", ME, "Hi", "Hello Karin")])
    write_mbox(mail / "Inbox.mbox", thread_messages())
    summary = import_paths([mail])
    assert summary.detected_addresses == [ME]
    assert load_settings().addresses == (ME,)
    with ContextStore() as store:
        assert store.counts()["own_emails"] == 2          # the reply is stored once, not per mailbox
        assert len(store.reply_pairs()) == 1


def test_reimport_is_idempotent_and_tracks_changes(tmp_path):
    notes = write_notes(tmp_path / "notes")
    box = write_mbox(tmp_path / "mail.mbox", thread_messages())
    with ContextStore() as store:
        first = import_paths([notes, box], store=store, settings=SETTINGS)
        counts = store.counts()
        second = import_paths([notes, box], store=store, settings=SETTINGS)
        assert (second.added, second.updated, second.unchanged, second.documents_changed) == (0, 0, 5, 0)
        assert store.counts() == counts
        os.utime(notes / "garden.md")                    # touched, same bytes: unchanged
        (notes / "ideas.txt").write_text("Idea: call the starter Bjørn the Second.\n")
        (notes / "reading.org").unlink()
        (notes / "new.md").write_text("A brand new note about herring.\n")
        third = import_paths([notes], store=store, settings=SETTINGS)
        assert (third.added, third.updated, third.unchanged, third.removed) == (1, 1, 2, 1)
        assert store.search("Second")[0].title == "ideas"
        assert not store.search("Overstory")
        assert first.added == 5
        assert store.integrity_ok()


def test_sources_are_never_modified(tmp_path):
    src = tmp_path / "src"
    write_notes(src / "notes")
    write_vault(src / "vault")
    write_mbox(src / "mail.mbox", thread_messages())
    write_maildir(src / "Maildir", thread_messages()[:3])
    before = tree_digest(src)
    import_paths([src], settings=SETTINGS)
    import_paths([src], settings=SETTINGS)
    assert tree_digest(src) == before


@pytest.fixture(scope="module")
def bad_inputs(module_home):
    """A folder of good notes and bad files, imported once for the module: the summary, the store and
    the skip reason of each file by name."""
    import random

    root = module_home.parent / "bad-inputs"
    root.mkdir()
    src = root / "src"
    write_notes(src)
    (src / "binary.md").write_bytes(b"PK\x03\x04\x00\x00binary zip-like content" * 20)
    rng = random.Random(0)
    (src / "garbled.txt").write_bytes(bytes(rng.randrange(1, 256) for _ in range(4000)))  # corrupted bytes
    (src / "latin1.txt").write_bytes("Smørbrød på fredag, Ære være kokken!".encode("latin-1"))
    (src / "empty.md").write_bytes(b"")
    (src / "huge.md").write_text("word " * 400_000)          # ~2 MB, above a 1 MB cap
    (src / "broken.eml").write_bytes(b"\n\n\nthis is not an email at all")
    (src / "notmail.mbox").write_text("Hello, I am not an mbox\n")
    (src / "loop.md").symlink_to(src / "loop.md")
    outside = root / "outside.md"
    outside.write_text("secret outside the chosen folder")
    (src / "escape.md").symlink_to(outside)
    (src / "linked-dir").symlink_to(root)
    settings = UserSettings(addresses=(ME,), max_file_mb=1)
    with ContextStore() as store:
        summary = import_paths([src], store=store, settings=settings)
        yield SimpleNamespace(summary=summary, store=store, reasons={Path(p).name: r for p, r in summary.skipped})


@pytest.mark.parametrize("name, how, reason", [
    ("binary.md", "is", "binary file with a text extension"),
    ("garbled.txt", "starts", "undecodable"),
    ("empty.md", "is", "empty file"),
    ("huge.md", "holds", "1 MB limit"),
    ("broken.eml", "starts", "malformed email"),
    ("notmail.mbox", "starts", "not an mbox"),
    ("loop.md", "is", "symlink loop"),
    ("escape.md", "holds", "outside the chosen folder"),
    ("linked-dir", "holds", "not followed"),
])
def test_bad_input_is_skipped_with_its_reason(bad_inputs, name, how, reason):
    got = bad_inputs.reasons[name]
    assert {"is": got == reason, "starts": got.startswith(reason), "holds": reason in got}[how], got


def test_good_notes_still_come_in_beside_bad_ones(bad_inputs):
    assert bad_inputs.summary.added == 5
    assert bad_inputs.store.search("smørbrød")[0].text.startswith("Smørbrød på fredag")   # the latin-1 note
    assert bad_inputs.store.integrity_ok()


def test_links_out_of_the_folder_are_not_read(bad_inputs):
    assert not bad_inputs.store.search("secret outside")


def test_unreadable_file_is_skipped(tmp_path):
    """A file without read permission. Root reads anything, so as root the import runs without the
    capabilities that bypass file permissions (util-linux's setpriv)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.md").write_text("readable note about lighthouses")
    secret = src / "secret.md"
    secret.write_text("no access")
    secret.chmod(0)
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    code = ("from mipo_local.context import import_paths\nfrom mipo_local.settings import UserSettings\n"
            f"s = import_paths([{str(src)!r}], settings=UserSettings())\nprint(s.added, s.skipped)")
    env = {**os.environ, "MIPO_HOME": str(tmp_path / "home")}
    proc = subprocess.run(prefix + [sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"1 [({str(secret)!r}, 'permission denied')]"


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(MipoError, match="does not exist"):
        import_paths([tmp_path / "nope"], settings=SETTINGS)
    proc = run_cli(["import", str(tmp_path / "nope")], tmp_path / "h")
    assert_one_line_error(proc, "does not exist")


def test_killed_import_keeps_store_consistent_and_resumes(tmp_path):
    notes = write_many_notes(tmp_path / "many", 1500)
    home = tmp_path / "home"
    env = {**os.environ, "MIPO_HOME": str(home)}
    code = f"from mipo_local.context import import_paths\nimport_paths([{str(notes)!r}])"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    store_file = home / "context.sqlite3"
    deadline = time.time() + 120
    imported = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if store_file.exists():
            try:
                with ContextStore(store_file) as s:
                    imported = s.counts()["files"]
            except Exception:
                continue
            if imported >= 50:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < imported < 1500, "the import finished before it could be interrupted"
    with ContextStore(store_file) as store:
        assert store.integrity_ok()
        partial = store.counts()
        assert partial["files"] == partial["notes"]       # no file without its document
        summary = import_paths([notes], store=store, settings=SETTINGS)
        assert summary.added == 1500 - partial["files"] and summary.unchanged == partial["files"]
        assert store.counts()["notes"] == 1500
        assert store.integrity_ok()                       # the search index holds every chunk once


def test_ctrl_c_exits_cleanly(tmp_path):
    notes = write_many_notes(tmp_path / "many", 6000)   # an import that takes a few seconds, however fast
    home = tmp_path / "home"
    env = {**os.environ, "MIPO_HOME": str(home)}
    # Ctrl-C as at a terminal, even when this suite runs as a background job (which ignores SIGINT,
    # and a child inherits that: it then imported everything and exited 0)
    proc = subprocess.Popen([sys.executable, "-m", "mipo_local", "import", str(notes)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store_file = home / "context.sqlite3"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:     # interrupt it part way, however fast it is
        time.sleep(0.05)
        if store_file.exists():
            try:
                with ContextStore(store_file) as s:
                    if s.counts()["files"] >= 20:
                        break
            except Exception:
                continue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    with ContextStore(store_file) as store:
        assert store.integrity_ok()
        assert store.counts()["files"] == store.counts()["notes"]


def test_retrieval_puts_the_rare_word_first(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(60):
        (notes / f"n{i}.md").write_text(f"# Day {i}\n\nThe boat needs paint and the weather was grey. Boat boat sea {i}.\n")
    (notes / "special.md").write_text("# Workshop\n\nThe boat needs paint.\n\nBought quillwort seeds for the pond, boat aside.\n")
    with ContextStore() as store:
        import_paths([notes], store=store, settings=SETTINGS)
        hits = store.search("what about the quillwort for the boat", k=8)
        assert hits[0].title == "Workshop" and "quillwort" in hits[0].text
        assert len(hits) == 8


def test_retrieval_sees_what_another_connection_imported(tmp_path):
    """Term counts are kept between searches (issue 15), yet a word that another process's import
    made common stops being searched first at once: "alpha" was rare here, then 50 notes of it."""
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(10):
        (notes / f"n{i}.md").write_text(f"# Day {i}\n\nThe beta weather {'and alpha ' if i == 0 else ''}today.\n")
    with ContextStore() as store:
        import_paths([notes], store=store, settings=SETTINGS)
        assert "alpha" in store.search("alpha beta", k=1)[0].text
        more = tmp_path / "more"
        more.mkdir()
        for i in range(50):
            (more / f"a{i}.md").write_text(f"# Alpha {i}\n\nalpha alpha alpha.\n")
        with ContextStore() as other:
            import_paths([more], store=other, settings=SETTINGS)
        assert "beta" in store.search("alpha beta", k=1)[0].text      # now the selective word


def test_retrieval_scores_a_bounded_number_of_chunks(tmp_path, monkeypatch):
    """On a large store no search scores more than MAX_SCORED_CHUNKS chunks (issue 15): the rarest
    word is searched whole, a word in more chunks than that only in the most recent ones."""
    from mipo_local.context import store as store_module

    monkeypatch.setattr(store_module.search, "MAX_SCORED_CHUNKS", 10)
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(40):
        (notes / f"n{i:02d}.md").write_text(f"# Day {i}\n\nThe boat needs paint {i}.\n")
    (notes / "a-first.md").write_text("# Pond\n\nQuillwort seeds for the pond.\n")     # imported first
    with ContextStore() as store:
        import_paths([notes], store=store, settings=SETTINGS)
        hits = store.search("quillwort boat", k=3)
        assert hits[0].title == "Pond" and len(hits) == 3           # the rare word, then the window
        newest = max(h.chunk_id for h in store.search("paint", k=100))
        window = store.search("boat paint", k=100)
        assert 0 < len(window) <= 10 and min(h.chunk_id for h in window) > newest - 10   # 2 words × 41 chunks


def test_remove_source_and_context_cli(tmp_path, mipo_home):
    notes = write_notes(tmp_path / "notes")
    box = write_mbox(tmp_path / "mail.mbox", thread_messages())
    proc = run_cli(["import", str(notes), str(box), "--me", ME], mipo_home)
    assert proc.returncode == 0, proc.stderr
    assert "5 added, 0 updated, 0 unchanged, 0 skipped" in proc.stdout
    proc = run_cli(["context"], mipo_home)
    assert "4 notes, 6 emails (1 yours)" in proc.stdout and "1 reply links" in proc.stdout
    proc = run_cli(["context", "--search", "zucchini"], mipo_home)
    assert "Garden plans" in proc.stdout
    proc = run_cli(["context", "--remove", str(box)], mipo_home)
    assert proc.returncode == 0 and "removed" in proc.stdout
    assert box.exists()
    proc = run_cli(["context", "--list"], mipo_home)
    assert str(notes) in proc.stdout and str(box) not in proc.stdout
    assert_one_line_error(run_cli(["context", "--remove", "/no/such/source"], mipo_home), "no imported source")


def test_schema_is_versioned(tmp_path):
    path = tmp_path / "store.sqlite3"
    with ContextStore(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.journal_mode == "wal"
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:   # what a newer mipo-local would leave
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(MipoError, match="newer mipo-local"):
        ContextStore(path)


def test_split_reply_styles():
    own, quoted, sig = split_reply("Sounds good.\n\nOn Tue, 3 Mar 2026 at 10:00, Jørgen Håland\n<j@example.net> wrote:\n> Lunch?\n")
    assert (own, sig) == ("Sounds good.", "") and "Lunch?" in quoted
    own, quoted, sig = split_reply("Fine by me.\nSent from my iPhone\n\n-----Original Message-----\nFrom: X\nSent: today\nHi")
    assert own == "Fine by me." and sig == "Sent from my iPhone" and quoted.startswith("-----Original")
    own, quoted, _ = split_reply("> question one?\nanswer one\n> question two?\nanswer two")
    assert own == "answer one\nanswer two" and quoted == "> question one?\n> question two?"


def test_chunks_are_paragraph_aware_and_bounded():
    paragraphs = [f"Paragraph {i}. " + "Some words here to fill the space. " * (3 + i % 5) for i in range(30)]
    text = "\n\n".join(paragraphs) + "\n\n" + "A very long sentence " * 200
    chunks = chunk_text(text, max_tokens=120)
    assert all(estimate_tokens(c) <= 120 for c in chunks)
    assert chunks[0].startswith("Paragraph 0.") and "Paragraph 1." in chunks[0]
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    joined = " ".join(" ".join(c.split()) for c in chunks)
    assert joined == " ".join(text.split())              # nothing lost, nothing cut mid-word


def test_html_to_text_is_readable():
    text = html_to_text("<div>Hello&amp;welcome<br>line two</div><ul><li>one</li><li>two</li></ul><script>x()</script>")
    assert text == "Hello&welcome\nline two\n\n- one\n- two"
