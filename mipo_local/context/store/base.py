"""The connection to the store: where it lives, opening it (WAL, foreign keys, the migrations),
SQLite's errors as one clear line, transactions, closing, the integrity check, and the restriction
of a view (a profile) to its sources' files that the table families build their queries with."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Optional, TypeVar

from ... import workspace
from ...errors import MipoError
from .schema import MIGRATIONS, _statements

STORE_FILE = "context.sqlite3"

# How long a writer waits for another process (an import, a run) to finish its transaction before
# giving up with one clear line.
BUSY_TIMEOUT_S = 30.0


def store_path() -> Path:
    return workspace.home() / STORE_FILE


_now = workspace.now_utc


_Store = TypeVar("_Store", bound="StoreBase")


class StoreBase:
    """One connection to the store, without the tables' operations (`ContextStore` adds them)."""

    def __init__(self, path: Optional[Path] = None, *, timeout: Optional[float] = None,
                 sources: Optional[Iterable[int]] = None) -> None:
        self.path = Path(path) if path else store_path()
        self.scope: Optional[tuple[int, ...]] = None if sources is None else tuple(sorted({int(s) for s in sources}))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        workspace.create_private_file(self.path)   # SQLite gives its -wal and -shm files the same mode
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      timeout=BUSY_TIMEOUT_S if timeout is None else timeout)
            self.db.row_factory = sqlite3.Row
            self._cache: Optional[dict] = None
            self._wal(BUSY_TIMEOUT_S if timeout is None else timeout)
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self._error(exc) from None
        for suffix in ("-wal", "-shm"):          # made by an older version: readable by everyone
            workspace.make_private(self.path.with_name(self.path.name + suffix))

    def _wal(self, timeout: float) -> None:
        """Switch to WAL (once per store: it is persistent). The switch needs a moment alone with the
        file, and SQLite may answer "locked" at once rather than wait: retried within the timeout."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _error(self, exc: sqlite3.DatabaseError) -> MipoError:
        """SQLite's error as one line that says what to do; only real damage is called damage."""
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return MipoError(f"the context store is busy: another mipo-local (an import or a run) is writing to it; "
                             f"try again when it has finished ({self.path})")
        if "disk is full" in text or "disk i/o" in text:
            return MipoError(f"could not write the context store {self.path} ({exc}); free some disk space and try again")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return MipoError(f"cannot write the context store {self.path} ({exc}); check its folder's permissions")
        return MipoError(f"the context store {self.path} is damaged ({exc}); move it away and import again")

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()

    def _in_scope(self, file_column: str) -> tuple[str, list]:
        """(" AND <file_column> IN (the files of the view's sources)", its parameters); ("", []) unscoped."""
        if self.scope is None:
            return "", []
        marks = ",".join("?" * len(self.scope)) or "NULL"
        return f" AND {file_column} IN (SELECT id FROM files WHERE source_id IN ({marks}))", list(self.scope)

    # ------------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.db.close()

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise MipoError(f"the context store {self.path} was written by a newer mipo-local (schema {version}); upgrade mipo-local")

    def _migrate(self) -> None:
        """Bring the schema up to date. Two processes opening a new store at once: the first takes the
        write lock and migrates, the other waits for it, then reads the version again and finds
        nothing left to do (no "table already exists")."""
        self._check_version(self.schema_version)
        if self.schema_version == len(MIGRATIONS):
            return
        with self.transaction():
            version = self.schema_version
            self._check_version(version)
            for target in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[target]):
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; any exception (Ctrl-C included) rolls everything back.

        Waits up to the busy timeout for another process's write; SQLite's errors (locked, disk
        full) come out as a MipoError with one clear line."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):   # SQLite may have rolled back already (disk full)
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _is_environmental(exc):
                raise self._error(exc) from None
            raise

    def integrity_ok(self) -> bool:
        """SQLite's own checks, foreign keys, and the search index holding every chunk once."""
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok" and not self.db.execute(
            "PRAGMA foreign_key_check").fetchall() and self.db.execute(
            "SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    @property
    def journal_mode(self) -> str:
        return self.db.execute("PRAGMA journal_mode").fetchone()[0]


def _is_environmental(exc: sqlite3.Error) -> bool:
    """Locked, busy, full, read-only: the machine's state, not a fault of the store or the code."""
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "disk is full", "disk i/o", "readonly", "read-only"))

