"""The context store: SQLite (WAL) in the workspace with documents, chunks, reply links and FTS5."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from .. import workspace
from ..errors import MipoError
from .documents import ParsedDocument
from .text import chunk_text_counted, fs_text
from .threads import Candidate, Reply, Thread, best_original, is_reply_subject, normalize_subject

STORE_FILE = "context.sqlite3"

# Each entry migrates the schema from version i to i + 1. Never edit an entry once released: add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sources(
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        added_at TEXT NOT NULL,
        imported_at TEXT
    );
    CREATE TABLE files(
        id INTEGER PRIMARY KEY,
        source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        UNIQUE(source_id, path)
    );
    CREATE TABLE documents(
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        locator TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        date TEXT,
        author TEXT NOT NULL DEFAULT '',
        author_is_user INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        body TEXT NOT NULL,
        quoted TEXT NOT NULL DEFAULT '',
        signature TEXT NOT NULL DEFAULT '',
        message_id TEXT,
        in_reply_to TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        UNIQUE(file_id, locator)
    );
    CREATE INDEX documents_message_id ON documents(message_id);
    CREATE INDEX documents_in_reply_to ON documents(in_reply_to);
    CREATE TABLE chunks(
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        text TEXT NOT NULL,
        n_tokens INTEGER NOT NULL
    );
    CREATE INDEX chunks_document ON chunks(document_id);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, tokenize='unicode61 remove_diacritics 2');
    CREATE TABLE replies(
        incoming_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        reply_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        PRIMARY KEY(incoming_id, reply_id)
    );
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        DELETE FROM chunks_fts WHERE rowid = old.id;
    END;
    """,
    # 2: document frequencies of indexed terms, to keep queries to their selective words
    """
    CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row');
    """,
    # 3: MIPO preference pairs, per generation run (its settings and sampling model)
    """
    CREATE TABLE pair_runs(
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        settings TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE pairs(
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES pair_runs(id) ON DELETE CASCADE,
        example_id TEXT NOT NULL,
        sample INTEGER NOT NULL,
        source TEXT NOT NULL,
        heldout INTEGER NOT NULL,
        request TEXT NOT NULL,
        context TEXT NOT NULL,
        negative_context TEXT,
        prompt TEXT NOT NULL,
        prompt_text TEXT NOT NULL,
        chosen TEXT NOT NULL,
        rejected TEXT NOT NULL,
        reference TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        chosen_tokens INTEGER NOT NULL,
        rejected_tokens INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE(run_id, example_id, sample)
    );
    """,
    # 4: emails a file also holds but that are stored once, under another file: when that file goes,
    #    the email moves to one of these instead of being lost
    """
    CREATE TABLE duplicates(
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        message_id TEXT NOT NULL,
        PRIMARY KEY(file_id, message_id)
    );
    CREATE INDEX duplicates_message_id ON duplicates(message_id);
    """,
    # 5: replies linked without threading headers (by the subject a thread shares, `thread_subject`)
    #    and one copy of a message kept under several Message-IDs (`fingerprint`); mail files are
    #    read again at the next import to fill both
    """
    ALTER TABLE documents ADD COLUMN thread_subject TEXT NOT NULL DEFAULT '';
    ALTER TABLE documents ADD COLUMN fingerprint TEXT;
    CREATE INDEX documents_thread_subject ON documents(thread_subject);
    CREATE INDEX documents_fingerprint ON documents(fingerprint);
    UPDATE files SET sha256 = '', mtime_ns = -1 WHERE kind != 'note';
    """,
    # 6: profiles: a named subset of the imported sources, with its own runs and personal model
    """
    CREATE TABLE profiles(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE profile_sources(
        profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
        source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        PRIMARY KEY(profile_id, source_id)
    );
    """,
    # 7: the evaluation's cache: answers sampled from a model (by its GGUF's content hash, the prompt's
    #    hash, the sampling settings and the seed) and the scores of answers scored together under a
    #    model (by its identity, the prompt token ids' hash and the answers' hash), reused by the next
    #    evaluation
    """
    CREATE TABLE eval_answers(
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        sampling TEXT NOT NULL,
        seed INTEGER NOT NULL,
        text TEXT NOT NULL,
        finish TEXT NOT NULL,
        PRIMARY KEY(model, prompt, sampling, seed)
    ) WITHOUT ROWID;
    CREATE TABLE eval_scores(
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        responses TEXT NOT NULL,
        scores TEXT NOT NULL,
        PRIMARY KEY(model, prompt, responses)
    ) WITHOUT ROWID;
    """,
]

# How long a writer waits for another process (an import, a run) to finish its transaction before
# giving up with one clear line.
BUSY_TIMEOUT_S = 30.0

# Query terms found in more than this share of chunks are dropped when rarer terms are present:
# their BM25 weight is near zero, yet scoring them costs time for every chunk they occur in.
COMMON_TERM_SHARE = 0.2
MAX_QUERY_TERMS = 8
# BM25 costs ~0.7 µs for every chunk a searched word is in: a search scores at most this many
# chunks (rarest words first; see ContextStore._since), ~10 ms. Stores under ~9,000 chunks never
# reach it; on 200,000 chunks of mail it keeps retrieval under 20 ms (BENCHMARKS.md).
MAX_SCORED_CHUNKS = 15_000
# document frequencies kept per connection (until the store changes)
MAX_CACHED_TERMS = 50_000
# ranked chunks looked up at most in one go (SQLite allows 32,766 parameters per statement)
MAX_RANKED = 30_000


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    text: str
    kind: str
    date: Optional[str]
    score: float


@dataclass(frozen=True)
class SourceInfo:
    id: int
    path: str
    kind: str
    added_at: str
    imported_at: Optional[str]
    files: int
    documents: int


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    created_at: str
    sources: tuple[SourceInfo, ...]

    @property
    def source_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.sources)


# the columns of a pair besides its run and time (pairs.stage fills them)
PAIR_FIELDS = ("example_id", "sample", "source", "heldout", "request", "context", "negative_context", "prompt",
               "prompt_text", "chosen", "rejected", "reference", "status", "reason", "chosen_tokens", "rejected_tokens")


def store_path() -> Path:
    return workspace.home() / STORE_FILE


_now = workspace.now_utc


def query_words(text: str) -> list[str]:
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if len(w) > 1 or w.isdigit()))


def fts_query(words: Sequence[str]) -> str:
    """A safe FTS5 query: the words OR-ed, each quoted."""
    return " OR ".join(f'"{w}"' for w in words)


class ContextStore:
    """One connection to the store. Use as a context manager, or call `close()`.

    `sources` (source ids, a profile's) makes it a view of those sources' writing: search, the
    documents and reply pairs examples are built from, counts and the fingerprint see only them,
    and its pair runs are its own. None: everything (the default profile)."""

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

    def __enter__(self) -> "ContextStore":
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

    # -------------------------------------------------------------------------------- sources
    def add_source(self, path: str, kind: str) -> int:
        row = self.db.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()
        if row:
            return row["id"]
        with self.transaction():     # another process may be adding the same source right now
            self.db.execute("INSERT OR IGNORE INTO sources(path, kind, added_at) VALUES (?, ?, ?)", (path, kind, _now()))
            return self.db.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()["id"]

    def mark_imported(self, source_id: int) -> None:
        self.db.execute("UPDATE sources SET imported_at = ? WHERE id = ?", (_now(), source_id))

    def sources(self) -> list[SourceInfo]:
        rows = self.db.execute(
            """SELECT s.*, (SELECT COUNT(*) FROM files f WHERE f.source_id = s.id) AS n_files,
                      (SELECT COUNT(*) FROM documents d JOIN files f ON d.file_id = f.id WHERE f.source_id = s.id) AS n_docs
               FROM sources s ORDER BY s.id"""
        ).fetchall()
        return [SourceInfo(r["id"], r["path"], r["kind"], r["added_at"], r["imported_at"], r["n_files"], r["n_docs"]) for r in rows]

    def find_source(self, path_or_id: str) -> SourceInfo:
        for source in self.sources():
            if path_or_id == str(source.id) or path_or_id == source.path or \
                    fs_text(str(Path(path_or_id).expanduser().resolve())) == source.path:
                return source
        raise MipoError(f"no imported source {path_or_id!r}; `mipo-local context --list` shows them")

    def remove_source(self, path_or_id: str) -> SourceInfo:
        """Forget a source and everything imported from it (the user's files are not touched)."""
        source = self.find_source(path_or_id)
        with self.transaction():
            self._keep_duplicates("f.source_id = ?", (source.id,))
            self.db.execute("DELETE FROM sources WHERE id = ?", (source.id,))
            self._relink_replies()
            self._forget_eval_cache()
        return source

    # ------------------------------------------------------------------------------- profiles
    def create_profile(self, name: str, source_ids: Sequence[int]) -> "ProfileInfo":
        """A new profile over these sources (ids of imported sources)."""
        with self.transaction():
            if self.db.execute("SELECT 1 FROM profiles WHERE name = ?", (name,)).fetchone():
                raise MipoError(f"there is a profile {name!r} already; remove it first (`mipo-local profile --remove {name}`)")
            profile_id = self.db.execute("INSERT INTO profiles(name, created_at) VALUES (?, ?)", (name, _now())).lastrowid
            for source_id in dict.fromkeys(source_ids):
                self.db.execute("INSERT INTO profile_sources(profile_id, source_id) VALUES (?, ?)", (profile_id, source_id))
        return self.profile(name)

    def profiles(self) -> list["ProfileInfo"]:
        """Every profile with its sources (a source removed since is no longer among them)."""
        sources = {s.id: s for s in self.sources()}
        members: dict[int, list[SourceInfo]] = {}
        for profile_id, source_id in self.db.execute("SELECT profile_id, source_id FROM profile_sources ORDER BY source_id"):
            if source_id in sources:
                members.setdefault(profile_id, []).append(sources[source_id])
        return [ProfileInfo(r["name"], r["created_at"], tuple(members.get(r["id"], ())))
                for r in self.db.execute("SELECT * FROM profiles ORDER BY name")]

    def profile(self, name: str) -> "ProfileInfo":
        for profile in self.profiles():
            if profile.name == name:
                return profile
        raise MipoError(f"no profile {name!r}; `mipo-local profile --list` shows them")

    def remove_profile(self, name: str) -> "ProfileInfo":
        """Forget a profile (its sources, runs and models stay)."""
        profile = self.profile(name)
        with self.transaction():
            self.db.execute("DELETE FROM profiles WHERE name = ?", (name,))
        return profile

    def _keep_duplicates(self, doomed_files: str, args: Sequence, doc_ids: Optional[Sequence[int]] = None) -> None:
        """Emails of files about to go (`doomed_files`: a condition on files `f`) that another file
        also holds move to that file instead of being deleted with theirs; `doc_ids` narrows it to
        those documents. Their ids, chunks and links stay as they were. A copy is known by its
        `_copy_key` (a store from before keys had fingerprints: by its Message-ID alone); where the
        file it moves to holds another message under its locator, it takes its key as locator."""
        sql = f"""SELECT d.id, d.message_id, d.fingerprint, d.locator FROM documents d JOIN files f ON f.id = d.file_id
                  WHERE ({doomed_files}) AND (d.message_id IN (SELECT message_id FROM duplicates)
                        OR d.message_id || '#' || substr(d.fingerprint, 1, 12) IN (SELECT message_id FROM duplicates))"""
        rows = self.db.execute(sql, list(args)).fetchall()
        keep = set(doc_ids) if doc_ids is not None else None
        for doc_id, message_id, fingerprint, locator in rows:
            if keep is not None and doc_id not in keep:
                continue
            key = _copy_key(message_id, fingerprint)
            holder = self.db.execute(
                f"""SELECT dup.file_id, dup.message_id FROM duplicates dup JOIN files f ON f.id = dup.file_id
                    WHERE dup.message_id IN (?, ?) AND NOT ({doomed_files}) ORDER BY dup.message_id = ? DESC,
                    dup.file_id LIMIT 1""", [key, message_id, *args, key]).fetchone()
            if holder is None:
                continue
            taken = self.db.execute("SELECT 1 FROM documents WHERE file_id = ? AND locator = ?",
                                    (holder[0], locator)).fetchone()
            if taken and key == locator:
                continue        # no locator of its own to take (no fingerprint): it goes with its file
            self.db.execute("UPDATE documents SET file_id = ?, locator = ? WHERE id = ?",
                            (holder[0], key if taken else locator, doc_id))
            self.db.execute("DELETE FROM duplicates WHERE file_id = ? AND message_id = ?", (holder[0], holder[1]))

    # ---------------------------------------------------------------------------------- files
    def file_row(self, source_id: int, path: str) -> Optional[sqlite3.Row]:
        return self.db.execute("SELECT * FROM files WHERE source_id = ? AND path = ?", (source_id, path)).fetchone()

    def touch_file(self, file_id: int, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, file_id))

    def file_paths(self, source_id: int) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM files WHERE source_id = ?", (source_id,))]

    def remove_file(self, source_id: int, path: str) -> None:
        self._keep_duplicates("f.source_id = ? AND f.path = ?", (source_id, path))
        self.db.execute("DELETE FROM files WHERE source_id = ? AND path = ?", (source_id, path))

    def replace_file(
        self, source_id: int, path: str, kind: str, size: int, mtime_ns: int, sha256: str,
        documents: Iterable[ParsedDocument], *, user_addresses: Sequence[str], chunk_tokens: int,
    ) -> tuple[int, int]:
        """Store a file's documents in place of what it held before. Call inside `transaction()`.

        Returns (documents added or changed, documents removed). Emails already stored from
        another file (the same message in two mailboxes) are kept once. `documents` is read once,
        in order (a mailbox's may come as a stream).
        """
        row = self.file_row(source_id, path)
        if row is None:
            file_id = self.db.execute(
                "INSERT INTO files(source_id, path, kind, size, mtime_ns, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (source_id, path, kind, size, mtime_ns, sha256),
            ).lastrowid
            old: dict[str, tuple[int, str]] = {}
        else:
            file_id = row["id"]
            self.db.execute("UPDATE files SET kind = ?, size = ?, mtime_ns = ?, sha256 = ? WHERE id = ?",
                            (kind, size, mtime_ns, sha256, file_id))
            old = {r["locator"]: (r["id"], r["content_hash"]) for r in
                   self.db.execute("SELECT id, locator, content_hash FROM documents WHERE file_id = ?", (file_id,))}
        self.db.execute("DELETE FROM duplicates WHERE file_id = ?", (file_id,))
        users = {a.lower() for a in user_addresses}
        changed = 0
        seen: set[str] = set()
        seen_fingerprints: set[str] = set()
        for doc in documents:
            fingerprint = doc.fingerprint()
            if fingerprint is not None and fingerprint in seen_fingerprints:
                continue       # the same message twice in one file (by content)
            if doc.locator in seen:
                if fingerprint is None:
                    continue   # the same Message-ID twice, too little to tell the two apart: once
                # another message under a Message-ID already used in this file (mail programs and
                # spammers reuse them): kept, under a locator of its own
                doc.locator = _copy_key(doc.locator, fingerprint)
            seen.add(doc.locator)
            if fingerprint is not None:
                seen_fingerprints.add(fingerprint)
            if doc.kind == "email":
                doc.author_is_user = doc.author.lower() in users
                holder = self._stored_elsewhere(doc, fingerprint, file_id)
                if holder is not None:
                    # stored once, under the file that had it first; remembered here in case that one goes
                    self.db.execute("INSERT OR IGNORE INTO duplicates(file_id, message_id) VALUES (?, ?)",
                                    (file_id, holder))
                    continue
            digest = doc.content_hash()
            previous = old.pop(doc.locator, None)
            if previous is not None and previous[1] == digest:
                self.db.execute("UPDATE documents SET thread_subject = ?, fingerprint = ? WHERE id = ?",
                                (_thread_subject(doc), fingerprint, previous[0]))
                continue
            if previous is not None:
                self.db.execute("DELETE FROM documents WHERE id = ?", (previous[0],))
            self._insert_document(file_id, doc, digest, chunk_tokens, fingerprint)
            changed += 1
        if old:
            self._keep_duplicates("f.id = ?", (file_id,), [doc_id for doc_id, _ in old.values()])
        for doc_id, _ in old.values():
            self.db.execute("DELETE FROM documents WHERE id = ? AND file_id = ?", (doc_id, file_id))
        return changed, len(old)

    def _stored_elsewhere(self, doc: ParsedDocument, fingerprint: Optional[str], file_id: int) -> Optional[str]:
        """The key (`_copy_key`) under which another file already holds this email (the same Message-ID, or
        the same fingerprint under another one), or None. The same Message-ID on a different message
        (both with a fingerprint, and they differ) is no copy of it."""
        row = None
        if doc.message_id:
            for held in self.db.execute("SELECT message_id, fingerprint FROM documents WHERE message_id = ? "
                                        "AND file_id != ?", (doc.message_id, file_id)):
                if fingerprint is None or held["fingerprint"] is None or held["fingerprint"] == fingerprint:
                    row = held
                    break
        if row is None and fingerprint is not None:
            row = self.db.execute("SELECT message_id, fingerprint FROM documents WHERE fingerprint = ? AND file_id != ? "
                                  "LIMIT 1", (fingerprint, file_id)).fetchone()
        return _copy_key(row[0], row[1]) if row is not None and row[0] else None

    def _insert_document(self, file_id: int, doc: ParsedDocument, digest: str, chunk_tokens: int,
                         fingerprint: Optional[str]) -> int:
        doc_id = self.db.execute(
            """INSERT INTO documents(file_id, locator, kind, title, date, author, author_is_user, content_hash, body,
                                     quoted, signature, message_id, in_reply_to, meta, thread_subject, fingerprint)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (file_id, doc.locator, doc.kind, doc.title, doc.date, doc.author, int(doc.author_is_user), digest, doc.body,
             doc.quoted, doc.signature, doc.message_id, doc.in_reply_to, json.dumps(doc.meta, ensure_ascii=False),
             _thread_subject(doc), fingerprint),
        ).lastrowid
        chunks = doc.chunks[1] if doc.chunks and doc.chunks[0] == chunk_tokens else chunk_text_counted(doc.body, chunk_tokens)
        for ord_, (text, n_tokens) in enumerate(chunks):
            chunk_id = self.db.execute(
                "INSERT INTO chunks(document_id, ord, text, n_tokens) VALUES (?, ?, ?, ?)",
                (doc_id, ord_, text, n_tokens),
            ).lastrowid
            self.db.execute("INSERT INTO chunks_fts(rowid, title, text) VALUES (?, ?, ?)", (chunk_id, doc.title, text))
        return doc_id

    # ------------------------------------------------------------------------- user & replies
    def set_user_addresses(self, addresses: Sequence[str]) -> None:
        """Re-decide which emails are the user's own, and the reply links that follow from it."""
        users = [a.lower() for a in addresses]
        with self.transaction():
            marks = ",".join("?" * len(users)) or "NULL"
            mine = f"CASE WHEN kind = 'note' OR lower(author) IN ({marks}) THEN 1 ELSE 0 END"
            # only the rows that change: rewriting every document (bodies and all) after each import
            # wrote the whole store again
            self.db.execute(f"UPDATE documents SET author_is_user = {mine} WHERE author_is_user != {mine}",
                            users + users)
            self._relink_replies()

    def relink_replies(self) -> None:
        with self.transaction():
            self._relink_replies()

    def _relink_replies(self) -> None:
        """Link each of the user's replies to the message it answers: by In-Reply-To/References
        where the message is stored, else (most Outlook mail) by the subject the thread shares and
        what the reply's quoted original says of its sender, date and first words."""
        self.db.execute("DELETE FROM replies")
        self.db.execute(
            """INSERT OR IGNORE INTO replies(incoming_id, reply_id)
               SELECT inc.id, rep.id FROM documents rep JOIN documents inc ON inc.message_id = rep.in_reply_to
               WHERE rep.kind = 'email' AND rep.author_is_user = 1 AND inc.author_is_user = 0"""
        )
        # NOT IN (a list SQLite builds once), not NOT EXISTS: replies has no index on reply_id, and
        # the correlated form scanned it for every reply (quadratic: 11 s at 66,000 messages)
        unlinked = self.db.execute(
            """SELECT id, title, date, quoted, meta, thread_subject FROM documents rep
               WHERE kind = 'email' AND author_is_user = 1 AND thread_subject != ''
                 AND rep.id NOT IN (SELECT reply_id FROM replies)
               ORDER BY thread_subject"""
        ).fetchall()
        subject, thread = None, Thread([])
        for row in unlinked:
            if not is_reply_subject(row["title"]):
                continue
            if row["thread_subject"] != subject:      # the thread's messages, read once for all its replies
                subject = row["thread_subject"]
                thread = Thread([
                    Candidate(c["id"], c["author"], _meta(c["meta"]).get("from_name", ""), c["date"], c["body"])
                    for c in self.db.execute(
                        """SELECT id, author, date, body, meta FROM documents
                           WHERE thread_subject = ? AND kind = 'email' AND author_is_user = 0""", (subject,))
                ])
            recipients = tuple(a for a in _meta(row["meta"]).get("to", []) if isinstance(a, str))
            original = best_original(Reply(row["date"], row["quoted"], recipients), thread)
            if original is not None:
                self.db.execute("INSERT OR IGNORE INTO replies(incoming_id, reply_id) VALUES (?, ?)", (original, row["id"]))

    def reply_pairs(self) -> list[tuple[sqlite3.Row, sqlite3.Row]]:
        """(incoming email, the user's reply) for every reply link (in a view: every reply of its sources)."""
        scope, args = self._in_scope("d.file_id")
        rows = self.db.execute("SELECT r.incoming_id, r.reply_id FROM replies r JOIN documents d ON d.id = r.reply_id "
                               f"WHERE 1=1{scope} ORDER BY r.reply_id", args).fetchall()
        return [(self.document(r[0]), self.document(r[1])) for r in rows]

    # ------------------------------------------------------------------------------- reading
    def email_subjects(self) -> list[tuple[int, str]]:
        """(document id, subject) of every stored email (in a view: its sources'), without bodies."""
        scope, args = self._in_scope("file_id")
        return [(r[0], r[1]) for r in self.db.execute(
            f"SELECT id, title FROM documents WHERE kind = 'email'{scope} ORDER BY id", args)]

    def document(self, doc_id: int) -> sqlite3.Row:
        return self.db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()

    def documents(self, *, kind: Optional[str] = None, user_only: bool = False) -> list[sqlite3.Row]:
        sql, args = self._in_scope("file_id")
        sql, args = "SELECT * FROM documents WHERE 1=1" + sql, args
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if user_only:
            sql += " AND author_is_user = 1"
        return self.db.execute(sql + " ORDER BY id", args).fetchall()

    def counts(self) -> dict[str, int]:
        if self.scope is not None:
            return self._scoped_counts()
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "sources": one("SELECT COUNT(*) FROM sources"),
            "files": one("SELECT COUNT(*) FROM files"),
            "notes": one("SELECT COUNT(*) FROM documents WHERE kind = 'note'"),
            "emails": one("SELECT COUNT(*) FROM documents WHERE kind = 'email'"),
            "own_emails": one("SELECT COUNT(*) FROM documents WHERE kind = 'email' AND author_is_user = 1"),
            "chunks": one("SELECT COUNT(*) FROM chunks"),
            "reply_links": one("SELECT COUNT(*) FROM replies"),
        }

    def document_versions(self) -> dict[int, str]:
        """{document id: "file id:locator:content hash"}: a document's version. A changed document
        (new content) or a new one has a version no earlier snapshot holds (incremental runs)."""
        scope, args = self._in_scope("file_id")        # a profile's view: only its sources' documents
        rows = self.db.execute(f"SELECT id, file_id, locator, content_hash FROM documents WHERE 1=1{scope}", args)
        return {r[0]: f"{r[1]}:{r[2]}:{r[3][:16]}" for r in rows}

    def _scoped_counts(self) -> dict[str, int]:
        """`counts` of a view: only its sources' files, documents, chunks and replies."""
        scope, args = self._in_scope("d.file_id")
        one = lambda sql: self.db.execute(sql, args).fetchone()[0]  # noqa: E731
        docs = f"SELECT COUNT(*) FROM documents d WHERE 1=1{scope}"
        return {
            "sources": self.db.execute(f"SELECT COUNT(*) FROM sources WHERE id IN ({','.join('?' * len(self.scope)) or 'NULL'})",
                                       list(self.scope)).fetchone()[0],
            "files": one(f"SELECT COUNT(*) FROM files f WHERE 1=1{self._in_scope('f.id')[0]}"),
            "notes": one(docs + " AND d.kind = 'note'"),
            "emails": one(docs + " AND d.kind = 'email'"),
            "own_emails": one(docs + " AND d.kind = 'email' AND d.author_is_user = 1"),
            "chunks": one(f"SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE 1=1{scope}"),
            "reply_links": one(f"SELECT COUNT(*) FROM replies r JOIN documents d ON d.id = r.reply_id WHERE 1=1{scope}"),
        }

    def fingerprint(self) -> list:
        """Changes whenever the user's imported writing (or which of it is theirs) changes; in a view,
        its sources' writing."""
        if self.scope is not None:
            scope, args = self._in_scope("d.file_id")
            row = self.db.execute("SELECT count(*), coalesce(max(c.id), 0), coalesce(sum(length(c.text)), 0) FROM chunks c "
                                  f"JOIN documents d ON d.id = c.document_id WHERE 1=1{scope}", args).fetchone()
            own = self.db.execute(f"SELECT count(*) FROM documents d WHERE author_is_user = 1{scope}", args).fetchone()[0]
            return [list(row), own, list(self.scope)]
        row = self.db.execute("SELECT count(*), coalesce(max(id), 0), coalesce(sum(length(text)), 0) FROM chunks").fetchone()
        own = self.db.execute("SELECT count(*) FROM documents WHERE author_is_user = 1").fetchone()[0]
        return [list(row), own]

    # --------------------------------------------------------------------------------- pairs
    def pair_run(self, key: str, settings: dict, model: dict) -> int:
        """The id of the pair run with this key (settings + sampling model), created when new. A view's
        pair runs are its own (the key names its sources): its examples are made from them alone."""
        if self.scope is not None:
            key = f"{key}:sources={','.join(map(str, self.scope))}"
        row = self.db.execute("SELECT id FROM pair_runs WHERE key = ?", (key,)).fetchone()
        if row:
            return row["id"]
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO pair_runs(key, settings, model, created_at) VALUES (?, ?, ?, ?)",
                            (key, json.dumps(settings), json.dumps(model), _now()))
            return self.db.execute("SELECT id FROM pair_runs WHERE key = ?", (key,)).fetchone()["id"]

    def latest_pair_run(self) -> Optional[int]:
        row = self.db.execute("SELECT id FROM pair_runs ORDER BY id DESC LIMIT 1").fetchone()
        return row["id"] if row else None

    def pair_run_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM pair_runs").fetchone()[0]

    def pair_samples_done(self, run_id: int) -> set[tuple[str, int]]:
        """(example id, sample) of every pair the run holds, kept or dropped."""
        return {(r[0], r[1]) for r in self.db.execute("SELECT example_id, sample FROM pairs WHERE run_id = ?", (run_id,))}

    def add_pair(self, run_id: int, **fields) -> None:
        """Commit one pair (its own transaction: an interrupted run loses only the pairs in flight).
        A pair already there for (run, example, sample) is left as it is."""
        columns = ["run_id", *PAIR_FIELDS, "created_at"]
        values = [run_id, *(fields[c] for c in PAIR_FIELDS), _now()]
        with self.transaction():
            self.db.execute(f"INSERT OR IGNORE INTO pairs({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            values)

    def pairs(self, run_id: Optional[int] = None, *, split: str = "all", include_dropped: bool = True) -> list[sqlite3.Row]:
        """The pairs of a run (every run when None) in the order they were made; `split` is train
        (not held out), heldout or all."""
        sql, args = "SELECT * FROM pairs WHERE 1=1", []
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        if not include_dropped:
            sql += " AND status = 'ok'"
        if split == "train":
            sql += " AND heldout = 0"
        elif split == "heldout":
            sql += " AND heldout = 1"
        elif split != "all":
            raise MipoError(f"unknown split {split!r}; choose train, heldout or all")
        return self.db.execute(sql + " ORDER BY id", args).fetchall()

    def pair(self, pair_id: int) -> Optional[sqlite3.Row]:
        return self.db.execute("SELECT * FROM pairs WHERE id = ?", (pair_id,)).fetchone()

    def set_pair_status(self, pair_id: int, status: str, reason: Optional[str]) -> None:
        with self.transaction():
            self.db.execute("UPDATE pairs SET status = ?, reason = ? WHERE id = ?", (status, reason, pair_id))

    def kept_pair_ids(self, run_id: int) -> list[int]:
        """The ids of the run's kept pairs: what a training run trains on (a review changes it)."""
        return [r[0] for r in self.db.execute("SELECT id FROM pairs WHERE run_id = ? AND status = 'ok' ORDER BY id",
                                              (run_id,))]

    # ----------------------------------------------------------------------- evaluation cache
    def cached_answers(self, model: str, sampling: str, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
        """(text, finish) of the answers sampled before from `model` with `sampling`, by (prompt, seed)
        among `keys`; the keys not there are left out."""
        out = {}
        for prompt, seed in keys:
            row = self.db.execute("SELECT text, finish FROM eval_answers WHERE model = ? AND prompt = ? AND sampling = ? "
                                  "AND seed = ?", (model, prompt, sampling, seed)).fetchone()
            if row:
                out[(prompt, seed)] = (row[0], row[1])
        return out

    def save_answers(self, model: str, sampling: str, answers: Iterable[tuple[str, int, str, str]]) -> None:
        """Keep sampled answers, (prompt, seed, text, finish) each, in one transaction; one already
        there stays as it is."""
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO eval_answers(model, prompt, sampling, seed, text, finish) "
                                "VALUES (?, ?, ?, ?, ?, ?)", [(model, p, sampling, s, t, f) for p, s, t, f in answers])

    def cached_scores(self, model: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[float, int]]]:
        """[(log-prob sum, token count) per response] of responses scored together before under `model`,
        by (prompt, responses) among `keys`; the keys not there are left out."""
        out = {}
        for prompt, responses in keys:
            row = self.db.execute("SELECT scores FROM eval_scores WHERE model = ? AND prompt = ? AND responses = ?",
                                  (model, prompt, responses)).fetchone()
            if row:
                out[(prompt, responses)] = [(float(lp), int(n)) for lp, n in json.loads(row[0])]
        return out

    def save_scores(self, model: str, scores: Iterable[tuple[str, str, Sequence[tuple[float, int]]]]) -> None:
        """Keep scores, (prompt, responses, [(log-prob sum, token count) per response]) each, in one
        transaction (floats as JSON keep every bit); one already there stays as it is."""
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO eval_scores(model, prompt, responses, scores) VALUES (?, ?, ?, ?)",
                                [(model, p, r, json.dumps([[lp, n] for lp, n in got])) for p, r, got in scores])

    def _forget_eval_cache(self) -> None:
        """Forget every cached answer and score, inside the caller's transaction: they were made from
        the user's writing, and some of it is going."""
        self.db.execute("DELETE FROM eval_answers")
        self.db.execute("DELETE FROM eval_scores")

    def search(self, query: str, k: int = 8, *, user_only: bool = True, exclude_documents: Sequence[int] = ()) -> list[SearchHit]:
        """The best `k` chunks for `query` (BM25), from the user's own writing by default.

        The query's selective words are searched first; when they find fewer than `k` chunks, its
        common words fill the remaining places. No search scores more than MAX_SCORED_CHUNKS
        chunks (on a large store: see `_selective_words` and `_since`).
        """
        words = query_words(query)
        if not words or k <= 0:
            return []
        stats = self._stats
        df = self._word_frequencies(stats, words)
        selective = self._selective_words(words, df, stats["chunks"] or 1)
        hits = self._match(selective, k, user_only, exclude_documents, (), self._since(stats, selective, df))
        rest = [w for w in words if w not in selective]
        if len(hits) < k and rest:
            hits += self._match(rest, k - len(hits), user_only, exclude_documents, [h.chunk_id for h in hits],
                                self._since(stats, rest, df))
        return hits

    def _match(self, words: Sequence[str], k: int, user_only: bool, exclude_documents: Sequence[int],
               exclude_chunks: Sequence[int], since: Optional[int] = None) -> list[SearchHit]:
        """The best `k` chunks holding any of `words` (BM25) that pass the filters.

        FTS5 ranks the matching chunks by itself first and only its best few are looked up and
        filtered (the user's own, not excluded); looking every matching chunk up before ranking
        cost three times as much on a large store. When too few of those pass, more are ranked;
        past a few thousand, one query filters every match as it is ranked. The same chunks in
        the same order either way (among chunks of exactly equal score the order may differ).
        `since`: only chunks from this id on."""
        if not words:
            return []
        query = fts_query(words)
        skip_documents, skip_chunks = set(exclude_documents), set(exclude_chunks)
        for n in (max(8 * k, 64), max(64 * k, 512), max(512 * k, 4096)):
            if n > MAX_RANKED:
                break
            ranked = self.db.execute("SELECT rowid, bm25(chunks_fts, 0.5, 1.0) AS score FROM chunks_fts "
                                     "WHERE chunks_fts MATCH ? AND rowid >= ? ORDER BY score LIMIT ?",
                                     (query, since or 0, n)).fetchall()
            ids = [r[0] for r in ranked]
            scope, scope_args = self._in_scope("d.file_id")     # a view: its sources' chunks only
            rows = {r[0]: r for r in self.db.execute(
                f"""SELECT c.id, c.document_id, d.title, c.text, d.kind, d.date, d.author_is_user
                    FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(ids))}){scope}""",
                ids + scope_args)}
            hits = []
            for chunk_id, score in ranked:
                r = rows.get(chunk_id)        # None: removed since (another process's import), or outside the view
                if r is None or (user_only and not r[6]) or r[1] in skip_documents or chunk_id in skip_chunks:
                    continue
                hits.append(SearchHit(r[0], r[1], r[2], r[3], r[4], r[5], -float(score)))
                if len(hits) == k:
                    return hits
            if len(ranked) < n:           # every match was ranked
                return hits
        return self._match_filtered(query, k, user_only, exclude_documents, exclude_chunks, since)

    def _match_filtered(self, query: str, k: int, user_only: bool, exclude_documents: Sequence[int],
                        exclude_chunks: Sequence[int], since: Optional[int]) -> list[SearchHit]:
        """`_match` as one query: every matching chunk looked up and filtered, then ranked."""
        sql = """SELECT c.id, c.document_id, d.title, c.text, d.kind, d.date, bm25(chunks_fts, 0.5, 1.0) AS score
                 FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
                 WHERE chunks_fts MATCH ? AND chunks_fts.rowid >= ?"""
        args: list = [query, since or 0]
        scope, scope_args = self._in_scope("d.file_id")
        sql += scope
        args.extend(scope_args)
        if user_only:
            sql += " AND d.author_is_user = 1"
        if exclude_documents:
            sql += f" AND d.id NOT IN ({','.join('?' * len(exclude_documents))})"
            args.extend(exclude_documents)
        if exclude_chunks:
            sql += f" AND c.id NOT IN ({','.join('?' * len(exclude_chunks))})"
            args.extend(exclude_chunks)
        sql += " ORDER BY score LIMIT ?"
        args.append(k)
        return [SearchHit(r[0], r[1], r[2], r[3], r[4], r[5], -float(r[6])) for r in self.db.execute(sql, args)]

    def _word_frequencies(self, stats: dict, words: list[str]) -> dict[str, int]:
        """word → the number of chunks it is in, as FTS5 indexes it (diacritics folded). A word the
        vocabulary doesn't list under our folding counts 0: it costs nothing to keep, FTS5 finds it
        if it is there under its own folding and matches nothing otherwise."""
        from .text import fold_diacritics

        folded = {w: fold_diacritics(w) for w in words}
        df = self._document_frequencies(stats, set(folded.values()))
        return {w: df.get(folded[w], 0) for w in words}

    def _selective_words(self, words: list[str], df: dict[str, int], total: int) -> list[str]:
        """The query's most selective words (lowest document frequency), common ones dropped, taken
        rarest first while the chunks they are in add up to at most MAX_SCORED_CHUNKS (the rarest is
        always taken). Below ~9,000 chunks that limit cannot bind: no more than 8 words in 20% of
        the chunks each."""
        if not words:
            return []
        known = sorted((df[w], w) for w in words)
        rare, scored = [], 0
        for n, w in known:
            if n > COMMON_TERM_SHARE * total or len(rare) == MAX_QUERY_TERMS or \
                    (rare and scored + n > MAX_SCORED_CHUNKS):
                break
            rare.append(w)
            scored += n
        return rare or [w for _, w in known[:2]]

    def _since(self, stats: dict, words: Sequence[str], df: dict[str, int]) -> Optional[int]:
        """None when the chunks holding `words` are no more than MAX_SCORED_CHUNKS; else the id from
        which on the most recently imported chunks hold about that many of them, the only ones then
        scored (words that common rank chunks by little but their length: BM25 over all of them cost
        ~0.7 µs per chunk, 80 ms for two common words over 200,000 chunks)."""
        scored = sum(df[w] for w in words)
        if scored <= MAX_SCORED_CHUNKS or self.scope is not None:   # a view's chunks may be among the oldest
            return None
        first, last = stats["ids"]
        return int(last - (last - first + 1) * MAX_SCORED_CHUNKS / scored) + 1

    @property
    def _stats(self) -> dict:
        """What retrieval counts per query and what changes only with the store's contents: the
        number of chunks, their first and last ids, and the document frequencies of terms looked
        up (counting a common term's chunks reads its whole posting list: milliseconds on a large
        store, each time).
        Kept until this connection or another one changes the store (`PRAGMA data_version`
        changes when another connection commits; `total_changes` when this one writes). Inside
        a transaction (which may yet be rolled back) nothing is kept."""
        version = (self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes)
        if self._cache is None or self._cache["version"] != version or self.db.in_transaction:
            version = None if self.db.in_transaction else version
            self._cache = {"version": version, "df": {},
                           "chunks": self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
                           "ids": tuple(self.db.execute(
                               "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM chunks").fetchone())}
        return self._cache

    def _document_frequencies(self, stats: dict, terms: set[str]) -> dict[str, int]:
        """term → the number of chunks it occurs in (0 for a term not indexed), from `stats`
        where it is there."""
        df = stats["df"]
        missing = [t for t in terms if t not in df]
        if missing:
            if len(df) + len(missing) > MAX_CACHED_TERMS:
                df.clear()
            marks = ",".join("?" * len(missing))
            found = dict(self.db.execute(f"SELECT term, doc FROM chunks_fts_vocab WHERE term IN ({marks})",
                                         missing).fetchall())
            for term in missing:
                df[term] = found.get(term, 0)
        return {t: df[t] for t in terms}

    def integrity_ok(self) -> bool:
        """SQLite's own checks, foreign keys, and the search index holding every chunk once."""
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok" and not self.db.execute(
            "PRAGMA foreign_key_check").fetchall() and self.db.execute(
            "SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    @property
    def journal_mode(self) -> str:
        return self.db.execute("PRAGMA journal_mode").fetchone()[0]


def _copy_key(message_id: str, fingerprint: Optional[str]) -> str:
    """What names one message among those a file holds copies of: its Message-ID, with its content's
    fingerprint where it has one (one Message-ID may be on several different messages)."""
    return f"{message_id}#{fingerprint[:12]}" if fingerprint else message_id


def _thread_subject(doc: ParsedDocument) -> str:
    return normalize_subject(doc.title) if doc.kind == "email" else ""


def _meta(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_environmental(exc: sqlite3.Error) -> bool:
    """Locked, busy, full, read-only: the machine's state, not a fault of the store or the code."""
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "disk is full", "disk i/o", "readonly", "read-only"))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (triggers keep their inner semicolons)."""
    out, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        candidate = "\n".join(current).strip()
        if candidate.endswith(";") and sqlite3.complete_statement(candidate):
            out.append(candidate)
            current = []
    if "\n".join(current).strip():
        out.append("\n".join(current).strip())
    return out
