"""Context import throughput and retrieval latency.

- 10,000 generated Markdown notes: files/s and MB/s
- retrieval: top-8 search over the 10,000 notes, median and p95 latency (goal: p95 < 20 ms)
- one 20 MB note on a single line (goal: under 5 s; chunking used to be quadratic in it)
- a generated mbox (120 MB by default: with the notes, over 200,000 chunks), imported three ways,
  each in a child process of its own with a fresh store: the baseline (the code of commit
  BASELINE, before issue 15: the file read whole, one process), ours in one process (workers=1)
  and ours as the importer runs it (worker processes on a large mailbox). MB/s, messages/s and
  the peak RSS of the importer and its workers together (sampled from /proc every 20 ms).
- retrieval over that store with the notes added (≥ 200,000 chunks: a decade of mail), the same
  queries by the baseline's code and ours, each in a child process; whether both return the
  same chunks.
Ends with `ratio: X`: ours over the baseline, MB/s on the mbox.

Run: .venv/bin/python benchmarks/import_store.py [--mbox-mb 120] [--skip-notes] [--no-baseline] [--no-single]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the last commit before issue 15 touched the context code: the baseline's import and search
BASELINE = "9ac56cdc4cabdf972a8e69028b61f8a89dedb817"

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
    """An mbox of generated mail, written as mailbox.mbox + EmailMessage.set_content write it
    (quoted-printable UTF-8 text, ">From " escaped), directly: a 1 GB one in minutes, not an hour.
    Every third message is Ada's, answering the one before it."""
    from email import quoprimime

    n, size = 0, 0
    with open(path, "wb") as out:
        while size < target_bytes:
            body = "\n\n".join(paragraph(rng) for _ in range(rng.randint(2, 8))) + "\n\n-- \nAda\n"
            sender = "ada@example.org" if n % 3 == 0 else f"person{n % 97}@example.net"
            reply = f"In-Reply-To: <bench-{n - 1}@example.org>\n" if n % 3 == 0 and n else ""
            text = (f"From MAILER-DAEMON Sat Nov 28 01:33:38 2026\nFrom: {sender}\nTo: someone@example.net\n"
                    f"Subject: Message {n}: {sentence(rng)[:40]}\nMessage-ID: <bench-{n}@example.org>\n{reply}"
                    'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n'
                    f"MIME-Version: 1.0\n\n{quoprimime.body_encode(body)}\n\n")
            data = re.sub(r"(?m)^From (?!MAILER-DAEMON Sat Nov 28 01:33:38 2026$)", ">From ", text).encode()
            out.write(data)
            size += len(data)
            n += 1
    return n


# ------------------------------------------------------------------------- child processes

IMPORT_CHILD = """
import json, os, sys, time
from mipo_local.context import ContextStore, import_paths
from mipo_local.settings import UserSettings
box, store_file, workers = sys.argv[1], sys.argv[2], sys.argv[3]
kw = {} if workers == "auto" else {"workers": int(workers)}
with ContextStore(store_file) as store:
    t = time.perf_counter()
    import_paths([box], store=store, settings=UserSettings(addresses=("ada@example.org",)), **kw)
    dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt, **store.counts()}))
"""

SEARCH_CHILD = """
import json, sys, time
from mipo_local.context import ContextStore
store_file = sys.argv[1]
with open(sys.argv[2]) as fh:
    queries = json.load(fh)
out = {}
with ContextStore(store_file) as store:
    for label, qs in queries.items():
        for q in qs[:10]:                    # warm the page cache
            store.search(q, 8)
        times, hits = [], []
        for q in qs:
            t = time.perf_counter()
            found = store.search(q, 8)
            times.append((time.perf_counter() - t) * 1000)
            hits.append([h.chunk_id for h in found])
        out[label] = {"ms": times, "hits": hits}
print(json.dumps(out))
"""


def baseline_tree(tmp: Path) -> Path:
    """The package as it was at BASELINE, unpacked from git."""
    folder = tmp / "baseline"
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE, "mipo_local"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _tree_rss(pid: int) -> int:
    """RSS in bytes of a process and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(l.split()[1]) * 1024 for l in fh if l.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_child(code: str, args: list[str], package_root: Path, home: Path) -> tuple[dict, int]:
    """Run `code` with `package_root` first on the path; (its JSON answer, peak RSS of its tree)."""
    import threading

    env = {**os.environ, "PYTHONPATH": str(package_root), "MIPO_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=str(home.parent),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1]), peak[0]


# ------------------------------------------------------------------------------ sections

def notes_section(tmp: Path, rng: random.Random, settings, count: int) -> tuple[Path, list[str]]:
    from mipo_local.context import ContextStore, import_paths

    notes = tmp / "notes"
    rare = make_notes(notes, count, rng)
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
        print(f"retrieval over {store.counts()['notes']} documents ({store.counts()['chunks']} chunks), goal p95 < 20 ms:")
        for label, queries in make_queries(rng, rare).items():
            print(f"  {label} ({len(queries)} queries): {latency_text(time_queries(store, queries))}")
    return notes, rare


def make_queries(rng: random.Random, rare: list[str]) -> dict[str, list[str]]:
    top = VOCAB[0][: len(STOPWORDS) + 20]
    return {
        "prompt-like sentences": [sentence(rng) + " " + sentence(rng) for _ in range(400)],
        "a rare word among common ones": [f"{sentence(rng)} {rng.choice(rare)}" for _ in range(300)],
        "worst case: 12 of the most frequent words only": [" ".join(rng.sample(top, 12)) for _ in range(100)],
    }


def time_queries(store, queries: list[str]) -> list[float]:
    latencies = []
    for q in queries:
        t = time.perf_counter()
        hits = store.search(q, 8)
        latencies.append((time.perf_counter() - t) * 1000)
        assert hits
    return latencies


def latency_text(latencies: list[float]) -> str:
    latencies = sorted(latencies)
    return f"median {statistics.median(latencies):.2f} ms, p95 {latencies[int(len(latencies) * 0.95)]:.2f} ms"


def one_line_section(tmp: Path, rng: random.Random, settings) -> None:
    from mipo_local.context import ContextStore, import_paths

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


def mbox_section(tmp: Path, rng: random.Random, mbox_mb: float, baseline: "Path | None",
                 single: bool) -> tuple[Path, float, float]:
    """Import the mbox three ways; returns (ours' store, baseline MB/s, ours MB/s)."""
    mbox = tmp / "big.mbox"
    t = time.perf_counter()
    n = make_mbox(mbox, int(mbox_mb * 1e6), rng)
    mb = mbox.stat().st_size / 1e6
    print(f"(generated a {mb:.0f} MB mbox of {n} messages in {time.perf_counter() - t:.0f} s)")
    runs = ([("baseline (before issue 15: read whole, one process)", baseline, "auto")] if baseline else []) + \
        ([("ours, one process (workers=1)", ROOT, "1")] if single else []) + \
        [("ours (default: worker processes)", ROOT, "auto")]
    speeds = {}
    for i, (label, package, workers) in enumerate(runs):
        home = tmp / f"mbox-home-{i}"
        home.mkdir()
        store_file = home / "context.sqlite3"
        result, peak = run_child(IMPORT_CHILD, [str(mbox), str(store_file), workers], package, home)
        speeds[package, workers] = mb / result["seconds"]
        if i < len(runs) - 1:
            shutil.rmtree(home)          # the last store is kept, for retrieval
        print(f"mbox, {label}: {result['emails']} messages, {mb:.0f} MB in {result['seconds']:.1f} s: "
              f"{result['emails'] / result['seconds']:.0f} messages/s, {mb / result['seconds']:.2f} MB/s, "
              f"peak RSS {peak / 1e6:.0f} MB ({result['reply_links']} reply links, {result['chunks']} chunks)")
    mbox.unlink()
    return store_file, speeds.get((baseline, "auto"), 0.0), speeds[ROOT, "auto"]


def retrieval_section(tmp: Path, rng: random.Random, store_file: Path, notes: Path, rare: list[str], settings,
                      baseline: "Path | None") -> None:
    from mipo_local.context import ContextStore, import_paths

    with ContextStore(store_file) as store:
        import_paths([notes], store=store, settings=settings)
        counts = store.counts()
    queries = make_queries(rng, rare)
    query_file = tmp / "queries.json"
    query_file.write_text(json.dumps(queries))
    print(f"retrieval top-8 over the mail and the notes: {counts['chunks']} chunks "
          f"({counts['own_emails']} of the user's emails, {counts['notes']} notes), goal p95 < 20 ms:")
    results = {}
    for name, package in ([("baseline", baseline)] if baseline else []) + [("ours", ROOT)]:
        results[name], _ = run_child(SEARCH_CHILD, [str(store_file), str(query_file)], package, store_file.parent)
    for label in queries:
        line = "  ".join(f"{name}: {latency_text(r[label]['ms'])}" for name, r in results.items())
        same = ""
        if baseline:
            pairs = list(zip(results["baseline"][label]["hits"], results["ours"][label]["hits"]))
            equal = sum(a == b for a, b in pairs)
            shared = statistics.mean(len(set(a) & set(b)) / max(1, len(a)) for a, b in pairs)
            same = f"  (same chunks as the baseline: {equal}/{len(pairs)}; {shared:.0%} of its chunks among ours)"
        print(f"  {label}: {line}{same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbox-mb", type=float, default=120.0, help="size of the generated mbox (default 120)")
    parser.add_argument("--skip-notes", action="store_true", help="leave out the notes' import figures (the notes "
                        "are still made, for retrieval) and the one-line note")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the baseline (no ratio)")
    parser.add_argument("--notes", type=int, default=10_000, help="generated notes (default 10,000)")
    parser.add_argument("--no-single", action="store_true", help="leave out ours in one process (workers=1)")
    args = parser.parse_args()
    rng = random.Random(0)
    VOCAB[0].extend(_vocabulary(rng)[0])
    VOCAB[1].extend(_vocabulary(random.Random(0))[1])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MIPO_HOME"] = str(tmp / "home")
        from mipo_local.settings import UserSettings

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
        settings = UserSettings(addresses=("ada@example.org",))
        baseline = None if args.no_baseline else baseline_tree(tmp)
        if args.skip_notes:
            notes = tmp / "notes"
            rare = make_notes(notes, args.notes, rng)
        else:
            notes, rare = notes_section(tmp, rng, settings, args.notes)
            one_line_section(tmp, rng, settings)
        store_file, base_speed, our_speed = mbox_section(tmp, rng, args.mbox_mb, baseline, not args.no_single)
        retrieval_section(tmp, rng, store_file, notes, rare, settings, baseline)
        if baseline:
            print(f"ratio: {our_speed / base_speed:.2f}")


if __name__ == "__main__":
    main()
