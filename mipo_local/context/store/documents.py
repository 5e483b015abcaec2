"""The imported files and their documents: storing a file's documents in place of what it held
(emails kept once across files, copies remembered as duplicates), chunking them into the search
index, deciding which are the user's own and linking their replies to what they answer, and
reading documents, counts and the fingerprint of the user's writing back (in a view: its sources')."""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable, Optional, Sequence

from ..documents import ParsedDocument
from ..text import chunk_text_counted
from ..threads import Candidate, Reply, Thread, best_original, is_reply_subject, normalize_subject
from .base import StoreBase


class DocumentsStore(StoreBase):
    """Files, documents, chunks, duplicates, the user's addresses and reply links."""

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

