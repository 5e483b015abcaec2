"""Retrieval: BM25 over the chunks' FTS5 index, searching a query's selective words first and
scoring a bounded number of chunks however large the store, with the per-connection statistics
(chunk count, document frequencies) that keep it fast."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .base import StoreBase

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

def query_words(text: str) -> list[str]:
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if len(w) > 1 or w.isdigit()))


def fts_query(words: Sequence[str]) -> str:
    """A safe FTS5 query: the words OR-ed, each quoted."""
    return " OR ".join(f'"{w}"' for w in words)



class SearchStore(StoreBase):
    """`search` and what it needs."""

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
        from ..text import fold_diacritics

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
