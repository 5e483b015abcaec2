"""The store's schema: the migrations that bring a store from any released version to this one, and
the splitting of a migration into statements. Nothing here opens a store (see `base`)."""

from __future__ import annotations

import sqlite3

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
