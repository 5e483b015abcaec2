"""Reply linking without threading headers, and quote stripping (issue 13).

Crafted threads (default): originals and the user's replies as Outlook, Gmail, Apple Mail, Lotus
Notes and Thunderbird write them, in English, German and French, none with In-Reply-To or
References; a third of the threads have a second message with the same subject from someone else
and a fifth an earlier message from the same sender with the same subject (the quote, or else
the date, must pick the right one). Reported:
- linking: of the user's "Re:"-type replies, how many were linked, how many to the right message;
- quote stripping: for each reply, whether a splitter left exactly the user's own words (quote and
  signature gone), and whether at least the quote was gone with every own word kept — for our
  splitter (mipo_local.context.quotes.split_reply) and each maintained reply parser that is
  importable: mail-parser-reply, email-reply-parser, talon, quotequail (`--site DIR` appends a
  folder where they are installed to sys.path, so they need not be in the project's venv).

A real mailbox: `--mailbox PATH --me ADDRESS` imports it into a temporary workspace and reports
how many of the owner's "Re:" replies were linked (by header, by subject and quote), and how many
of their bodies still hold quote markers after splitting (no ground truth there).

Run: .venv/bin/python benchmarks/reply_linking.py [--site /path/to/site-packages]
     .venv/bin/python benchmarks/reply_linking.py --mailbox ~/mail/allen-p --me phillip.allen@enron.com
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FIRST = "Bob Carla Jürgen Claire Tim Sofia Henrik Amélie Lars Greta Paul Inès".split()
LAST = "Berg Diaz Haas Martin Belden Rossi Nilsen Dubois Holm Weber Allen Laurent".split()
TOPICS = [("Budget 2027", "Can you send the budget draft by Friday?", "The draft will be on your desk Thursday."),
          ("Choir on Thursday", "Are you coming to choir practice on Thursday?", "Yes, I will bring the alto scores."),
          ("Chorprobe", "Kommst du am Donnerstag zur Chorprobe?", "Ja, ich bringe die Noten mit."),
          ("Réunion jeudi", "Peux-tu venir à la réunion jeudi ?", "Oui, je viendrai avec les cartes."),
          ("Gas forecast", "Send me the gas forecast for May.", "Here it is, heavier in the west than April."),
          ("Boat trip", "Shall we take the boat to the skerries on Saturday?", "Saturday works, I will bring the thermos."),
          ("Kelp survey", "Can we move the kelp survey to Tuesday?", "Tuesday is fine, bring the quadrats."),
          ("Angebot", "Könnten Sie uns bis Montag ein Angebot schicken?", "Das Angebot kommt morgen früh."),
          ("Facture", "Pouvez-vous m'envoyer la facture de mars ?", "Je vous l'envoie ce soir."),
          ("Server move", "When do we move the servers to the new rack?", "Next Wednesday, after the backup.")]
MONTHS_DE = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split()
DAYS_DE = "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag".split()
MONTHS_FR = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()
DAYS_FR = "lundi mardi mercredi jeudi vendredi samedi dimanche".split()
SIGNATURES = ["", "-- \nAda Lind\nBergen", "Sent from my iPhone", "Von meinem iPhone gesendet", ""]


def _quote_block(style: str, name: str, address: str, when: dt.datetime, subject: str, text: str) -> str:
    us = when.strftime("%A, %B ") + str(when.day) + when.strftime(", %Y ") + when.strftime("%I:%M %p").lstrip("0")
    de = f"{DAYS_DE[when.weekday()]}, {when.day}. {MONTHS_DE[when.month - 1]} {when.year} {when:%H:%M}"
    fr = f"{DAYS_FR[when.weekday()]} {when.day} {MONTHS_FR[when.month - 1]} {when.year} {when:%H:%M}"
    quoted = "\n".join("> " + line for line in text.split("\n"))
    last, first = name.split()[1], name.split()[0]
    return {
        "outlook-en": f"-----Original Message-----\nFrom: {last}, {first}\nSent: {us}\nTo: Lind, Ada\nSubject: {subject}\n\n{text}",
        "outlook-en-html": f"________________________________\nFrom: {name} <{address}>\nSent: {us}\nTo: Ada Lind\n"
                           f"Subject: {subject}\n\n{text}",
        "outlook-de": f"Von: {name} <{address}>\nGesendet: {de}\nAn: Ada Lind\nBetreff: {subject}\n\n{text}",
        "outlook-fr": f"De : {name} <{address}>\nEnvoyé : {fr}\nÀ : Ada Lind\nObjet : {subject}\n\n{text}",
        "gmail-en": f"On {when:%a}, {when:%b} {when.day}, {when.year} at {when:%H:%M}, {name} <{address}> wrote:\n\n{quoted}",
        "gmail-en-wrapped": f"On {when:%a}, {when:%b} {when.day}, {when.year} at {when:%H:%M}, {name}\n<{address}> wrote:\n{quoted}",
        "thunderbird-de": f"Am {when:%d.%m.%Y} um {when:%H:%M} schrieb {name}:\n{quoted}",
        "gmail-fr": f"Le {fr.split()[0][:3]}. {when.day} {MONTHS_FR[when.month - 1]} {when.year} à {when:%H:%M}, {name} "
                    f"<{address}> a écrit :\n{quoted}",
        "apple-de": f"Am {when.day}.{when.month}.{when.year} um {when:%H:%M} schrieb {name} <{address}>:\n\n{quoted}",
        "lotus": f"{name}@ECT\n{when:%m/%d/%Y %I:%M %p}\nTo: Ada Lind/HOU/ECT@ECT\ncc: \nSubject: {subject}\n\n{text}",
        "outlook-bold": f"*From:* {name} <{address}>\n*Sent:* {us}\n*To:* Ada Lind\n*Subject:* {subject}\n\n{text}",
        "nl-schreef": f"Op {when:%d-%m-%Y} om {when:%H:%M} schreef {name} <{address}>:\n{quoted}",
        "es-escribio": f"El {when.day}/{when.month}/{when.year} a las {when:%H:%M}, {name} escribió:\n{quoted}",
        "bottom-post": quoted,
        "no-quote": "",
    }[style]


STYLES = ["outlook-en", "outlook-en-html", "outlook-de", "outlook-fr", "gmail-en", "gmail-en-wrapped",
          "thunderbird-de", "gmail-fr", "apple-de", "lotus", "outlook-bold", "nl-schreef", "es-escribio",
          "bottom-post", "no-quote"]
PREFIXES = {"outlook-en": "RE: ", "outlook-en-html": "RE: ", "outlook-de": "AW: ", "outlook-fr": "RE : ",
            "gmail-en": "Re: ", "gmail-en-wrapped": "Re: ", "thunderbird-de": "AW: ", "gmail-fr": "Re: ",
            "apple-de": "Re: ", "lotus": "Re: ", "outlook-bold": "RE: ", "nl-schreef": "Antw: ", "es-escribio": "RE: ",
            "bottom-post": "Re: ", "no-quote": "Re: "}
ME = "ada@example.org"


def _message(sender: str, subject: str, body: str, when: dt.datetime, msg_id: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = when.strftime("%a, %d %b %Y %H:%M:%S +0100")
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    msg.set_content(body)
    return msg


def crafted(n_per_style: int = 20, seed: int = 0):
    """(messages, expected links {reply id: original id}, replies [(style, body, own words, the answer
    without its sign-off, the quoted text or None)])."""
    rng = random.Random(seed)
    messages, links, replies = [], {}, []
    start = dt.datetime(2026, 1, 5, 8, 0)
    k = 0
    for style in STYLES:
        for i in range(n_per_style):
            k += 1
            subject, question, answer = rng.choice(TOPICS)
            subject = f"{subject} #{k}"
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name, address = f"{first} {last}", f"{first.lower()}.{last.lower()}@example.net".replace("é", "e").replace("ü", "u")
            when = start + dt.timedelta(days=k, minutes=rng.randrange(0, 600))
            original = f"o{k}"
            messages.append(_message(f"{name} <{address}>", subject, question, when, original, ME))
            if k % 3 == 0:      # a second message in the same thread, from someone else, earlier
                other = f"{rng.choice(FIRST)} Other <other{k}@example.com>"
                messages.append(_message(other, subject, "Also, what about the other thing we discussed?",
                                         when - dt.timedelta(hours=3), f"x{k}", ME))
            if k % 5 == 0:      # an earlier message of the same sender's, same subject: date and words decide
                messages.append(_message(f"{name} <{address}>", subject, "A first note on this, before the question.",
                                         when - dt.timedelta(days=1, hours=2), f"y{k}", ME))
            own = answer if i % 4 else f"{answer}\n\nThanks,\nAda"     # a sign-off: own words, or signature
            signature = SIGNATURES[i % len(SIGNATURES)]
            quote = _quote_block(style, name, address, when, subject, question)
            if style == "bottom-post":
                body = quote + "\n\n" + own + ("\n\n" + signature if signature else "") + "\n"
            else:
                body = own + ("\n\n" + signature if signature else "") + ("\n\n" + quote if quote else "") + "\n"
            reply_when = when + dt.timedelta(hours=1 + rng.randrange(0, 20))
            messages.append(_message(f"Ada Lind <{ME}>", PREFIXES[style] + subject, body, reply_when, f"r{k}", address))
            links[f"<r{k}@example.org>"] = f"<o{k}@example.org>"
            replies.append((style, body, own, answer, question if quote else None))
    return messages, links, replies


# ------------------------------------------------------------------------------------ splitters

def _norm(text: str) -> str:
    return " ".join(text.split())


def splitters() -> dict:
    from mipo_local.context.quotes import split_reply

    out = {"mipo-local (ours)": lambda body: split_reply(body)[0]}
    try:
        from mailparser_reply import EmailReplyParser as MPR

        parser = MPR(languages=["en", "de", "fr"])
        out["mail-parser-reply"] = lambda body: parser.read(body).replies[0].body
    except ImportError:
        pass
    try:
        from email_reply_parser import EmailReplyParser as ERP

        out["email-reply-parser"] = ERP.parse_reply
    except ImportError:
        pass
    try:
        import talon
        from talon import quotations
        from talon.signature.bruteforce import extract_signature

        talon.init()
        out["talon"] = lambda body: extract_signature(quotations.extract_from_plain(body))[0]
    except Exception:  # not installed, or its pickled classifier does not load
        pass
    try:
        import quotequail

        out["quotequail"] = lambda body: "\n".join(text for shown, text in quotequail.quote(body) if shown)
    except ImportError:
        pass
    return out


def measure_splitters(replies) -> dict:
    results = {}
    for name, split in splitters().items():
        exact = quote_gone = 0
        by_style: dict[str, int] = {}
        start = time.perf_counter()
        for style, body, own, core, quoted in replies:
            try:
                got = _norm(split(body) or "")
            except Exception:
                got = ""
            if got in (_norm(own), _norm(core)):          # a sign-off kept or taken as the signature: both right
                exact += 1
                by_style[style] = by_style.get(style, 0) + 1
            if (quoted is None or _norm(quoted) not in got) and _norm(core) in got:
                quote_gone += 1
        results[name] = (exact, quote_gone, by_style, time.perf_counter() - start)
    return results


# -------------------------------------------------------------------------------------- linking

def _import(paths, me: str) -> dict:
    from mipo_local.context import ContextStore, import_paths
    from mipo_local.context.threads import is_reply_subject
    from mipo_local.settings import UserSettings

    start = time.perf_counter()
    with ContextStore() as store:
        summary = import_paths(paths, store=store, settings=UserSettings(addresses=tuple(me.split(","))))
        seconds = time.perf_counter() - start
        own = store.documents(kind="email", user_only=True)
        reply_ids = {d["id"] for d in own if is_reply_subject(d["title"])}
        pairs = store.reply_pairs()
        linked = {rep["id"]: inc for inc, rep in pairs}
        by_header = sum(1 for inc, rep in pairs if rep["in_reply_to"] and rep["in_reply_to"] == inc["message_id"])
        left_quotes = sum(1 for d in own if d["id"] in reply_ids and re.search(
            r"(?m)^\s*(>|-----\s*Original Message|From:\s.*$\n^\s*(Sent|Date):)", d["body"]))
        return {"summary": summary, "seconds": seconds, "emails": store.counts()["emails"], "own": len(own),
                "replies": len(reply_ids), "linked": len(reply_ids & set(linked)), "by_header": by_header,
                "links": {store.document(rid)["message_id"]: inc["message_id"] for rid, inc in linked.items()},
                "left_quotes": left_quotes}


def run_crafted(n_per_style: int) -> None:
    messages, expected, replies = crafted(n_per_style)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = str(Path(tmp) / "home")
        folder = Path(tmp) / "mail"
        folder.mkdir()
        for i, msg in enumerate(messages, 1):
            (folder / str(i)).write_bytes(bytes(msg))
        result = _import([folder], ME)
    right = sum(1 for r, o in result["links"].items() if expected.get(r) == o)
    wrong = sum(1 for r, o in result["links"].items() if r in expected and expected[r] != o)
    print(f"crafted threads: {len(messages)} messages, {len(expected)} replies of the user's ('Re:', 'RE:', 'AW:'), "
          f"no threading headers, {len(STYLES)} quote styles × {n_per_style}")
    print(f"  linked {result['linked']}/{result['replies']}: {right} to the right message, {wrong} to a wrong one "
          f"(before issue 13: 0, only headers linked); import {result['seconds']:.1f} s")
    print(f"  replies whose stored body still holds a quote marker: {result['left_quotes']}")
    print("quote stripping (own words exactly / quote gone and the answer kept), per splitter:")
    for name, (exact, gone, by_style, seconds) in measure_splitters(replies).items():
        worst = sorted(STYLES, key=lambda s: by_style.get(s, 0))[:3]
        print(f"  {name:22s} {exact:4d}/{len(replies)} exact   {gone:4d}/{len(replies)} quote gone   "
              f"{seconds * 1000 / len(replies):6.2f} ms/reply   weakest: "
              + ", ".join(f"{s} {by_style.get(s, 0)}/{n_per_style}" for s in worst))


_THREADING = re.compile(rb"(?mi)^(In-Reply-To|References):.*(\r?\n[ \t].*)*\r?\n")


def _without_threading_headers(src: Path, dst: Path) -> None:
    """A copy of a mailbox (file or folder) with every In-Reply-To and References header taken out."""
    files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file() and not p.is_symlink()]
    for path in files:
        target = dst / (path.name if src.is_file() else path.relative_to(src))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_THREADING.sub(b"", path.read_bytes()))


def run_mailbox(path: Path, me: str, strip: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIPO_HOME"] = str(Path(tmp) / "home")
        result = _import([path], me)
        if strip:
            copy = Path(tmp) / "stripped" / path.name
            _without_threading_headers(path, copy if path.is_dir() else copy.parent)
            os.environ["MIPO_HOME"] = str(Path(tmp) / "home2")
            bare = _import([copy], me)
    s = result["summary"]
    print(f"{path}: {s.added} files added, {len(s.skipped)} skipped, {s.ignored} ignored; {result['emails']} emails stored, "
          f"{result['own']} by {me}; import {result['seconds']:.1f} s")
    print(f"  the owner's replies ('Re:' …): {result['replies']}; linked {result['linked']} "
          f"({result['by_header']} by In-Reply-To/References, {result['linked'] - result['by_header']} by subject and quote)")
    print(f"  of those replies, bodies still holding a quote marker after splitting: {result['left_quotes']}")
    for line in s.lines()[1:8]:
        print("  " + line)
    if strip:
        same = sum(1 for r, o in bare["links"].items() if result["links"].get(r) == o)
        print(f"  the same mailbox without In-Reply-To/References: {bare['linked']} of {bare['replies']} replies linked, "
              f"{same} to the message the headers named, {bare['linked'] - same} elsewhere "
              f"(of {len(result['links'])} linked with headers)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mailbox", type=Path, help="a real mailbox folder or file to measure instead of crafted threads")
    ap.add_argument("--me", help="the mailbox owner's addresses, comma-separated (with --mailbox)")
    ap.add_argument("--strip-headers", action="store_true",
                    help="with --mailbox: import it again without In-Reply-To/References and compare the links")
    ap.add_argument("--per-style", type=int, default=20, help="crafted threads per quote style")
    ap.add_argument("--site", action="append", default=[], help="a folder of installed reply parsers, appended to sys.path")
    args = ap.parse_args()
    sys.path.extend(args.site)
    if args.mailbox:
        if not args.me:
            ap.error("--mailbox needs --me ADDRESS")
        run_mailbox(args.mailbox, args.me, args.strip_headers)
    else:
        run_crafted(args.per_style)


if __name__ == "__main__":
    main()
