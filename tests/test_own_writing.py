"""The headline measure on the person's own held-out writing (`own_writing`), the held-out split that
keeps it out of training, and copy-aware pair selection: on the real bundled model and real stores."""

from __future__ import annotations

import json

import pytest

from mipo_local.context import ContextStore, import_paths
from mipo_local.context.overlap import copy_share
from mipo_local.demo import demo_sources
from mipo_local.evaluation.own_writing import (placebo_context, score_writing, writing_documents, writing_sentence,
                                               writing_summary)
from mipo_local.pairs import PairSettings, build_examples
from mipo_local.pairs.examples import Example, own_text_answer
from mipo_local.pairs.stage import CandidateScorer, select_pair

from .test_personalization_measure import FACTS

CONTEXT_IN = PairSettings().context_in


def _docs() -> list[dict]:
    """Twelve held-out 'texts': each person's fact in other words, their context the fact itself, the
    placebo the next person's context."""
    out = []
    for i, (topic, fact) in enumerate(FACTS):
        out.append({"id": str(i), "kind": "note" if i % 2 else "reply", "request": f"Tell me about {topic}.",
                    "context": [fact], "text": f"About {topic}: {fact.lower()} That is all there is to say.",
                    "placebo": [FACTS[(i + 1) % len(FACTS)][1]]})
    return out


@pytest.fixture(scope="module")
def two_copies(smol_checkpoint):
    """The bundled model loaded twice: two models equal to each other, computed apart."""
    from mipo_local.inference.scoring import ResponseScorer, load_torch_model

    return ResponseScorer(*load_torch_model(smol_checkpoint)), ResponseScorer(*load_torch_model(smol_checkpoint))


def test_a_model_equal_to_the_base_gains_nothing_and_neither_does_its_placebo(two_copies):
    docs = _docs()
    base, personal = (score_writing(s, docs, CONTEXT_IN) for s in two_copies)
    w = writing_summary(docs, base, personal)
    assert w["documents"] == 12 and w["notes"] == 6 and w["replies"] == 6
    for key in ("pmi_gain", "likelihood_gain", "placebo_gain", "true_minus_placebo"):
        assert w[key]["n"] == 12
        assert abs(w[key]["mean"]) < 1e-4 and max(map(abs, w[key]["ci95"])) < 1e-4, (key, w[key])
    # the measure itself sees the context: the true context makes the text far likelier than none or a placebo
    assert w["pmi"]["base"]["ci95"][0] > 0.1
    placebo = [(s["placebo"] - s["without"]) / s["tokens"] for s in base]
    assert sum(placebo) / len(placebo) < w["pmi"]["base"]["mean"] - 0.1


def test_the_sentence_and_the_table_say_the_json(two_copies):
    from mipo_local.evaluation.report import summary_markdown

    docs = _docs()
    base = score_writing(two_copies[0], docs, CONTEXT_IN)
    # a 'personal' model: the base's scores with the true context made likelier by 0.05 nats per token
    personal = [{**s, "with": s["with"] + 0.05 * s["tokens"]} for s in base]
    w = writing_summary(docs, base, personal)
    said = writing_sentence(w)
    assert said.startswith("On 12 pieces of your own writing it never saw (6 notes and 6 replies to email), "
                           "your personal model writes more like you than the original model")
    assert f"{w['pmi_gain']['mean']:+.3f}" == "+0.050" and "+0.050 nats per token" in said
    assert f"{w['placebo_gain']['mean']:+.3f}" in said and "100% of the texts improved" in said
    less = writing_summary(docs, personal, base)
    assert "writes less like you" in writing_sentence(less)
    assert "cannot say" in writing_sentence(writing_summary([], [], []))
    result = {"headline": said, "writing": w}
    from mipo_local.evaluation.report import _writing_markdown
    table = "\n".join(_writing_markdown(w))
    assert "+0.050 (95% CI +0.050 to +0.050, n=12)" in table and "6 notes, 6 replies" in table
    assert callable(summary_markdown) and result["headline"] == said


def _write_notes(folder, notes: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in notes.items():
        (folder / f"{name}.md").write_text(text, encoding="utf-8")


def test_a_held_out_text_never_enters_its_own_context_nor_any_training_example(mipo_home, tmp_path):
    """Each note is stored twice (a copy in another folder, as people keep them): the held-out note's
    own text must still not reach its context, and no held-out document is any training example's."""
    import random

    words = [w for w in ("sporophyte urchin transect marker sensor diver anchor buoy current tide salinity frond "
                         "holdfast canopy sample bucket logbook drysuit compass reef skerry harbour ferry pier "
                         "calibration battery camera tripod notebook thermometer rope winch").split()]
    notes = {}
    for i in range(40):
        rng = random.Random(i)
        sentences = [" ".join(rng.sample(words, 9)) + "." for _ in range(4)]
        notes[f"kelp {i}"] = f"Kelp survey {i}: " + " ".join(sentences)
    _write_notes(tmp_path / "notes", notes)
    _write_notes(tmp_path / "copies", {f"copy of {k}": v for k, v in notes.items()})
    import_paths([tmp_path / "notes", tmp_path / "copies"])
    with ContextStore() as store:
        examples = build_examples(store, max_examples=10 ** 6, heldout_fraction=0.3, context_tokens=400)
        held = [e for e in examples if e.heldout and e.text]
        trained = [e for e in examples if not e.heldout]
        assert len(held) >= 5 and len(trained) >= 20
        held_docs = {d for e in held for d in e.documents}
        for e in held:
            assert not set(e.context_docs) & set(e.documents)
            assert copy_share(" ".join(e.context), [e.text]) <= 0.2, e.id    # not even its copy
        for e in trained:
            assert not set(e.context_docs) & held_docs and not set(e.documents) & held_docs
        docs = writing_documents(store, PairSettings(heldout_fraction=0.3), 100, 256)
    assert docs and all(d["kind"] == "note" for d in docs)
    for d in docs:
        assert copy_share(" ".join(d["context"]), [d["text"]]) <= 0.2
        assert d["placebo"] is None or copy_share(" ".join(d["placebo"]), [d["text"]]) <= 0.2


def test_held_out_replies_keep_their_thread_out(mipo_home):
    import_paths(demo_sources())
    with ContextStore() as store:
        from mipo_local.pairs.examples import thread_documents

        thread = thread_documents(store)
        pairs = {f"email:{r['message_id'] or r['id']}": (i["id"], r["id"]) for i, r in store.reply_pairs()}
        examples = build_examples(store, max_examples=10 ** 6, heldout_fraction=0.5)
        held = [e for e in examples if e.heldout and e.id in pairs]
        assert held
        kept_out = set()
        for e in held:
            docs = set(thread(*pairs[e.id]))
            kept_out |= docs
            assert not set(e.context_docs) & docs and e.reference == e.text
        assert not any(set(e.context_docs) & kept_out for e in examples if not e.heldout)
        docs = writing_documents(store, PairSettings(heldout_fraction=0.5), 100, 256)
    kinds = [d["kind"] for d in docs]
    assert "reply" in kinds and "note" in kinds and kinds[0] == "reply"    # replies and notes in turn


def test_a_note_may_be_its_own_context_only_when_asked(mipo_home):
    import_paths(demo_sources())
    with ContextStore() as store:
        apart = {e.id: e for e in build_examples(store, max_examples=10 ** 6, own_document="exclude")}
        within = {e.id: e for e in build_examples(store, max_examples=10 ** 6, own_document="include")}
    notes = [e for e in apart.values() if e.source == "note" and not e.heldout]
    assert notes and not any(set(e.context_docs) & set(e.documents) for e in notes)
    assert any(set(e.context_docs) & set(e.documents) for e in within.values() if e.source == "note" and not e.heldout)
    assert all(not set(e.context_docs) & set(e.documents) for e in within.values() if e.heldout)


def test_copy_aware_selection_prefers_the_answer_that_uses_the_context_without_pasting_it(smol_checkpoint):
    scorer = CandidateScorer(smol_checkpoint, CONTEXT_IN)
    fact = ("My rowing boat Kestrel is moored at pier nine in Sandviken, and every Saturday morning I row her out "
            "past the old lighthouse before the ferries start running.")
    e = Example("note:boat", "note", "Give me an update on my boat.", (fact,), (1,), False)
    pasted = "Here is your note: " + fact
    used = "Kestrel is still at pier nine; a Saturday row past the lighthouse before the ferries sounds right."
    generic = "Boats need regular care, so check the hull and the ropes often."
    candidates = [pasted, used, generic]
    mi = scorer.mi(e, candidates)
    copied = [copy_share(c, e.context) for c in candidates]
    assert mi[0] > mi[1] > mi[2]                   # MI alone picks the paste
    assert copied[0] > 0.5 and copied[1] == copied[2] == 0.0
    lengths = [len(c.split()) for c in candidates]
    assert select_pair(lengths, lengths, mi, mi, PairSettings(copy_ceiling=None))[1] == 0
    assert select_pair(lengths, lengths, mi, mi, PairSettings(), copied) == (None, 1, 2)
    only_pastes = select_pair(lengths[:1], lengths, mi[:1], mi, PairSettings(), copied[:1])
    assert only_pastes[0] == "positive copies the context"


def test_the_placebo_is_another_context_even_when_one_document_is_retrieved_for_every_text():
    # an index of all the notes (a TIL README) is retrieved into every context: the placebo is still
    # another text's context, the one with the fewest documents in common, and never one holding y*'s own
    def note(i, docs, own):
        return Example(f"note:{i}", "note", "q", tuple(f"c{d}" for d in docs), docs, True, documents=own)
    e = note(0, (1, 10, 11), (100,))
    others = [note(1, (1, 10, 12), (101,)), note(2, (1, 13, 100), (102,)), note(3, (1, 14, 15), (103,)),
              note(4, (1, 16), (104,))]
    assert placebo_context(e, others) == ["c1", "c14", "c15"]
    assert placebo_context(e, [others[1]]) is None and placebo_context(e, []) is None
    assert placebo_context(e, [note(5, (), (105,))]) is None


def test_own_text_as_an_answer_keeps_whole_sentences():
    e = Example("note:x", "note", "q", ("c",), (1,), False, text="One two three. Four five six. " * 40)
    short = own_text_answer(e, 20)
    assert short and short.endswith(".") and len(short) < len(e.text)
    assert own_text_answer(Example("n", "note", "q", (), (), False, text="tiny."), 20) == "tiny."
    assert own_text_answer(Example("n", "note", "q", (), (), False), 20) is None
    assert json.dumps(short)


def test_the_emails_a_person_wrote_that_answer_no_stored_mail_are_their_writing_too(mipo_home, tmp_path):
    """An email of theirs that quotes a message the store lacks is a reply to the quoted message; one
    that quotes none asks for an email on its subject; a one-liner or one without subject is neither."""
    from mipo_local.context.quotes import quoted_message
    from mipo_local.settings import UserSettings

    from .mail_fixtures import ME, plain, thread_messages, write_mbox

    own = f"Ada Lind <{ME}>"
    quoting = plain("own-1", own, "RE: kayak trip",
                    "Count me in: I will bring the red kayak and the spare paddle for Karin.\n\n"
                    "-----Original Message-----\nFrom: Tor Vik [mailto:tor@example.net]\n"
                    "Sent: Monday, March 02, 2026 9:00 AM\nTo: Lind, Ada\nSubject: kayak trip\n\n"
                    "Who wants to paddle to Askøy on Saturday?\n\n"
                    "-----Original Message-----\nFrom: Eli Dahl\nSent: Sunday, March 01, 2026\n\nAn older message.",
                    to="tor@example.net")
    fresh = plain("own-2", own, "Fwd: Garden plans for May",
                  "The zucchini go by the south fence this year, and the beans along the shed wall.", to="karin@example.net")
    short = plain("own-3", own, "Re: dinner", "Thanks, see you then!", to="bob@example.net")
    no_subject = plain("own-4", own, "", "A long enough message with no subject line at all, written to a friend.",
                       to="bob@example.net")
    write_mbox(tmp_path / "mail.mbox", thread_messages() + [quoting, fresh, short, no_subject])
    _write_notes(tmp_path / "notes", {"kayak": "The red kayak and the spare paddle live in the shed. Askøy trips "
                                                "start at the pier on Saturday mornings.",
                                       "garden": "Garden plans: zucchini and beans need sun, so the fence and shed "
                                                 "wall are the places for them in May."})
    import_paths([tmp_path / "mail.mbox", tmp_path / "notes"], settings=UserSettings().with_addresses([ME]))
    with ContextStore() as store:
        mail = {r["message_id"]: r for r in store.documents(kind="email")}
        name, text = quoted_message(mail["<own-1@example.org>"]["quoted"])
        assert name == "Tor Vik" and text == "Who wants to paddle to Askøy on Saturday?"
        examples = {e.id: e for e in build_examples(store, max_examples=10 ** 6, heldout_fraction=0.0)}
        held = {e.id: e for e in build_examples(store, max_examples=10 ** 6, heldout_fraction=0.9999)}
    reply, written = examples.get("sent:<own-1@example.org>"), examples.get("sent:<own-2@example.org>")
    assert reply and reply.source == "email"
    assert reply.request == ("Reply to this email.\n\nFrom: Tor Vik\nSubject: RE: kayak trip\n\n"
                             "Who wants to paddle to Askøy on Saturday?")
    assert reply.text == reply.reference and reply.text.startswith("Count me in") and "Original" not in reply.text
    assert written and written.source == "sent" and written.reference is None
    assert written.request in ("Write an email about Garden plans for May.", "Draft a short email about Garden plans for May.")
    assert written.text.startswith("The zucchini")
    assert "sent:<own-3@example.org>" not in examples and "sent:<own-4@example.org>" not in examples
    for e in (reply, written):           # never its own context, held out or not
        assert e.documents == (mail[e.id[5:]]["id"],) and not set(e.context_docs) & set(e.documents)
    for e in held.values():
        assert e.heldout and not set(e.context_docs) & set(e.documents)


def test_the_sentence_names_each_kind_of_writing():
    from mipo_local.evaluation.own_writing import _kinds

    assert _kinds({"notes": 3, "replies": 1, "emails": 2}) == "3 notes, 1 reply to email and 2 emails you wrote"
    assert _kinds({"notes": 0, "replies": 0, "emails": 1}) == "1 email you wrote"
    assert _kinds({"notes": 2, "replies": 2}) == "2 notes and 2 replies to email"
