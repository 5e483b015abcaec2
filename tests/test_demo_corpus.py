"""The shipped demo corpus imports cleanly and carries the facts the later stages rely on."""

from __future__ import annotations

from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import demo_dir


def test_demo_corpus_imports_completely():
    root = demo_dir()
    summary = import_paths([root / "notes", root / "mail"])
    assert summary.skipped == []
    assert summary.detected_addresses == ["ada@lindqvist.example", "ada.lindqvist@fjordlab.example"]
    with ContextStore() as store:
        counts = store.counts()
        assert counts["notes"] == 40 and counts["emails"] == 61
        assert counts["own_emails"] == 28 and counts["reply_links"] == 25
        titles = {d["title"] for d in store.documents(kind="note")}
        assert not any("DISCARDED" in d["body"] for d in store.documents())  # .trash skipped
        assert all(d["body"].strip() for d in store.documents())
        assert len(titles) == 40
        hit = store.search("what is the name of the sourdough starter", 3)[0]
        assert "Bjørn" in hit.text
        assert "38.4" in " ".join(h.text for h in store.search("urchin density Rognaskjær April", 5))
        for incoming, reply in store.reply_pairs():
            assert reply["author_is_user"] == 1 and incoming["author_is_user"] == 0
            assert reply["body"] and ">" not in reply["body"].splitlines()[0]
