"""Context import throughput and retrieval latency.

- 10,000 generated Markdown notes: files/s and MB/s
- a ~100 MB generated mbox: messages/s and MB/s
- retrieval: top-8 search over the 10,000 notes, median and p95 latency (goal: p95 < 20 ms)
- one 20 MB note on a single line (goal: under 5 s; chunking used to be quadratic in it)

Run: .venv/bin/python benchmarks/import_store.py
"""

from __future__ import annotations

import mailbox
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("sea kelp urchin boat sourdough starter choir alto rehearsal fjord harbour survey quadrat density "
         "paint varnish mast keel rope bread flour rye oven proof crumb crust tenor bass score bar tempo "
         "rain fog wind ferry bicycle coffee letter sister visit summer winter light lamp garden").split()


STOPWORDS = ("the and of a to in is it that was for on with as at by from this we be or are have not but "
             "had they you i she he her his my our their an will would there what so if about which when").split()


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """A Zipf-distributed vocabulary, as in real writing: stop words, topic words, a long tail."""
    syllables = "ka lo mi ne ru sa te vi bo da fe gu ha ji ko lu ma no pe qui ri so tu ve wa xo ya ze".split()
    tail = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(9000)})
    words = STOPWORDS + WORDS + tail
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    total = 0.0
    cumulative = []
    for w in weights:
        total += w
        cumulative.append(total)
    return words, cumulative


VOCAB: tuple[list[str], list[float]] = ([], [])


def sentence(rng: random.Random) -> str:
    words, cumulative = VOCAB
    return " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(8, 18))).capitalize() + "."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))


def make_notes(folder: Path, n: int, rng: random.Random) -> list[str]:
    rare = []
    for i in range(n):
        sub = folder / f"folder-{i % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        word = f"zq{i:05d}x"
        rare.append(word)
        body = "\n\n".join(paragraph(rng) for _ in range(rng.randint(1, 4)))
        (sub / f"note-{i:05d}.md").write_text(f"# Note {i}\n\n{body} Marker {word}.\n")
    return rare


def make_mbox(path: Path, target_bytes: int, rng: random.Random) -> int:
    box = mailbox.mbox(str(path), create=True)
    n = 0
    box.lock()
    while path.stat().st_size < target_bytes if path.exists() else True:
        for _ in range(500):
            msg = EmailMessage()
            msg["From"] = "ada@example.org" if n % 3 == 0 else f"person{n % 97}@example.net"
            msg["To"] = "someone@example.net"
            msg["Subject"] = f"Message {n}: " + sentence(rng)[:40]
            msg["Message-ID"] = f"<bench-{n}@example.org>"
            if n % 3 == 0 and n:
                msg["In-Reply-To"] = f"<bench-{n - 1}@example.org>"
            msg.set_content("\n\n".join(paragraph(rng) for _ in range(rng.randint(2, 8))) + "\n\n-- \nAda\n")
            box.add(msg)
            n += 1
        box.flush()
    box.unlock()
    box.close()
    return n


def main() -> None:
    rng = random.Random(0)
    VOCAB[0].extend(_vocabulary(rng)[0])
    VOCAB[1].extend(_vocabulary(random.Random(0))[1])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MIPO_HOME"] = str(tmp / "home")
        from mipo_local.context import ContextStore, import_paths
        from mipo_local.settings import UserSettings

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
        settings = UserSettings(addresses=("ada@example.org",))
        notes = tmp / "notes"
        rare = make_notes(notes, 10_000, rng)
        size = sum(p.stat().st_size for p in notes.rglob("*.md"))
        with ContextStore(tmp / "notes.sqlite3") as store:
            t = time.perf_counter()
            summary = import_paths([notes], store=store, settings=settings)
            dt = time.perf_counter() - t
            print(f"notes: {summary.added} files, {size / 1e6:.1f} MB in {dt:.1f} s: "
                  f"{summary.added / dt:.0f} files/s, {size / 1e6 / dt:.2f} MB/s")
            t = time.perf_counter()
            again = import_paths([notes], store=store, settings=settings)
            print(f"notes re-import (nothing changed): {again.unchanged} unchanged in {time.perf_counter() - t:.1f} s")

            def measure(label: str, queries: list[str]) -> None:
                latencies = []
                for q in queries:
                    t = time.perf_counter()
                    hits = store.search(q, 8)
                    latencies.append((time.perf_counter() - t) * 1000)
                    assert hits
                latencies.sort()
                p95 = latencies[int(len(latencies) * 0.95)]
                print(f"retrieval top-8, {label} ({len(queries)} queries): median {statistics.median(latencies):.2f} ms, "
                      f"p95 {p95:.2f} ms")

            print(f"retrieval over {store.counts()['notes']} documents ({store.counts()['chunks']} chunks), goal p95 < 20 ms:")
            measure("prompt-like sentences", [sentence(rng) + " " + sentence(rng) for _ in range(400)])
            measure("a rare word among common ones", [f"{sentence(rng)} {rng.choice(rare)}" for _ in range(300)])
            top = VOCAB[0][: len(STOPWORDS) + 20]
            measure("worst case: 12 of the most frequent words only", [" ".join(rng.sample(top, 12)) for _ in range(100)])

        one_line = tmp / "one-line" / "long.md"
        one_line.parent.mkdir()
        parts, size = [], 0
        while size < 20_000_000:
            piece = paragraph(rng) + " "
            parts.append(piece)
            size += len(piece.encode())
        one_line.write_text("".join(parts)[:20_000_000].rstrip())
        with ContextStore(tmp / "one-line.sqlite3") as store:
            t = time.perf_counter()
            summary = import_paths([one_line.parent], store=store, settings=settings)
            dt = time.perf_counter() - t
            assert summary.added == 1, summary.lines()
            print(f"one {one_line.stat().st_size / 1e6:.0f} MB note on a single line: {dt:.1f} s "
                  f"({store.counts()['chunks']} chunks; goal < 5 s)")

        mbox = tmp / "big.mbox"
        t = time.perf_counter()
        n = make_mbox(mbox, 100 * 1024 * 1024, rng)
        print(f"(generated a {mbox.stat().st_size / 1e6:.0f} MB mbox of {n} messages in {time.perf_counter() - t:.0f} s)")
        with ContextStore(tmp / "mail.sqlite3") as store:
            t = time.perf_counter()
            summary = import_paths([mbox], store=store, settings=settings)
            dt = time.perf_counter() - t
            counts = store.counts()
            print(f"mbox: {counts['emails']} messages, {mbox.stat().st_size / 1e6:.0f} MB in {dt:.1f} s: "
                  f"{counts['emails'] / dt:.0f} messages/s, {mbox.stat().st_size / 1e6 / dt:.2f} MB/s "
                  f"({counts['reply_links']} reply links)")


if __name__ == "__main__":
    main()
