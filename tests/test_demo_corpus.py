"""The shipped demo corpus imports cleanly and carries the facts the later stages rely on."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import DEMO_ADDRESSES, demo_dir, demo_sources

BUILDER = Path(__file__).resolve().parent.parent / "scripts" / "make_demo_corpus.py"


@pytest.fixture
def imported(mipo_home):
    """The demo imported into the test's workspace: the import summary and the open store."""
    summary = import_paths(demo_sources())
    with ContextStore() as store:
        yield SimpleNamespace(summary=summary, store=store)


def test_demo_imports_without_skips(imported):
    assert imported.summary.skipped == []


def test_demo_detects_adas_addresses(imported):
    assert imported.summary.detected_addresses == list(DEMO_ADDRESSES)


def test_demo_counts(imported):
    counts = imported.store.counts()
    assert (counts["notes"], counts["emails"], counts["own_emails"], counts["reply_links"]) == (40, 61, 28, 25)


def test_demo_notes_have_distinct_titles(imported):
    assert len({d["title"] for d in imported.store.documents(kind="note")}) == 40


def test_demo_vault_trash_is_skipped(imported):
    assert not any("DISCARDED" in d["body"] for d in imported.store.documents())


def test_demo_documents_all_have_a_body(imported):
    assert all(d["body"].strip() for d in imported.store.documents())


def test_demo_search_finds_the_starters_name(imported):
    assert "Bjørn" in imported.store.search("what is the name of the sourdough starter", 3)[0].text


def test_demo_search_finds_the_urchin_density(imported):
    assert "38.4" in " ".join(h.text for h in imported.store.search("urchin density Rognaskjær April", 5))


def test_demo_replies_are_adas_own_text(imported):
    for incoming, reply in imported.store.reply_pairs():
        assert reply["author_is_user"] == 1 and incoming["author_is_user"] == 0
        assert reply["body"] and ">" not in reply["body"].splitlines()[0]


def test_demo_mailboxes_are_built_from_the_message_files(tmp_path):
    """The shipped mbox files are exactly what scripts/make_demo_corpus.py builds from scripts/demo_mail/."""
    spec = importlib.util.spec_from_file_location("make_demo_corpus", BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.main(tmp_path)
    for name in ("ada.mbox", "sent.mbox"):
        assert (tmp_path / name).read_bytes() == (demo_dir() / "mail" / name).read_bytes(), name
