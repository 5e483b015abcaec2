"""Which files of a chosen folder are imported, which are skipped (and why), which are ignored.

Nothing here raises for a file or folder it cannot read: an unreadable folder, a file under a
folder that cannot be entered, a broken symlink, a FIFO, each becomes a `Skip` with its reason, and
the walk goes on. Mail is recognised by content as well as by name: pipermail's `2016-April.txt`
archives are mailboxes, not notes; `.gz` files are looked into.
"""

from __future__ import annotations

import errno
import mailbox
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from .files import file_type, is_compressed, os_reason, read_head
from .mail import has_mail_headers, is_maildir, maildir_key, maildir_messages, sniff_mail
from .notes import NOTE_EXTENSIONS
from .text import Unreadable, fs_text

MAILBOX_NAMES = {"mbox", "inbox", "sent", "sent mail"}


@dataclass(frozen=True)
class Item:
    path: Path       # the file on disk
    key: str         # its stable name in the store, relative to the source
    kind: str        # note | eml | mbox | maildir | mh | msg | pst


@dataclass(frozen=True)
class Skip:
    path: Path
    reason: str
    ignored: bool = False    # True: another kind of file (an image …), not a failure


Entry = Union[Item, Skip]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _by_content(path: Path, note_kind: Optional[str]) -> "str | Skip | None":
    try:
        head = read_head(path)
    except Unreadable as exc:
        return Skip(path, str(exc))
    sniffed = sniff_mail(head)
    if sniffed == "mbox" or (sniffed == "eml" and note_kind is None):
        return sniffed
    return note_kind


def _mh_message(path: Path, sequences: bool) -> "str | Skip":
    """A numbered file of an MH folder: a message when it holds mail headers (with `.mh_sequences`
    beside it, any header block will do: drafts have few); otherwise ignored, with the reason."""
    try:
        head = read_head(path)
    except Unreadable as exc:
        return Skip(path, str(exc))
    if sniff_mail(head) == "eml" or (sequences and has_mail_headers(head)):
        return "mh"
    return Skip(path, "not an email (a numbered file in a mail folder)", ignored=True)


def classify(path: Path, mh: Optional[bool] = None) -> "str | Skip | None":
    """A regular file's kind (note | eml | mbox | mh | msg | pst), a Skip, or None for another type of
    file. `mh`: the file is a message number of an MH folder (True: one with `.mh_sequences`)."""
    if mh is not None:
        return _mh_message(path, mh)
    name = path.name.lower()
    inner = Path(name[:-3]) if is_compressed(path) else Path(name)
    suffix = inner.suffix
    if suffix in (".msg", ".pst", ".ost") and not is_compressed(path):
        return "msg" if suffix == ".msg" else "pst"
    if suffix == ".eml":
        return "eml"
    if suffix in (".mbox", ".mbx") or (suffix == "" and inner.name in MAILBOX_NAMES):
        return "mbox"
    if suffix == ".txt":                      # notes, or a mailing list's monthly archive
        return _by_content(path, "note")
    if suffix in NOTE_EXTENSIONS:
        return "note"
    if suffix == "" or is_compressed(path):   # no extension, or a compressed file: what does it hold?
        return _by_content(path, None)
    return None


def _ignored(path: Path) -> Skip:
    suffix = "".join(path.suffixes[-2:]).lower() if is_compressed(path) else path.suffix.lower()
    return Skip(path, f"not a note or mail file ({suffix or 'no extension'})", ignored=True)


def _file(path: Path, key: str, root_real: Path, mode: int, mh: Optional[bool] = None) -> Entry:
    """One directory entry that is not a folder: a symlink, a regular file or something else."""
    if stat.S_ISLNK(mode):
        try:
            target = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Skip(path, "symlink loop")
            if exc.errno == errno.ENOENT:
                return Skip(path, "broken symlink")
            return Skip(path, os_reason(exc))
        if not _inside(Path(os.path.realpath(path)), root_real):
            return Skip(path, "symlink to a place outside the chosen folder (not followed)")
        if stat.S_ISDIR(target.st_mode):
            return Skip(path, "symlinked folder (not followed)")
        mode = target.st_mode
    if not stat.S_ISREG(mode):
        return Skip(path, f"not a regular file ({file_type(mode)})")
    kind = classify(path, mh)
    if kind is None:
        return _ignored(path)
    if isinstance(kind, Skip):
        return kind
    return Item(path, fs_text(key), kind)


def _maildir(folder: Path, prefix: str) -> Iterator[Entry]:
    try:
        messages = list(maildir_messages(folder))
    except OSError as exc:
        yield Skip(folder, f"{os_reason(exc)} (Maildir not readable)")
        return
    for msg in messages:
        yield Item(msg, fs_text(f"{prefix}{maildir_key(msg)}"), "maildir")


def mh_folder(folder: Path, names: list[str]) -> Optional[tuple[set[str], bool]]:
    """An MH folder (nmh, Claws Mail, Sylpheed; the Enron corpus's layout is the same without the
    numbers' file of sequences): its message numbers (as `mailbox.MH` lists them) and whether it has
    `.mh_sequences`; None for another folder. `names`: the folder's entries."""
    sequences = ".mh_sequences" in names
    visible = [n for n in names if not n.startswith(".")]
    numbered = [n for n in visible if n.isdigit()]
    if not numbered or not (sequences or len(numbered) * 2 >= len(visible)):
        return None
    try:
        keys = {str(k) for k in mailbox.MH(str(folder), create=False).keys()}
    except (OSError, mailbox.Error):
        return None
    return keys, sequences


def walk(root: Path) -> Iterator[Entry]:
    """Every file under `root` (or `root` itself), in name order, hidden files and folders left out.
    A Maildir's messages are its `cur/` and `new/`; its Maildir++ folders (`.Sent`, `.Archive`, hidden
    by name) are Maildirs too, and anything else in it is walked as in any folder."""
    root_real = Path(os.path.realpath(root))
    try:
        mode = os.lstat(root).st_mode
        if stat.S_ISLNK(mode):
            mode = os.stat(root).st_mode
    except OSError as exc:
        yield Skip(root, os_reason(exc))
        return
    if not stat.S_ISDIR(mode):
        entry = _file(root, root.name, root_real.parent, mode)
        if isinstance(entry, Skip) and entry.ignored:
            entry = Skip(root, "not a notes file, .eml, mbox, Maildir or Outlook file")
        yield entry
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        maildir = _safe_is_maildir(folder)
        if maildir:
            yield from _maildir(folder, "" if folder == root else folder.relative_to(root).as_posix() + "/")
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skip(folder, f"{os_reason(exc)} (folder not readable)")
            continue
        subfolders = []
        mh = None if maildir else mh_folder(folder, [e.name for e in entries])
        for entry in entries:
            if maildir and (entry.name in MAILDIR_PARTS or entry.name.lower().startswith(MAILDIR_CONTROL)):
                continue
            path = Path(entry.path)
            if entry.name.startswith("."):          # .obsidian, .trash, .git …, but a Maildir++ folder
                if (maildir and entry.name[1:].split(".")[0].lower() not in MAILDIR_UNWANTED and _safe_is_dir(entry)
                        and _safe_is_maildir(path)):
                    subfolders.append(path)
                continue
            key = path.relative_to(root).as_posix()
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:                  # e.g. in a folder that can be listed, not entered
                yield Skip(path, os_reason(exc))
                continue
            if stat.S_ISDIR(mode):
                subfolders.append(path)
                continue
            yield _file(path, key, root_real, mode, mh[1] if mh and entry.name in mh[0] else None)
        stack.extend(reversed(subfolders))


MAILDIR_PARTS = ("cur", "new", "tmp")
# the mail server's own files in a Maildir (Dovecot, Courier), and Maildir++ folders not of one's writing
MAILDIR_CONTROL = ("maildirfolder", "maildirsize", "subscriptions", "dovecot", "courierimap", "courierpop3dsizelist")
MAILDIR_UNWANTED = {"junk", "spam", "trash", "deleted messages", "deleted items", "deleted"}


def _safe_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _safe_is_maildir(folder: Path) -> bool:
    try:
        return is_maildir(folder)
    except OSError:
        return False


def source_kind(root: Path) -> str:
    try:
        if root.is_dir():
            if _safe_is_maildir(root):
                return "maildir"
            return "mh" if mh_folder(root, os.listdir(root)) else "folder"
    except OSError:
        pass
    return {".eml": "eml", ".mbox": "mbox"}.get(root.suffix.lower(), "file")
