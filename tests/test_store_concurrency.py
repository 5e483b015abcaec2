"""Two processes on one store: they wait for each other or stop with one clear line; never a
traceback, never duplicates, never a false "damaged" (issue 12)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from mipo_local.cli import main as cli_main
from mipo_local.context import ContextStore, import_paths, store as store_module
from mipo_local.errors import MipoError
from mipo_local.settings import UserSettings

from .mail_fixtures import ME, thread_messages, write_many_notes, write_mbox


def test_two_imports_at_once_into_a_new_store(tmp_path):
    """Both first-open the store (both migrate) and import the same sources at the same moment."""
    notes = write_many_notes(tmp_path / "notes", 120)
    box = write_mbox(tmp_path / "mail.mbox", thread_messages())
    env = {**os.environ, "MIPO_HOME": str(tmp_path / "home")}
    for attempt in range(3):             # a fresh store each time: the race is at the first open
        env["MIPO_HOME"] = str(tmp_path / f"home-{attempt}")
        start_at = time.time() + 1.5
        code = (f"import time; time.sleep(max(0, {start_at} - time.time()))\n"
                "from mipo_local.cli import main; import sys\n"
                f"sys.exit(main(['import', {str(notes)!r}, {str(box)!r}, '--me', {ME!r}]))")
        procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        for rc, out, err in results:
            assert "Traceback" not in err and "damaged" not in err and "locked" not in err, err
            assert rc == 0, err
        with ContextStore(tmp_path / f"home-{attempt}" / "context.sqlite3") as store:
            counts = store.counts()
            assert (counts["sources"], counts["files"], counts["notes"], counts["emails"]) == (2, 121, 120, 6)
            assert store.integrity_ok()                   # the search index holds every chunk once


def test_migrations_rechecked_under_the_write_lock(tmp_path):
    """A second connection that read the old schema version before the first one migrated finds the
    work done once it gets the lock, instead of failing on "table sources already exists"."""
    import threading

    path = tmp_path / "store.sqlite3"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("PRAGMA journal_mode=WAL")
    first.execute("BEGIN IMMEDIATE")          # hold the write lock, as a migrating process does
    opened = []

    def open_second():
        with ContextStore(path) as s:
            opened.append(s.schema_version)

    thread = threading.Thread(target=open_second)
    thread.start()
    time.sleep(0.5)                           # it has read version 0 and waits for the lock
    for statement in store_module._statements("\n".join(store_module.MIGRATIONS)):
        first.execute(statement)
    first.execute(f"PRAGMA user_version = {len(store_module.MIGRATIONS)}")
    first.execute("COMMIT")
    thread.join(timeout=60)
    assert opened == [len(store_module.MIGRATIONS)]


def test_a_held_write_lock_is_one_clear_line(tmp_path, monkeypatch, capsys, mipo_home):
    """`database is locked` came out as a raw traceback."""
    monkeypatch.setattr(store_module.base, "BUSY_TIMEOUT_S", 0.3)
    notes = write_many_notes(tmp_path / "notes", 3)
    ContextStore().close()
    holder = sqlite3.connect(mipo_home / "context.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(MipoError, match="busy"):
            import_paths([notes], settings=UserSettings())
        assert cli_main(["import", str(notes)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [l for l in err if l.startswith("mipo-local: error: the context store is busy")] and len(err) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert cli_main(["import", str(notes)]) == 0     # and once the other one is done, it works
