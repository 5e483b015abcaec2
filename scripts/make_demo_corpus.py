#!/usr/bin/env python3
"""Build the fictional demo mailboxes of "Ada Lindqvist" from one file per message.

Ada is an invented person (a marine biologist in Bergen); every name, address and fact in her mail is
fiction, and every address uses an ``example.*`` domain. Her notes are already files
(``mipo_local/demo/notes/``); her mail is written here, one message per file, in ``scripts/demo_mail/``
(see the README there), and this script turns it into the mailboxes the app imports:

* ``mipo_local/demo/mail/ada.mbox`` -- the whole mailbox, in date order
* ``mipo_local/demo/mail/sent.mbox`` -- only the messages Ada sent

The build is deterministic (Message-IDs numbered in date order, fixed MIME boundaries and mbox "From "
lines), so running it twice gives byte-identical output. Standard library only::

    .venv/bin/python scripts/make_demo_corpus.py
"""

from __future__ import annotations

import datetime as dt
import html
import mailbox
import pathlib
import re
import sys
import time
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "scripts" / "demo_mail"
MAIL_DIR = ROOT / "mipo_local" / "demo" / "mail"
sys.path.insert(0, str(ROOT))
from mipo_local.demo import DEMO_ADDRESSES  # noqa: E402  (Ada's own addresses: a light import)

USER_AGENT = "Thunderbird-ish/1.0 (fictional)"
UTC = dt.timezone.utc
CET, CEST = dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2))
DST_START = dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def parse_local(stamp: str) -> dt.datetime:
    """Europe/Oslo local time (2026 rules) from "YYYY-MM-DD HH:MM"."""
    naive = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M")
    winter = naive.replace(tzinfo=CET)
    return winter if winter < DST_START else naive.replace(tzinfo=CEST)


def parse_people(value: str) -> list[tuple[str, str]]:
    """("Name", "address") pairs from "Name <address>, Name <address>"."""
    return re.findall(r"\s*([^<,]+?) <([^>]+)>", value)


def read_message(path: pathlib.Path) -> dict:
    """A message file: "Field: value" lines, a blank line, the body (an .html beside it is its HTML)."""
    head, _, text = path.read_text(encoding="utf-8").partition("\n\n")
    fields = dict(line.split(": ", 1) for line in head.splitlines())
    spec = {"key": path.stem, "date": fields["Date"], "text": text, "cte": fields.get("Transfer-Encoding"),
            "fmt": fields.get("Format", "plain"), "legacy": fields.get("Charset") == "iso-8859-1",
            "list_id": fields.get("List-Id"), "reply_to_key": fields.get("In-Reply-To"),
            "quote": fields.get("Quote", "below-signature")}
    if spec["fmt"] not in ("plain", "html", "alternative"):
        raise ValueError(f"{path.name}: Format must be plain, html or alternative, not {spec['fmt']!r}")
    if "From" in fields:
        spec.update(frm=parse_people(fields["From"])[0], to=parse_people(fields["To"]), subject=fields["Subject"])
    if path.with_suffix(".html").exists():
        spec["html"] = path.with_suffix(".html").read_text(encoding="utf-8")
    if "Attachment" in fields:
        name = fields["Attachment"]
        spec["attachment"] = (name, (path.parent / name).read_text(encoding="utf-8"))
    return spec


def quote_block(when: dt.datetime, name: str, text: str) -> str:
    head = f"On {when:%a}, {when.day} {when:%b %Y} at {when:%H:%M}, {name} wrote:"
    quoted = [("> " + line) if line else ">" for line in text.rstrip("\n").split("\n")]
    return head + "\n" + "\n".join(quoted) + "\n"


def complete_reply(reply: dict, incoming: dict) -> None:
    """A reply file holds Ada's text and signature: it goes from the address the message came to, back
    to its sender, under "Re: " its subject, with the message quoted below (or above) the signature."""
    reply["frm"] = next(p for p in incoming["to"] if p[1] in DEMO_ADDRESSES)
    reply["to"] = [incoming["frm"]]
    subject = incoming["subject"]
    reply["subject"] = subject if subject.lower().startswith("re:") else "Re: " + subject
    quote = quote_block(parse_local(incoming["date"]), incoming["frm"][0], incoming["text"])
    own, delimiter, signature = reply["text"].rpartition("\n-- \n")
    if not delimiter:
        reply["text"] = reply["text"] + "\n" + quote
    elif reply["quote"] == "below-signature":
        reply["text"] = own + "\n-- \n" + signature + "\n" + quote
    else:
        reply["text"] = own + "\n" + quote + "\n-- \n" + signature


def domain_of(addr: str) -> str:
    return addr.rsplit("@", 1)[1]


def is_ascii(s: str) -> bool:
    return all(ord(c) < 128 for c in s)


def text_to_html(text: str) -> str:
    out = []
    for para in text.strip().split("\n\n"):
        lines = [re.sub(r"(https?://\S+)", r'<a href="\1">\1</a>', html.escape(line, quote=False))
                 for line in para.split("\n")]
        out.append("<p>" + "<br>\n".join(lines) + "</p>")
    return "<html><body>\n" + "\n".join(out) + "\n</body></html>\n"


def _common_headers(msg: Message, spec: dict, when: dt.datetime) -> None:
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = spec["message_id"]
    if spec.get("in_reply_to"):
        msg["In-Reply-To"] = spec["in_reply_to"]
        msg["References"] = spec["in_reply_to"]
    if spec["list_id"]:
        msg["List-Id"] = spec["list_id"]
        msg["List-Unsubscribe"] = f"<mailto:unsubscribe@{domain_of(spec['frm'][1])}>"
        msg["Precedence"] = "bulk"


def build_legacy(spec: dict, when: dt.datetime) -> Message:
    """compat32 message: iso-8859-1 body (quoted-printable), RFC 2047 iso-8859-1 headers."""
    subtype = "html" if spec["fmt"] == "html" else "plain"
    msg = MIMEText(spec["html"] if subtype == "html" else spec["text"], subtype, "iso-8859-1")
    name, addr = spec["frm"]
    msg["From"] = f"{name if is_ascii(name) else Header(name, 'iso-8859-1').encode()} <{addr}>"
    msg["To"] = ", ".join(formataddr(p) for p in spec["to"])
    subject = spec["subject"]
    msg["Subject"] = subject if is_ascii(subject) else Header(subject, "iso-8859-1").encode()
    _common_headers(msg, spec, when)
    return msg


def build(spec: dict) -> Message:
    when = parse_local(spec["date"])
    if spec["legacy"]:
        msg = build_legacy(spec, when)
    else:
        msg = EmailMessage(policy=policy.default)
        msg["From"] = formataddr(spec["frm"])
        msg["To"] = ", ".join(formataddr(p) for p in spec["to"])
        msg["Subject"] = spec["subject"]
        _common_headers(msg, spec, when)
        if spec["frm"][1] in DEMO_ADDRESSES:
            msg["User-Agent"] = USER_AGENT
        text, cte = spec["text"], spec["cte"]
        if cte is None and not is_ascii(text):
            cte = "quoted-printable"
        if spec["fmt"] == "html":
            msg.set_content(spec.get("html") or text_to_html(text), subtype="html", cte=cte)
        else:
            msg.set_content(text, cte=cte)
        if spec["fmt"] == "alternative":
            html_body = spec.get("html") or text_to_html(text)
            msg.add_alternative(html_body, subtype="html", cte=None if is_ascii(html_body) else "quoted-printable")
        if spec.get("attachment"):
            filename, data = spec["attachment"]
            msg.add_attachment(data, subtype="plain", filename=filename)
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_mipo_demo_{spec['number']:03d}_{i}")
    msg.set_unixfrom(f"From {spec['frm'][1]} {time.asctime(when.astimezone(UTC).timetuple())}")
    return msg


def collect_specs(source: pathlib.Path = SOURCE_DIR) -> list[dict]:
    """Every message file, in date order, numbered, with replies completed and wired to their message."""
    specs = {path.stem: read_message(path) for path in source.glob("*.txt")}
    for spec in specs.values():
        if spec["reply_to_key"]:
            complete_reply(spec, specs[spec["reply_to_key"]])
    ordered = sorted(specs.values(), key=lambda s: (parse_local(s["date"]), s["key"]))
    for n, spec in enumerate(ordered, start=1):
        spec["number"] = n
        spec["message_id"] = f"<msg-{n:03d}@{domain_of(spec['frm'][1])}>"
    for spec in ordered:
        if spec["reply_to_key"]:
            spec["in_reply_to"] = specs[spec["reply_to_key"]]["message_id"]
    return ordered


def write_mbox(path: pathlib.Path, messages: list[Message]) -> None:
    for p in (path, path.with_name(path.name + ".lock")):
        p.unlink(missing_ok=True)
    box = mailbox.mbox(str(path), create=True)
    try:
        for m in messages:
            box.add(m)
        box.flush()
    finally:
        box.close()


def main(out_dir: pathlib.Path = MAIL_DIR) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = [(s, build(s)) for s in collect_specs()]
    sent = [m for s, m in built if s["frm"][1] in DEMO_ADDRESSES]
    write_mbox(out_dir / "ada.mbox", [m for _, m in built])
    write_mbox(out_dir / "sent.mbox", sent)
    print(f"wrote {len(built)} messages to {out_dir / 'ada.mbox'}")
    print(f"wrote {len(sent)} messages to {out_dir / 'sent.mbox'}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else MAIL_DIR)
