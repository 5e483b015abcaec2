"""Retrieval of the person's context for a request, the same for pairs, the evaluation and chat:
BM25 hits from the store, kept when they share enough content words with the request, fitted to a
token budget."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .overlap import copy_share
from .store import ContextStore
from .text import estimate_tokens

# Words that say nothing about a subject: a request's wording ("suggest", "write") and common function
# words. A hit counts as relevant only through the other words it shares with the query.
_GENERIC = frozenset("""
a about above after again all also am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further give had has have having he her here hers him his
how i if in into is it its just me more most my myself need no nor not now of off on once only or other our out
over own please same she should so some such tell than that the their them then there these they this those
through to too under until up very was we were what when where which while who whom why will with would write
you your yours short brief quick way ways something someone make made help suggest idea ideas list give get
one two three new good best like want know think thing things day today week time use using let lets
re fwd fw subject dear hi hello thanks thank regards cheers draft reply message plan planning getting back
better recently month year following follow someone person people keep mind summarize summary update note
notes accepting asking bring send sending around first last next every many much well really still
""".split())


def content_words(text: str) -> set[str]:
    """The words of `text` that can carry a subject (lower-cased, two or more letters, not generic)."""
    import re

    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 2 and not w.isdigit() and w not in _GENERIC}


def relevant_hits(query: str, hits: Sequence, min_shared: int = 2, most: int = 3) -> list:
    """The search hits that share enough subject words with `query`: a third of them, at least
    `min_shared` and at most `most` (all of them when the query has fewer). A note that only shares
    "Sunday" with "a rainy Sunday afternoon" is no context for it. Pairs, evaluation and chat all
    filter retrieval this way."""
    wanted = content_words(query)
    need = min(len(wanted), max(min_shared, min(most, -(-len(wanted) // 3))))
    if need == 0:
        return []
    return [h for h in hits if len(wanted & content_words(h.text + " " + (getattr(h, "title", "") or ""))) >= need]


def fit_context(hits: Sequence, budget_tokens: int, count: Callable[[str], int] = estimate_tokens) -> list:
    """The search hits, best first, that fit `budget_tokens` together: the context of a prompt.
    Pairs, evaluation and chat all choose a context this way."""
    out, used = [], 0
    for hit in hits:
        n = count(hit.text)
        if used + n > budget_tokens:
            continue
        out.append(hit)
        used += n
    return out


def retrieve_context(store: ContextStore, query: str, budget_tokens: int, *, exclude_documents=(),
                     count: Callable[[str], int] = estimate_tokens, k: int = 12,
                     avoid: Optional[str] = None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The best relevant chunks of the user's writing for `query`, as many as fit `budget_tokens`;
    none that holds a good part of the text `avoid` (`_leaks`)."""
    hits = [h for h in relevant_hits(query, store.search(query, k, exclude_documents=exclude_documents))
            if not _leaks(h.text, avoid)]
    hits = fit_context(hits, budget_tokens, count)
    return tuple(h.text for h in hits), tuple(dict.fromkeys(h.document_id for h in hits))


def _leaks(hit_text: str, own_text: Optional[str]) -> bool:
    """Whether a retrieved chunk holds a good part of the user's own text (a copy in another file, a
    forward): more than a fifth of either's word 8-grams found in the other."""
    if not own_text:
        return False
    return copy_share(hit_text, [own_text]) > 0.2 or copy_share(own_text, [hit_text]) > 0.2
