"""Import the user's writing into the context store, read-only, idempotently, one transaction per file."""

from __future__ import annotations

import collections
import email.parser
import email.policy
import email.utils
import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..settings import UserSettings, load_settings, save_settings
from .mail import is_maildir, looks_like_mbox, maildir_key, maildir_messages, message_locator, parse_message, split_mbox
from .notes import NOTE_EXTENSIONS, parse_note
from .store import ContextStore
from .text import Unreadable


@dataclass
class ImportSummary:
    added: int = 0           # files imported for the first time
    updated: int = 0         # files whose content changed
    unchanged: int = 0
    removed: int = 0         # files gone from a re-imported source
    ignored: int = 0         # files of other types (attachments, images …)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    files_seen: int = 0
    bytes_read: int = 0
    documents_changed: int = 0
    documents_removed: int = 0
    detected_addresses: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.skipped)} skipped"
               + (f", {self.removed} removed" if self.removed else "")
               + f" ({self.documents_changed} documents stored, {self.bytes_read / 1e6:.1f} MB read)"]
        if self.detected_addresses:
            out.append(f"your addresses (from a Sent mailbox): {', '.join(self.detected_addresses)} — change them with --me")
        for path, reason in self.skipped:
            out.append(f"  skipped {path}: {reason}")
        return out


@dataclass(frozen=True)
class _Item:
    path: Path       # the file on disk
    key: str         # its stable name in the store, relative to the source
    kind: str        # note | eml | mbox | maildir


@dataclass(frozen=True)
class _Skip:
    path: Path
    reason: str


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _classify(path: Path, root_real: Path) -> "Optional[_Item | _Skip | str]":
    """What a file is, or why it is skipped; None for other file types (ignored)."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _Skip(path, "symlink loop")
            return _Skip(path, "broken symlink")
        if not _inside(Path(os.path.realpath(path)), root_real):
            return _Skip(path, "symlink to a place outside the chosen folder (not followed)")
    suffix = path.suffix.lower()
    if suffix in NOTE_EXTENSIONS:
        return "note"
    if suffix == ".eml":
        return "eml"
    if suffix == ".mbox" or (suffix == "" and path.name.lower() in ("mbox", "inbox", "sent", "sent mail")):
        return "mbox"
    if suffix == "":
        try:
            with open(path, "rb") as fh:
                if looks_like_mbox(fh.read(5)):
                    return "mbox"
        except OSError:
            return None
    return None


def _walk(root: Path) -> Iterator["_Item | _Skip"]:
    root_real = Path(os.path.realpath(root))
    if root.is_file() or (root.is_symlink() and not root.is_dir()):
        kind = _classify(root, Path(os.path.realpath(root)).parent)
        if isinstance(kind, _Skip):
            yield kind
        elif kind is None:
            yield _Skip(root, "not a notes file, .eml, mbox or Maildir")
        else:
            yield _Item(root, root.name, kind)
        return
    if is_maildir(root):
        for msg in maildir_messages(root):
            yield _Item(msg, maildir_key(msg), "maildir")
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = here / name
            if name.startswith("."):          # .obsidian, .trash, .git …
                continue
            if sub.is_symlink():
                yield _Skip(sub, "symlinked folder (not followed)")
                continue
            if is_maildir(sub):
                for msg in maildir_messages(sub):
                    yield _Item(msg, f"{sub.relative_to(root).as_posix()}/{maildir_key(msg)}", "maildir")
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            kind = _classify(path, root_real)
            if isinstance(kind, _Skip):
                yield kind
            elif kind is not None:
                yield _Item(path, path.relative_to(root).as_posix(), kind)
            else:
                yield _Skip(path, "")  # another file type: counted as ignored


def _source_kind(root: Path) -> str:
    if root.is_dir():
        return "maildir" if is_maildir(root) else "folder"
    return {".eml": "eml", ".mbox": "mbox"}.get(root.suffix.lower(), "file")


def _parse(item: _Item, raw: bytes, mtime: float) -> list:
    if item.kind == "note":
        return [parse_note(item.path, raw, mtime=mtime)]
    if item.kind in ("eml", "maildir"):
        return [parse_message(raw, fallback_id=message_locator(raw))]
    docs, errors = [], collections.Counter()
    for message in split_mbox(raw):
        try:
            docs.append(parse_message(message, fallback_id=message_locator(message)))
        except Unreadable as exc:
            errors[str(exc)] += 1
    if not docs:
        reason = errors.most_common(1)[0][0] if errors else "no messages"
        raise Unreadable(f"malformed mbox ({reason})")
    return docs


def sender_counts(path: Path) -> collections.Counter:
    """From addresses of a mailbox (headers only)."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    counts: collections.Counter = collections.Counter()
    try:
        if path.is_dir():
            raws = (p.read_bytes() for p in maildir_messages(path))
        else:
            raw = path.read_bytes()
            raws = split_mbox(raw) if looks_like_mbox(raw) else iter([raw])
        for raw in raws:
            sender = parser.parsebytes(raw).get("From", "")
            address = email.utils.parseaddr(str(sender))[1].lower()
            if address:
                counts[address] += 1
    except (OSError, Unreadable):
        pass
    return counts


def suggest_user_addresses(paths: Sequence[Path]) -> list[str]:
    """The senders of any "Sent" mailbox among `paths` (mbox file or Maildir folder), most frequent
    first: everything in a Sent mailbox is the user's, so every address that sent a tenth of it (or
    the most frequent one) is taken as theirs."""
    counts: collections.Counter = collections.Counter()
    for root in paths:
        candidates = [root] if "sent" in root.name.lower() else []
        if root.is_dir() and not is_maildir(root):
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                here = Path(dirpath)
                for name in dirnames + filenames:
                    if "sent" in name.lower():
                        candidates.append(here / name)
        for path in candidates:
            if path.is_file() or is_maildir(path):
                counts.update(sender_counts(path))
    if not counts:
        return []
    total = sum(counts.values())
    ranked = counts.most_common()
    return [ranked[0][0]] + [a for a, n in ranked[1:] if n >= 0.1 * total]


def import_paths(
    paths: Sequence["str | Path"],
    *,
    store: Optional[ContextStore] = None,
    settings: Optional[UserSettings] = None,
    progress: Optional[ProgressCallback] = None,
) -> ImportSummary:
    """Import notes folders, vaults, mbox/.eml files and Maildir folders into the context store.

    Every path must exist (MipoError otherwise, before anything is written). Each file is imported
    in its own transaction: an interruption loses at most the file being imported, and running the
    import again finishes the job. The user's files are only ever opened for reading.
    """
    roots = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise MipoError(f"{p} does not exist; give a folder of notes, an Obsidian vault, an mbox or .eml file, or a Maildir folder")
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
            _import_root(root, store, settings, summary, progress)
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


def _import_root(root: Path, store: ContextStore, settings: UserSettings, summary: ImportSummary,
                 progress: Optional[ProgressCallback]) -> None:
    source_id = store.add_source(str(Path(os.path.realpath(root))), _source_kind(root))
    seen: set[str] = set()
    note_cap = int(settings.max_file_mb * 1024 * 1024)
    mailbox_cap = int(settings.max_mailbox_mb * 1024 * 1024)
    for item in _walk(root):
        if isinstance(item, _Skip):
            if item.reason:
                summary.skipped.append((str(item.path), item.reason))
            else:
                summary.ignored += 1
            continue
        summary.files_seen += 1
        seen.add(item.key)
        report(progress, "import", item.key, done=summary.files_seen, data=_progress_data(summary))
        reason = _import_file(item, source_id, store, settings, summary, mailbox_cap if item.kind == "mbox" else note_cap)
        if reason:
            summary.skipped.append((str(item.path), reason))
    gone = [p for p in store.file_paths(source_id) if p not in seen]
    for path in gone:
        with store.transaction():
            store.remove_file(source_id, path)
        summary.removed += 1
    with store.transaction():
        store.mark_imported(source_id)


def _import_file(item: _Item, source_id: int, store: ContextStore, settings: UserSettings,
                 summary: ImportSummary, cap: int) -> Optional[str]:
    """Import one file; returns the reason when it is skipped."""
    try:
        st = os.stat(item.path)
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return exc.strerror or str(exc)
    if st.st_size == 0:
        return "empty file"
    if st.st_size > cap:
        return f"larger than the {cap / 1024 / 1024:.0f} MB limit (a setting)"
    row = store.file_row(source_id, item.key)
    if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
        summary.unchanged += 1
        return None
    try:
        with open(item.path, "rb") as fh:  # read-only, always
            raw = fh.read()
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return exc.strerror or str(exc)
    summary.bytes_read += len(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if row is not None and row["sha256"] == digest:
        with store.transaction():
            store.touch_file(row["id"], st.st_size, st.st_mtime_ns)
        summary.unchanged += 1
        return None
    try:
        documents = _parse(item, raw, st.st_mtime)
    except Unreadable as exc:
        return str(exc)
    with store.transaction():
        changed, removed = store.replace_file(
            source_id, item.key, item.kind, st.st_size, st.st_mtime_ns, digest, documents,
            user_addresses=settings.addresses, chunk_tokens=settings.chunk_tokens,
        )
    summary.documents_changed += changed
    summary.documents_removed += removed
    if row is None:
        summary.added += 1
    else:
        summary.updated += 1
    return None
