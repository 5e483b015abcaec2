"""Email and notes fixtures written by the tests with the standard library."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.header import Header
from pathlib import Path

ME = "ada@example.org"


def plain(msg_id, sender, subject, body, *, to=ME, reply_to_id=None, date="Mon, 02 Mar 2026 09:00:00 +0100"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    if reply_to_id:
        msg["In-Reply-To"] = f"<{reply_to_id}@example.org>"
        msg["References"] = f"<{reply_to_id}@example.org>"
    msg.set_content(body)
    return msg


def alternative(msg_id, sender, subject, text, html):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ME, subject
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    msg["Date"] = "Tue, 03 Mar 2026 10:00:00 +0100"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def html_only(msg_id, sender, subject, html):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ME, subject
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    msg.set_content(html, subtype="html")
    return msg


def encoded(msg_id, body, *, cte, charset="utf-8"):
    """A body in quoted-printable or base64, with a latin-1 encoded From name and subject."""
    msg = MIMEMultipart()
    msg["From"] = f"{Header('Jørgen Håland', 'iso-8859-1').encode()} <jorgen@example.net>"
    msg["To"] = ME
    msg["Subject"] = Header("Smørbrød på fredag", "iso-8859-1").encode()
    msg["Message-ID"] = f"<{msg_id}@example.org>"
    part = MIMEText(body, "plain", charset)
    if cte == "base64":
        from email import encoders

        del part["Content-Transfer-Encoding"]
        part.set_payload(body.encode(charset))
        encoders.encode_base64(part)
    else:
        from email import charset as cs

        c = cs.Charset(charset)
        c.body_encoding = cs.QP
        part = MIMEText(body, "plain", c)
    msg.attach(part)
    attachment = MIMEText("attachment text that must not be imported", "plain")
    attachment.add_header("Content-Disposition", "attachment", filename="data.txt")
    msg.attach(attachment)
    return msg


def thread_messages():
    """An incoming message, the user's reply (quoted text + signature), and other mail."""
    incoming = plain("in-1", "Bob Berg <bob@example.net>", "Choir on Thursday?",
                     "Hi Ada,\nare you coming to choir practice on Thursday? We start the Brahms.\nBob")
    reply = plain("re-1", f"Ada Lind <{ME}>", "Re: Choir on Thursday?",
                  "Yes! I will bring the alto scores and my tuning fork named Gustav.\n\n"
                  "On Mon, 2 Mar 2026 at 09:00, Bob Berg <bob@example.net> wrote:\n"
                  "> Hi Ada,\n> are you coming to choir practice on Thursday?\n\n-- \nAda Lind\nBergen",
                  to="bob@example.net", reply_to_id="in-1")
    return [
        incoming,
        reply,
        alternative("alt-1", "News <news@example.com>", "Weekly news", "Plain version of the news.",
                    "<html><body><p>HTML version of <b>the news</b>.</p><p>Second paragraph</p></body></html>"),
        html_only("html-1", "Shop <shop@example.com>", "Your order",
                  "<html><head><style>p{color:red}</style></head><body><p>Order&nbsp;42 shipped.</p>"
                  "<table><tr><td>Item</td><td>Price</td></tr><tr><td>Kayak paddle</td><td>90</td></tr></table></body></html>"),
        encoded("qp-1", "Vi spiser smørbrød og blåbærpai på fredag. Ære være kokken!", cte="qp"),
        encoded("b64-1", "Base64 body: the façade of the café is naïve.", cte="base64", charset="iso-8859-1"),
    ]


def write_mbox(path: Path, messages) -> Path:
    box = mailbox.mbox(str(path), create=True)
    for msg in messages:
        box.add(msg)
    box.flush()
    box.close()
    return path


def write_maildir(path: Path, messages) -> Path:
    box = mailbox.Maildir(str(path), create=True)
    for msg in messages:
        box.add(msg)
    return path


def write_notes(folder: Path) -> Path:
    (folder / "journal").mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text("# Garden plans\n\nPlant the zucchini by the south fence.\n\nWater twice a week.\n")
    (folder / "journal" / "2026-03-01.markdown").write_text("Walked to Fløyen with Karin. Fog all day.\n")
    (folder / "ideas.txt").write_text("Idea: a sourdough starter called Bjørn.\n")
    (folder / "reading.org").write_text("#+TITLE: Reading list\n* Novels\nThe Overstory by Richard Powers\n")
    return folder


def write_many_notes(folder: Path, n: int) -> Path:
    """`n` notes of about 400 words each, `note-0000.md` on: enough for an import to take a while."""
    folder.mkdir()
    for i in range(n):
        (folder / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n" + f"Paragraph about topic{i} and the sea. " * 40)
    return folder


def write_vault(folder: Path) -> Path:
    (folder / "Research").mkdir(parents=True, exist_ok=True)
    (folder / ".obsidian").mkdir(exist_ok=True)
    (folder / ".trash").mkdir(exist_ok=True)
    (folder / ".obsidian" / "app.json").write_text('{"theme": "dark"}')
    (folder / ".trash" / "deleted.md").write_text("discarded draft, must not be imported")
    (folder / "Research" / "Kelp survey.md").write_text(
        "---\ntitle: Kelp survey April\ntags: [kelp, fieldwork]\ncreated: 2026-04-02\n---\n"
        "Counted 14 urchins per square metre at [[Sites/Hjeltefjorden|the north site]].\n\n"
        "See [[Methods]] and ![[quadrat.png]] and ![[Methods]].\n"
    )
    (folder / "Methods.md").write_text("---\ntags: methods\n---\n# Methods\n\nQuadrats of 0.25 m², photographed.\n")
    (folder / "quadrat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    return folder
