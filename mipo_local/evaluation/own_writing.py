"""The headline measure: does the personal model write more like the person, on their own writing
that it never saw?

For held-out notes (the request to write about the note's title; the text y* is the note's body,
whole sentences up to a token budget), held-out emails the person answered (the incoming mail, linked
or quoted in their reply; y* is their real reply, their own words only) and emails they wrote that
answer none (the request to write about the subject; y* is the email), each with a context retrieved as for a pair but never
holding y*'s own document, its thread or a copy of it (`pairs.examples.build_examples`), both models
score y* in place — no sampling, no model judging its own answers:

- writing PMI gain per token: [log πθ(y*|c,q) − log πθ(y*|q)] − [log π₀(y*|c,q) − log π₀(y*|q)],
  how much more the person's other writing makes their real text likely under the personal model
  than under the original;
- likelihood gain per token: log πθ(y*|c,q) − log π₀(y*|c,q) (DPO can lower every likelihood);
- the placebo: the PMI gain with another held-out text's context in place of the true one, which
  must gain clearly less (a model that learned "any context helps" gains under both).
Each is paired per document, with a percentile-bootstrap 95% CI over documents.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..inference.prompt_format import chat_messages
from .statistics import ci_dict

# the kinds of held-out writing, each with the examples' source it comes from (taken in this order)
KINDS = (("reply", "email"), ("sent", "sent"), ("note", "note"))
KIND_NAMES = {"note": "notes", "reply": "replies", "sent": "other emails"}   # as the report names them


def writing_documents(store, pair_settings, limit: int, text_tokens: int) -> list[dict]:
    """Up to `limit` held-out pieces of the person's own writing, replies, emails and notes taken in turn
    (in the split's stable order), each {id, kind, request, context, text, placebo}: `placebo` is another
    one's context (`placebo_context`)."""
    from ..pairs.examples import build_examples, own_text_answer

    everything = build_examples(store, max_examples=10 ** 9, heldout_fraction=pair_settings.heldout_fraction,
                                context_tokens=pair_settings.context_tokens, own_document=pair_settings.own_document)
    by_kind = {kind: [e for e in everything if e.heldout and e.source == source and e.text]
               for kind, source in KINDS}
    taken, docs = [], []
    while len(docs) < limit and any(by_kind.values()):
        for kind, _ in KINDS:
            if by_kind[kind] and len(docs) < limit:
                e = by_kind[kind].pop(0)
                text = own_text_answer(e, text_tokens)
                if text:
                    taken.append(e)
                    docs.append({"id": e.id, "kind": kind, "request": e.request, "context": list(e.context),
                                 "text": text, "placebo": None})
    for i, d in enumerate(docs):
        d["placebo"] = placebo_context(taken[i], taken[i + 1:] + taken[:i])   # the others, from the next one on
    return docs


def placebo_context(example, others: Sequence) -> Optional[list]:
    """The context of the first of `others` that shares the fewest documents with `example`'s context and
    holds none of its own documents (y*'s): a document retrieved for every text, such as an index of all
    the notes, may be in every context. None when no other example has a context."""
    own, mine = set(example.documents), set(example.context_docs)
    others = [o for o in others if o.context and not set(o.context_docs) & own]
    if not others:
        return None
    return list(min(others, key=lambda o: len(set(o.context_docs) & mine)).context)


def score_writing(scorer, docs: Sequence[dict], context_in: str,
                  on_doc: Optional[Callable[[int, int], None]] = None) -> list[dict]:
    """Per document, under one model (a `CachedScorer` or `ResponseScorer`): log π(y*|c,q), log π(y*|q),
    log π(y*|c',q) with the placebo context c' (None without one), and y*'s token count.
    `on_doc(done, total)` after each document (progress)."""
    out = []
    for d in docs:
        score = lambda context: scorer.score(chat_messages(context, d["request"], context_in=context_in),  # noqa: E731
                                             [d["text"]])[0]
        (with_c, n), (without, _) = score(d["context"]), score(None)
        out.append({"with": with_c, "without": without, "placebo": score(d["placebo"])[0] if d["placebo"] else None,
                    "tokens": n})
        if on_doc is not None:
            on_doc(len(out), len(docs))
    return out


def writing_summary(docs: Sequence[dict], base: Sequence[dict], personal: Sequence[dict]) -> dict:
    """The measures of the module's docstring, per token and paired per document."""
    pmi = lambda s: (s["with"] - s["without"]) / max(1, s["tokens"])  # noqa: E731
    placebo = lambda s: (s["placebo"] - s["without"]) / max(1, s["tokens"])  # noqa: E731
    gains = [pmi(p) - pmi(b) for p, b in zip(personal, base)]
    with_placebo = [i for i, d in enumerate(docs) if d.get("placebo") is not None]
    placebo_gains = [placebo(personal[i]) - placebo(base[i]) for i in with_placebo]
    by_kind = {}
    for kind, _ in KINDS:
        mine = [g for d, g in zip(docs, gains) if d["kind"] == kind]
        by_kind[kind] = ci_dict(mine)
    return {
        "documents": len(docs),
        "notes": sum(d["kind"] == "note" for d in docs),
        "replies": sum(d["kind"] == "reply" for d in docs),
        "emails": sum(d["kind"] == "sent" for d in docs),
        "tokens": sum(s["tokens"] for s in base),
        "pmi_gain": ci_dict(gains),
        "likelihood_gain": ci_dict([(p["with"] - b["with"]) / max(1, b["tokens"]) for p, b in zip(personal, base)]),
        "placebo_gain": ci_dict(placebo_gains),
        "true_minus_placebo": ci_dict([gains[i] - g for i, g in zip(with_placebo, placebo_gains)]),
        "improved": sum(g > 0 for g in gains) / len(gains) if gains else None,
        "pmi": {"base": ci_dict([pmi(b) for b in base]), "personal": ci_dict([pmi(p) for p in personal])},
        "loglik": {"base": ci_dict([b["with"] / max(1, b["tokens"]) for b in base]),
                   "personal": ci_dict([p["with"] / max(1, p["tokens"]) for p in personal])},
        "by_kind": by_kind,
    }


def _kinds(w: dict) -> str:
    """"3 notes, 2 replies to email and 1 email you wrote": the held-out texts by kind."""
    emails = w.get("emails", 0)
    parts = [p for p in (f"{w['notes']} note{'s' * (w['notes'] != 1)}" if w["notes"] else "",
                         f"{w['replies']} repl{'ies' if w['replies'] != 1 else 'y'} to email" if w["replies"] else "",
                         f"{emails} email{'s' * (emails != 1)} you wrote" if emails else "") if p]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def writing_sentence(w: Optional[dict]) -> str:
    """The report's first sentence: in plain words, whether the personal model writes more like the
    person than the original, on how many of their own texts it never saw; then its numbers."""
    if not w or not w.get("documents"):
        return ("None of your own writing (notes, replies you wrote) was held out to test on, so this run cannot say "
                "whether your model writes more like you.")
    g = w["pmi_gain"]
    lo, hi = g["ci95"]
    verdict = ("writes more like you than the original model" if lo > 0 else
               "writes less like you than the original model" if hi < 0 else
               "does not write measurably more like you than the original model")
    said = (f"On {w['documents']} pieces of your own writing it never saw ({_kinds(w)}), your personal model {verdict}: "
            f"given your other writing, your real text became {g['mean']:+.3f} nats per token more likely than "
            f"without it, compared with the original (95% CI {lo:+.3f} to {hi:+.3f}; {w['improved']:.0%} of the texts "
            "improved).")
    lik, plac = w["likelihood_gain"], w["placebo_gain"]
    said += (f" Its likelihood of your text changed by {lik['mean']:+.3f} nats per token "
             f"(95% CI {lik['ci95'][0]:+.3f} to {lik['ci95'][1]:+.3f})")
    if plac.get("n"):
        said += (f", and with someone else's context in place of yours the gain was {plac['mean']:+.3f} "
                 f"(95% CI {plac['ci95'][0]:+.3f} to {plac['ci95'][1]:+.3f})")
    return said + "."
