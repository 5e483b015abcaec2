"""The context store: SQLite (WAL) in the workspace with documents, chunks, reply links and FTS5.

`ContextStore` is one connection, made of a module per job: `schema` (the migrations), `base`
(opening, errors, transactions), `sources` (sources and profiles), `documents` (files, documents,
the user's replies, reading), `pairs` (preference pairs), `eval_cache` (the evaluation's cache) and
`search` (BM25 retrieval). All the SQL of mipo-local is in this package. The tunables
(`BUSY_TIMEOUT_S`, `MAX_SCORED_CHUNKS`, ...) live in the module that uses them (`base`, `search`)."""

from __future__ import annotations

from .base import BUSY_TIMEOUT_S, STORE_FILE, store_path
from .documents import DocumentsStore
from .eval_cache import EvalCacheStore
from .pairs import PAIR_FIELDS, PairsStore
from .schema import MIGRATIONS, _statements  # noqa: F401 (tests split the migrations with it)
from .search import (
    COMMON_TERM_SHARE,
    MAX_CACHED_TERMS,
    MAX_QUERY_TERMS,
    MAX_RANKED,
    MAX_SCORED_CHUNKS,
    SearchHit,
    SearchStore,
    fts_query,
    query_words,
)
from .sources import ProfileInfo, SourceInfo, SourcesStore


class ContextStore(SourcesStore, DocumentsStore, PairsStore, EvalCacheStore, SearchStore):
    """One connection to the store. Use as a context manager, or call `close()`.

    `sources` (source ids, a profile's) makes it a view of those sources' writing: search, the
    documents and reply pairs examples are built from, counts and the fingerprint see only them,
    and its pair runs are its own. None: everything (the default profile)."""


__all__ = [
    "BUSY_TIMEOUT_S", "COMMON_TERM_SHARE", "ContextStore", "MAX_CACHED_TERMS", "MAX_QUERY_TERMS", "MAX_RANKED",
    "MAX_SCORED_CHUNKS", "MIGRATIONS", "PAIR_FIELDS", "ProfileInfo", "STORE_FILE", "SearchHit", "SourceInfo",
    "fts_query", "query_words", "store_path",
]
