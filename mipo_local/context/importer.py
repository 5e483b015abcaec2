"""Import the user's writing into the context store, read-only, idempotently, one transaction per file."""

from __future__ import annotations

import collections
import email.parser
import email.policy
import email.utils
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..addresses import normalize_address, unspell_at
from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..settings import UserSettings, load_settings, save_settings
from .documents import ParsedDocument
from .files import digest_and_size, is_compressed, iter_lines, open_regular, os_reason, read_file, read_head, unpack
from .mail import is_maildir, maildir_messages, message_locator, parse_message, sniff_mail
from .mbox_stream import PARALLEL_MIN_BYTES, MailboxStream, default_workers
from .notes import parse_note
from .outlook import parse_msg, pst_messages
from .store import ContextStore
from .text import Unreadable, for_terminal, fs_text
from .walk import Item, Skip, source_kind, walk


@dataclass
class ImportSummary:
    added: int = 0           # files imported for the first time
    updated: int = 0         # files whose content changed
    unchanged: int = 0
    removed: int = 0         # files gone from a re-imported source
    ignored: int = 0         # files of other types (attachments, images …)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    ignored_files: list[tuple[str, str]] = field(default_factory=list)   # (path, what it is)
    files_seen: int = 0
    bytes_read: int = 0
    documents_changed: int = 0
    documents_removed: int = 0
    detected_addresses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # how the sources asked for were taken

    def lines(self, *, verbose: bool = False, change_addresses: str = "change them with --me",
              list_all: Optional[str] = "import --verbose lists every skipped and ignored file") -> list[str]:
        """The summary for a terminal: counts, then skipped and ignored files grouped by reason
        (with `verbose`, every one of them). Paths and reasons are printable whatever they hold.
        `change_addresses` and `list_all` say how to do so where it is shown (the app has its own words)."""
        out = [f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.skipped)} skipped"
               + (f", {self.ignored} ignored" if self.ignored else "")
               + (f", {self.removed} removed" if self.removed else "")
               + f" ({self.documents_changed} documents stored, {self.bytes_read / 1e6:.1f} MB read)"]
        out += [f"  {_printable(note)}" for note in self.notes]
        if self.detected_addresses:
            out.append(f"your addresses (from a Sent mailbox): {', '.join(self.detected_addresses)} — {change_addresses}")
        for verb, entries in (("skipped", self.skipped), ("ignored", self.ignored_files)):
            if verbose:
                out += [f"  {verb} {_printable(path)}: {_printable(reason)}" for path, reason in entries]
                continue
            by_reason = collections.defaultdict(list)
            for path, reason in entries:
                by_reason[reason].append(path)
            for reason, paths in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                example = _printable(paths[0]) + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
                out.append(f"  {verb} {len(paths)} ({_printable(reason)}): {example}")
        if list_all and not verbose and (len(self.skipped) > 1 or self.ignored_files):
            out.append(f"  ({list_all})")
        return out


def _printable(text: str) -> str:
    return for_terminal(text, single_line=True)


def _parse(item: Item, raw: bytes, mtime: float) -> tuple[list, list[tuple[str, str]]]:
    """A file's documents, and (where, why) for each message of a mailbox that could not be used."""
    if item.kind == "note":
        name = item.path.with_suffix("") if is_compressed(item.path) else item.path   # notes.md.gz: a .md note
        return [parse_note(name, raw, mtime=mtime)], []
    if item.kind in ("eml", "maildir", "mh"):
        return [parse_message(raw, fallback_id=message_locator(raw))], []
    if item.kind == "msg":
        return [parse_msg(raw, fallback_id=message_locator(raw))], []
    problems: list[tuple[str, str]] = []
    docs = list(_mailbox_documents(item, pst_messages(raw), problems))
    return docs, problems


def _mailbox_documents(item: Item, messages, problems: list[tuple[str, str]]):
    """The documents of a mailbox's messages (raw bytes, parsed documents or an Unreadable each),
    in order; (where, why) added to `problems` for each message that cannot be used. Unreadable
    at the end when not one message could be used."""
    count = 0
    for n, message in enumerate(messages, 1):
        try:
            if isinstance(message, Unreadable):
                raise message
            yield message if isinstance(message, ParsedDocument) else \
                parse_message(message, fallback_id=message_locator(message))
            count += 1
        except Unreadable as exc:
            problems.append((f"{item.path} (message {n})", str(exc)))
    if not count:
        reason = collections.Counter(r for _, r in problems).most_common(1)[0][0] if problems else "no messages"
        raise Unreadable(f"malformed mbox ({reason})" if item.kind == "mbox" else
                         f"no readable message in this Outlook file ({reason})")


# Looking for the user's addresses reads only mail headers, and no more than this of any file.
SENT_SCAN_BYTES = 64 * 1024 * 1024
SENT_SCAN_MESSAGES = 5000


def _mbox_senders(path: Path) -> list[str]:
    """The From header of each message of an mbox, read line by line (never the file whole)."""
    senders, in_headers, current = [], False, None
    for line in iter_lines(path, SENT_SCAN_BYTES):
        line = line.rstrip(b"\r")
        if line.startswith(b"From ") and not in_headers:
            in_headers, current = True, None
            continue
        if not in_headers:
            continue
        if not line:
            in_headers = False
            if current is not None:
                senders.append(current)
                if len(senders) >= SENT_SCAN_MESSAGES:
                    break
        elif line.lower().startswith(b"from:"):
            current = line[5:].decode("utf-8", "replace")
    return senders


def sender_counts(path: Path) -> collections.Counter:
    """From addresses of a mailbox (headers only, bounded reads; anything that is not mail counts nothing)."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    counts: collections.Counter = collections.Counter()
    try:
        if path.is_dir():
            senders = []
            maildir = _is_maildir(path)        # once: it looks into the folder's cur/ and new/
            for n, message in enumerate(maildir_messages(path) if maildir else _folder_files(path)):
                if n >= SENT_SCAN_MESSAGES:
                    break
                try:
                    if maildir or sniff_mail(read_head(message)) == "eml":
                        senders.append(str(parser.parsebytes(read_head(message, 64 * 1024)).get("From", "")))
                except Unreadable:
                    continue
        else:
            kind = sniff_mail(read_head(path))
            if kind == "mbox":
                senders = _mbox_senders(path)
            elif kind == "eml":
                senders = [str(parser.parsebytes(read_head(path, 64 * 1024)).get("From", ""))]
            else:
                return counts
        for sender in senders:
            address = normalize_address(email.utils.parseaddr(unspell_at(sender))[1])
            if "@" in address:
                counts[address] += 1
    except (OSError, Unreadable, ValueError):
        pass
    return counts


_SENT = re.compile(r"(?<![a-z])(sent(mail|items)?|gesendet\w*|envoy\w*|skickat\w*|sendt\w*|verzonden\w*|"
                   r"inviat\w*|enviad\w*)(?![a-z])", re.I)


def is_sent_name(name: str) -> bool:
    """A mailbox or folder name that says it holds sent mail: Sent, Sent Items, sent_items,
    _sent_mail, Gesendet, Éléments envoyés … (a word, not a part of one: not 'presentations')."""
    return _SENT.search(name) is not None


def _folder_files(folder: Path):
    """The visible regular files directly in a folder (an MH or numbered-file mail folder), in name order."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def suggest_user_addresses(paths: Sequence[Path]) -> list[str]:
    """The senders of any "Sent" mailbox among `paths` (an mbox file, or a Maildir, MH or other
    folder of message files), most frequent
    first: everything in a Sent mailbox is the user's, so every address that sent a tenth of it (or
    the most frequent one) is taken as theirs."""
    counts: collections.Counter = collections.Counter()
    for root in paths:
        candidates = [root] if is_sent_name(root.name) else []
        if _is_dir(root):          # a Maildir too: its Maildir++ folders (.Sent) are in it
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):   # errors: skipped
                here = Path(dirpath)
                for name in dirnames + filenames:
                    if is_sent_name(name):
                        candidates.append(here / name)
        for path in candidates:
            if _is_regular(path) or (_is_dir(path) and not path.is_symlink()):
                counts.update(sender_counts(path))
    if not counts:
        return []
    total = sum(counts.values())
    ranked = counts.most_common()
    return [ranked[0][0]] + [a for a, n in ranked[1:] if n >= 0.1 * total]


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _is_maildir(path: Path) -> bool:
    try:
        return is_maildir(path)
    except OSError:
        return False


def import_paths(
    paths: Sequence["str | Path"],
    *,
    store: Optional[ContextStore] = None,
    settings: Optional[UserSettings] = None,
    progress: Optional[ProgressCallback] = None,
    workers: Optional[int] = None,
) -> ImportSummary:
    """Import notes folders, vaults, mbox/.eml files and Maildir folders into the context store.

    Every path must exist (MipoError otherwise, before anything is written). Each file is imported
    in its own transaction: an interruption loses at most the file being imported, and running the
    import again finishes the job. The user's files are only ever opened for reading.

    An mbox is read as a stream (memory bounded whatever its size). `workers`: processes that
    parse an mbox's messages while this one writes the store; None: one per core (two at most)
    for a mailbox of 8 MB or more, else none; 1: everything in this process. The store's
    contents are the same either way.
    """
    roots = []
    for p in paths:
        path = Path(p).expanduser()
        try:
            exists = path.exists()
        except PermissionError:
            raise MipoError(f"{p} cannot be reached: a folder on its path does not let you in (permission denied); "
                            "ask for access to it (chmod +x on its folders) or import a copy you can read") from None
        if not exists:
            raise MipoError(f"{p} does not exist; give a folder of notes, an Obsidian vault, an mbox, .eml, .msg or .pst file, or a mail folder (Maildir, MH)")
        roots.append(path.absolute())
    if not roots:
        raise MipoError("nothing to import; give at least one folder or mail file")
    settings = settings or load_settings()
    summary = ImportSummary()
    if not settings.addresses:
        detected = suggest_user_addresses(roots)
        if detected:
            settings = settings.with_addresses(detected)
            save_settings(settings)
            summary.detected_addresses = detected
    own_store = store is None
    store = store or ContextStore()
    try:
        for root in roots:
            root, inner, is_new = _nested_sources(root, store, summary)
            _import_root(root, store, settings, summary, progress, workers, inner, is_new)
        if settings.addresses:   # also re-decides earlier imports when the addresses changed
            store.set_user_addresses(settings.addresses)
        else:
            store.relink_replies()
    finally:
        if own_store:
            store.close()
    report(progress, "import", "done", done=summary.files_seen, total=summary.files_seen, finished=True,
           data=_progress_data(summary))
    return summary


def _progress_data(summary: ImportSummary) -> dict:
    return {"files_seen": summary.files_seen, "imported": summary.added + summary.updated,
            "skipped": len(summary.skipped), "bytes": summary.bytes_read}


def _is_dir(path: Path) -> bool:
    """Whether `path` is a folder; False where it cannot be reached (a folder above it not entered)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _nested_sources(root: Path, store: ContextStore, summary: ImportSummary) -> tuple[Path, list[str], bool]:
    """A source is stored once: a path inside a source imported before is that source imported again,
    and the sources imported before inside a new one stay theirs. (the root to import, what is left
    out of it as keys relative to it, whether it is a new source)"""
    real = Path(os.path.realpath(root))
    held = [Path(s.path) for s in store.sources()]
    around = [s for s in held if s != real and s in real.parents and _is_dir(s)]
    outer = max(around, key=lambda s: len(s.parts)) if around and real not in held else None   # the innermost
    if outer is not None:
        summary.notes.append(f"{root} is in {outer}, imported before: {outer} was imported again")
        root = real = outer
    inner = sorted(s.relative_to(real).as_posix() for s in held if s != real and real in s.parents)
    for key in inner:
        summary.notes.append(f"{real / key} stays a source of its own (imported before), left out of {real}")
    return root, inner, real not in held


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + "/") for p in prefixes)


def _import_root(root: Path, store: ContextStore, settings: UserSettings, summary: ImportSummary,
                 progress: Optional[ProgressCallback], workers: Optional[int], inner: Sequence[str] = (),
                 is_new: bool = False) -> None:
    source_id = store.add_source(fs_text(os.path.realpath(root)), source_kind(root))
    seen: set[str] = set()
    note_cap = int(settings.max_file_mb * 1024 * 1024)
    mailbox_cap = int(settings.max_mailbox_mb * 1024 * 1024)
    for item in walk(root):
        if inner and _under((item.key if isinstance(item, Item) else _key_of(item.path, root)), inner):
            continue                                          # another source's, imported on its own
        if isinstance(item, Skip):
            if item.ignored:
                summary.ignored += 1
                summary.ignored_files.append((str(item.path), item.reason))
            else:
                summary.skipped.append((str(item.path), item.reason))
            continue
        summary.files_seen += 1
        seen.add(item.key)
        report(progress, "import", _printable(item.key), done=summary.files_seen, data=_progress_data(summary))
        cap = mailbox_cap if item.kind in ("mbox", "pst") else note_cap
        if item.kind == "mbox":
            reason = _import_mailbox(item, source_id, store, settings, summary, cap, workers)
        else:
            reason = _import_file(item, source_id, store, settings, summary, cap)
        if reason:
            summary.skipped.append((str(item.path), reason))
    gone = [p for p in store.file_paths(source_id) if p not in seen]
    for path in gone:
        with store.transaction():
            store.remove_file(source_id, path)
        summary.removed += 1
    if is_new and not store.file_paths(source_id):     # nothing of it could be used (/dev/null, an empty folder)
        store.remove_source(str(source_id))
        summary.notes.append(f"nothing in {root} could be imported, so it is not kept as a source")
        return
    with store.transaction():
        store.mark_imported(source_id)


def _key_of(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return ""


def _to_read(item: Item, source_id: int, store: ContextStore, summary: ImportSummary,
             cap: int) -> tuple[bool, Optional[str], Optional[Any]]:
    """Whether the file must be read, and else the reason it is skipped (None: unchanged by its
    size and time); with the file's row in the store (None for a new file)."""
    try:
        st = os.stat(item.path)
    except OSError as exc:
        return False, os_reason(exc), None
    if st.st_size == 0:
        return False, "empty file", None
    if st.st_size > cap:
        return False, f"larger than the {cap / 1024 / 1024:.0f} MB limit (a setting)", None
    row = store.file_row(source_id, item.key)
    if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
        summary.unchanged += 1
        return False, None, row
    return True, None, row


def _same_content(row, digest: str, st: os.stat_result, store: ContextStore, summary: ImportSummary) -> bool:
    """The file holds what was imported before (only its time changed): noted, and True."""
    if row is None or row["sha256"] != digest:
        return False
    with store.transaction():
        store.touch_file(row["id"], st.st_size, st.st_mtime_ns)
    summary.unchanged += 1
    return True


def _import_mailbox(item: Item, source_id: int, store: ContextStore, settings: UserSettings,
                    summary: ImportSummary, cap: int, workers: Optional[int]) -> Optional[str]:
    """Import one mbox as a stream, in one transaction (an interruption leaves what was there
    before); returns the reason when it is skipped. Raises like `_import_file`."""
    read, reason, row = _to_read(item, source_id, store, summary, cap)
    if not read:
        return reason
    try:
        with open_regular(item.path) as fh:     # read-only, regular files only, at most `cap` bytes
            digest, size = digest_and_size(fh.fd, cap)
            summary.bytes_read += size
            if _same_content(row, digest, fh.stat, store, summary):
                return None
            if workers is None:
                workers = default_workers() if size >= PARALLEL_MIN_BYTES else 1
            problems: list[tuple[str, str]] = []
            with MailboxStream(fh.fd, size, compressed=is_compressed(item.path), cap=cap, workers=workers,
                               chunk_tokens=settings.chunk_tokens) as stream:
                with store.transaction():
                    changed, removed = store.replace_file(
                        source_id, item.key, item.kind, fh.stat.st_size, fh.stat.st_mtime_ns, digest,
                        _mailbox_documents(item, stream, problems),
                        user_addresses=settings.addresses, chunk_tokens=settings.chunk_tokens,
                    )
    except Unreadable as exc:
        return str(exc)
    summary.skipped.extend(problems)
    _count(summary, row, changed, removed)
    return None


def _count(summary: ImportSummary, row, changed: int, removed: int) -> None:
    summary.documents_changed += changed
    summary.documents_removed += removed
    if row is None:
        summary.added += 1
    else:
        summary.updated += 1


def _import_file(item: Item, source_id: int, store: ContextStore, settings: UserSettings,
                 summary: ImportSummary, cap: int) -> Optional[str]:
    """Import one file; returns the reason when it is skipped. Whatever the file holds, nothing
    raises from here but the store's own errors (busy, full) and an interruption."""
    read, reason, row = _to_read(item, source_id, store, summary, cap)
    if not read:
        return reason
    try:
        raw, st = read_file(item.path, cap)   # read-only, regular files only, at most `cap` bytes
    except Unreadable as exc:
        return str(exc)
    summary.bytes_read += len(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if _same_content(row, digest, st, store, summary):
        return None
    try:
        documents, problems = _parse(item, unpack(item.path, raw, cap), st.st_mtime)
    except Unreadable as exc:
        return str(exc)
    except RecursionError:
        return "could not be parsed (nested too deeply)"
    except Exception as exc:  # a parser's bug on odd input must cost this file, not the import
        return f"could not be parsed ({type(exc).__name__})"
    summary.skipped.extend(problems)
    with store.transaction():
        changed, removed = store.replace_file(
            source_id, item.key, item.kind, st.st_size, st.st_mtime_ns, digest, documents,
            user_addresses=settings.addresses, chunk_tokens=settings.chunk_tokens,
        )
    _count(summary, row, changed, removed)
    return None
