"""Examples for MIPO pairs: a request q and the user's context c, retrieved from the store.

Three sources: email threads (the incoming message the user answered), notes (a request to write
about the note's topic) and everyday assistant requests shipped with the app. A stable share of
examples is held out for evaluation: whether an example is held out depends only on its id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..context.store import ContextStore
from ..context.text import estimate_tokens

DATA = Path(__file__).resolve().parent / "data"

NOTE_REQUESTS = (
    "Write a short note about {title}.",
    "Tell me what I should keep in mind about {title}.",
    "Summarize what I know about {title}.",
    "Give me an update on {title}.",
)


@dataclass(frozen=True)
class Example:
    id: str                          # stable across runs: where the example comes from
    source: str                      # "email" | "note" | "everyday"
    request: str                     # q
    context: tuple[str, ...]         # c: excerpts of the user's own writing
    context_docs: tuple[int, ...]    # the documents those excerpts come from
    heldout: bool
    reference: Optional[str] = None  # the user's real reply (email threads)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) that depends only on `key`."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / float(16 ** 12)


def is_heldout(example_id: str, fraction: float) -> bool:
    return stable_fraction("heldout:" + example_id) < fraction


def everyday_requests() -> list[str]:
    return [line.strip() for line in (DATA / "everyday.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def personas() -> list[str]:
    text = (DATA / "personas.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n---\n") if p.strip()]


def _truncate(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    if count(text) <= max_tokens:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " …"


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
                     count: Callable[[str], int] = estimate_tokens, k: int = 12) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The best chunks of the user's writing for `query`, as many as fit `budget_tokens`."""
    hits = fit_context(store.search(query, k, exclude_documents=exclude_documents), budget_tokens, count)
    return tuple(h.text for h in hits), tuple(dict.fromkeys(h.document_id for h in hits))


def build_examples(store: ContextStore, *, max_examples: int = 200, heldout_fraction: float = 0.1,
                   context_tokens: int = 400, request_tokens: int = 300,
                   count: Callable[[str], int] = estimate_tokens) -> list[Example]:
    """All examples the store supports (those whose context came out empty are left out), at most
    `max_examples`, chosen by a stable order so that growing the number keeps earlier ones."""
    candidates: list[Example] = []
    for incoming, reply in store.reply_pairs():
        sender = json.loads(incoming["meta"] or "{}").get("from_name") or incoming["author"] or "someone"
        body = _truncate(incoming["body"], request_tokens, count)
        request = f"Reply to this email.\n\nFrom: {sender}\nSubject: {incoming['title']}\n\n{body}"
        context, docs = retrieve_context(store, f"{incoming['title']} {incoming['body']}", context_tokens,
                                         exclude_documents=(reply["id"],), count=count)
        eid = f"email:{reply['message_id'] or reply['id']}"
        candidates.append(Example(eid, "email", request, context, docs, is_heldout(eid, heldout_fraction), reply["body"]))
    for note in store.documents(kind="note"):
        eid = f"note:{note['file_id']}:{note['locator']}:{note['title']}"
        template = NOTE_REQUESTS[int(stable_fraction(eid) * len(NOTE_REQUESTS))]
        request = template.format(title=note["title"])
        first = note["body"].split("\n\n", 1)[0]
        context, docs = retrieve_context(store, f"{note['title']} {first}", context_tokens, count=count)
        candidates.append(Example(eid, "note", request, context, docs, is_heldout(eid, heldout_fraction)))
    for request in everyday_requests():
        eid = f"everyday:{request}"
        context, docs = retrieve_context(store, request, context_tokens, count=count)
        candidates.append(Example(eid, "everyday", request, context, docs, is_heldout(eid, heldout_fraction)))
    usable = [e for e in candidates if e.context]
    usable.sort(key=lambda e: stable_fraction("order:" + e.id))
    return usable[:max_examples]
