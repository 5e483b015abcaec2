"""Examples for MIPO pairs: a request q and the user's context c, retrieved from the store.

Four sources: email threads (the incoming message the user answered, linked or quoted in their
reply), emails the user wrote without one (a request to write about the subject), notes (a request to
write about the note's topic) and everyday assistant requests shipped with the app. A stable share of
examples is held out for evaluation: whether an example is held out depends only on its id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..context.retrieval import retrieve_context
from ..context.store import ContextStore
from ..context.text import estimate_tokens

DATA = Path(__file__).resolve().parent / "data"

NOTE_REQUESTS = (
    "Write a short note about {title}.",
    "Tell me what I should keep in mind about {title}.",
    "Summarize what I know about {title}.",
    "Give me an update on {title}.",
)
EMAIL_REQUESTS = (
    "Write an email about {subject}.",
    "Draft a short email about {subject}.",
)
# an email of the user's that answers no stored mail is an example when it holds this many words of
# their own (a sentence: "Thanks!" says nothing of how they write)
MIN_OWN_WORDS = 8


@dataclass(frozen=True)
class Example:
    id: str                          # stable across runs: where the example comes from
    source: str                      # "email" (a reply) | "sent" (an email of theirs) | "note" | "everyday"
    request: str                     # q
    context: tuple[str, ...]         # c: excerpts of the user's own writing
    context_docs: tuple[int, ...]    # the documents those excerpts come from
    heldout: bool
    reference: Optional[str] = None  # the user's real reply (email threads)
    documents: tuple[int, ...] = ()  # the documents the example is made from (note; incoming mail and reply)
    text: Optional[str] = None       # the user's own text it is about: the note's body, their reply


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


OWN_DOCUMENT = ("exclude", "include")


@dataclass(frozen=True)
class _Draft:
    """An example before its context is retrieved."""
    id: str
    source: str
    request: str
    query: str                       # what its context is retrieved with
    documents: tuple[int, ...]       # what it is made from
    own: tuple[int, ...]             # the user's own documents it is about (the note; the reply)
    keep_out: tuple[int, ...]        # held out, these stay out of every training example (the thread too)
    reference: Optional[str] = None  # the user's real reply
    text: Optional[str] = None       # the user's own text it is about (the note's body; the reply)


def thread_documents(store: ContextStore) -> Callable[[int, int], tuple[int, ...]]:
    """(incoming id, reply id) → the documents of their thread: both, and every stored email under the
    same subject once reply and forward prefixes are stripped (an empty subject names no thread)."""
    from ..context.threads import normalize_subject

    by_subject: dict[str, list[int]] = {}
    subject_of: dict[int, str] = {}
    for doc_id, title in store.email_subjects():
        subject = normalize_subject(title)
        subject_of[doc_id] = subject
        if subject:
            by_subject.setdefault(subject, []).append(doc_id)

    def thread(incoming: int, reply: int) -> tuple[int, ...]:
        docs = {incoming, reply}
        for doc in (incoming, reply):
            docs.update(by_subject.get(subject_of.get(doc, ""), ()))
        return tuple(sorted(docs))

    return thread


def _reply_request(sender: str, subject: str, body: str, request_tokens: int, count: Callable[[str], int]) -> str:
    body = _truncate(body, request_tokens, count)
    return f"Reply to this email.\n\nFrom: {sender or 'someone'}\nSubject: {subject}\n\n{body}"


def _drafts(store: ContextStore, request_tokens: int, count: Callable[[str], int]) -> list[_Draft]:
    drafts: list[_Draft] = []
    pairs = store.reply_pairs()
    own_emails = store.documents(kind="email", user_only=True)
    thread = thread_documents(store) if pairs or own_emails else None
    for incoming, reply in pairs:
        sender = json.loads(incoming["meta"] or "{}").get("from_name") or incoming["author"]
        request = _reply_request(sender, incoming["title"], incoming["body"], request_tokens, count)
        eid = f"email:{reply['message_id'] or reply['id']}"
        drafts.append(_Draft(eid, "email", request, f"{incoming['title']} {incoming['body']}",
                             (incoming["id"], reply["id"]), (reply["id"],), thread(incoming["id"], reply["id"]),
                             reply["body"], reply["body"]))
    linked = {reply["id"] for _, reply in pairs}
    for mail in own_emails:
        if mail["id"] not in linked:
            draft = _own_email_draft(mail, thread, request_tokens, count)
            if draft is not None:
                drafts.append(draft)
    for note in store.documents(kind="note"):
        eid = f"note:{note['file_id']}:{note['locator']}:{note['title']}"
        template = NOTE_REQUESTS[int(stable_fraction(eid) * len(NOTE_REQUESTS))]
        first = note["body"].split("\n\n", 1)[0]
        drafts.append(_Draft(eid, "note", template.format(title=note["title"]), f"{note['title']} {first}",
                             (note["id"],), (note["id"],), (note["id"],), text=note["body"]))
    for request in everyday_requests():
        drafts.append(_Draft(f"everyday:{request}", "everyday", request, request, (), (), ()))
    return drafts


def _own_email_draft(mail, thread, request_tokens: int, count: Callable[[str], int]) -> Optional[_Draft]:
    """An email the user wrote that answers no stored mail: a reply to the message it quotes, where it
    quotes one, else a request to write about its subject; None when it holds under MIN_OWN_WORDS
    words of their own, or has neither a quoted message nor a subject."""
    from ..context.quotes import quoted_message
    from ..context.threads import bare_subject

    own = mail["body"].strip()
    if len(own.split()) < MIN_OWN_WORDS:
        return None
    eid = f"sent:{mail['message_id'] or mail['id']}"
    sender, quoted = quoted_message(mail["quoted"])
    if quoted.strip():
        request = _reply_request(sender, mail["title"], quoted, request_tokens, count)
        source, query = "email", f"{mail['title']} {quoted}"
    else:
        subject = bare_subject(mail["title"])
        if not subject:
            return None
        template = EMAIL_REQUESTS[int(stable_fraction(eid) * len(EMAIL_REQUESTS))]
        first = own.split("\n\n", 1)[0]
        source, request, query = "sent", template.format(subject=subject), f"{subject} {first}"
    return _Draft(eid, source, request, query, (mail["id"],), (mail["id"],), thread(mail["id"], mail["id"]),
                  own if source == "email" else None, own)


def build_examples(store: ContextStore, *, max_examples: int = 200, heldout_fraction: float = 0.1,
                   context_tokens: int = 400, request_tokens: int = 300,
                   count: Callable[[str], int] = estimate_tokens, own_document: str = "exclude") -> list[Example]:
    """All examples the store supports (those whose context came out empty are left out), at most
    `max_examples`, chosen by a stable order so that growing the number keeps earlier ones.

    Held-out examples keep their documents out of training entirely: no other example's context is
    retrieved from them or from their email thread, and an example made from one of them (another
    reply to the same mail) is left out. A held-out example's own context never holds its own text
    (not its document, its thread, nor a chunk that copies a fifth of it): it measures whether the
    model writes like the person from *other* writing of theirs. `own_document`: whether a training
    example's context may hold the document it is about (its note; an email's reply is never in it)."""
    if own_document not in OWN_DOCUMENT:
        raise ValueError(f"own_document must be one of {OWN_DOCUMENT}")
    drafts = _drafts(store, request_tokens, count)
    held = {d.id: is_heldout(d.id, heldout_fraction) for d in drafts}
    kept_out = {doc for d in drafts if held[d.id] for doc in d.keep_out}
    candidates: list[Example] = []
    for d in drafts:
        if not held[d.id] and kept_out.intersection(d.documents):
            continue            # made from a held-out document: it must not be trained on
        exclude = set(kept_out)
        if held[d.id] or own_document == "exclude" or d.source in ("email", "sent"):
            exclude.update(d.own)
        context, docs = retrieve_context(store, d.query, context_tokens, exclude_documents=sorted(exclude),
                                         count=count, avoid=d.text if held[d.id] else None)
        candidates.append(Example(d.id, d.source, d.request, context, docs, held[d.id], d.reference, d.documents,
                                  d.text))
    usable = [e for e in candidates if e.context]
    usable.sort(key=lambda e: stable_fraction("order:" + e.id))
    return usable[:max_examples]


def own_text_answer(example: Example, max_tokens: int, count: Callable[[str], int] = estimate_tokens) -> Optional[str]:
    """The person's own text of an example as an answer of at most `max_tokens` tokens: whole
    sentences (or lines) up to the budget; None when it has none, or not one whole sentence fits."""
    text = (example.text or "").strip()
    if not text:
        return None
    if count(text) <= max_tokens:
        return text
    import re

    ends = [m.end() for m in re.finditer(r"[.!?…](?=\s)|\n", text)]
    best = None
    lo, hi = 0, len(ends) - 1
    while lo <= hi:                      # the longest prefix ending at a sentence end that fits
        mid = (lo + hi) // 2
        if count(text[:ends[mid]]) <= max_tokens:
            best, lo = ends[mid], mid + 1
        else:
            hi = mid - 1
    return text[:best].strip() if best else None
