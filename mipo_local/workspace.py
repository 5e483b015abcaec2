"""Where mipo-local keeps user data and caches, and how it writes files safely.

Everything lives under one folder: platformdirs' user data dir for ``mipo-local``, or
``$MIPO_HOME`` when set (the tests always set it). Nothing is written to the checkout or the
current directory.

The workspace holds a copy of the user's mail and notes, so it is private whatever the umask:
folders 0700, files 0600, set explicitly when they are made, and set again over a whole
workspace made by an older version the first time a process uses it. That first use also takes
group and others out of the process's umask (only ever tightening it), so what other libraries
write for us (the trainer's checkpoints, the datasets cache) is private as it is made too. Every
output is written to a temporary name, flushed to disk (fsync) and renamed, so a crash or a full
disk leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

ENV_HOME = "MIPO_HOME"
ENV_CACHE = "MIPO_CACHE"   # optional: keep the (re-creatable) caches elsewhere, e.g. shared by tests


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_secured: set[str] = set()      # workspaces whose permissions this process has already checked


def now_utc() -> str:
    """The time stamps the workspace's files carry (the store, conversations): UTC, to the second."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


MARKER = ".mipo-local"      # an empty file that says a folder is a workspace (written at first use)
# what a workspace holds at its top level (`MIPO_HOME` pointing at a folder of only these, a workspace
# of a version before the marker, is used; at anything else, refused)
_WORKSPACE_NAMES = {"settings.json", "active_model.json", "context.sqlite3", "runs", "models", "profiles",
                    "conversations", "cache", "demo"}


def home() -> Path:
    """The workspace root, created on first use, private (see the module's notes). `MIPO_HOME`
    may name a new or empty folder or a workspace; a folder holding other things is refused, so that
    its permissions are never changed."""
    override = os.environ.get(ENV_HOME)
    if override:
        root = Path(override).expanduser()
    else:
        from platformdirs import user_data_dir

        root = Path(user_data_dir("mipo-local", appauthor=False))
    first = str(root) not in _secured
    if first and override:
        _check_workspace(root)
    try:
        make_private_dir(root)
        if first:
            make_private_tree(root)
            create_private_file(root / MARKER)
    except OSError as exc:
        from .errors import MipoError

        raise MipoError(f"cannot use {root} as the workspace ({exc.strerror or exc}); set {ENV_HOME} to a "
                        "folder you can write, or unset it") from None
    if first:
        os.umask(os.umask(0o077) | 0o077)       # read and set back: umask has no getter
        _secured.add(str(root))
    return root


def _check_workspace(root: Path) -> None:
    """Raise a one-line MipoError unless `root` is missing, empty or a workspace."""
    from .errors import MipoError

    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir():
        raise MipoError(f"{ENV_HOME}={root} is not a folder; point {ENV_HOME} at a new or empty folder, or unset it")
    try:
        names = os.listdir(root)
    except OSError as exc:
        raise MipoError(f"cannot read {ENV_HOME}={root} ({exc.strerror or exc}); point {ENV_HOME} at a folder "
                        "you own, or unset it") from None
    if MARKER in names or "context.sqlite3" in names:    # a workspace (from before the marker: by its store)
        return
    others = sorted(n for n in names if n not in _WORKSPACE_NAMES and not n.startswith(("context.sqlite3", ".")))
    if others:
        raise MipoError(f"{ENV_HOME}={root} holds other files ({others[0]!r} among them), so it is not a mipo-local "
                        f"workspace and is left as it is; point {ENV_HOME} at a new or empty folder, or unset it")


def make_private_dir(path: Path) -> Path:
    """A folder only its owner can enter (created with its parents where missing)."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    make_private(path)
    return path


def make_private(path: Path) -> None:
    """Folder 0700, file 0600 (an owner's execute bit kept); symlinks and missing paths left alone."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    want = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE | (st.st_mode & stat.S_IXUSR)
    if stat.S_IMODE(st.st_mode) != want:
        with contextlib.suppress(OSError):   # not ours (a shared cache), a read-only disk: leave it
            os.chmod(path, want)


def make_private_tree(root: Path) -> None:
    """Every folder and file under `root` private, e.g. a workspace made by an older version."""
    make_private(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            make_private(Path(dirpath) / name)


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist (before a library such as SQLite
    opens it with the umask's mode), and make it 0600 if it does."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE))
    except FileExistsError:
        pass
    make_private(path)


def use_demo_workspace() -> Path:
    """Switch this process to the demo's own workspace (a `demo/` folder inside the workspace), so the
    fictional demo never mixes with the user's writing or models. Caches stay shared."""
    cache = os.environ.get(ENV_CACHE) or str(home() / "cache")
    demo = home() / "demo"
    os.environ[ENV_CACHE] = cache
    os.environ[ENV_HOME] = str(demo)
    return home()


def subdir(*parts: str) -> Path:
    root = home()
    path = root
    for part in parts:              # each level private, not only the last
        path = make_private_dir(path / part)
    return path


def models_dir() -> Path:
    """Downloaded base models, and where a user places a model file by hand."""
    return subdir("models")


def cache_dir(*parts: str) -> Path:
    """Caches that can always be made again from the user's data and models."""
    override = os.environ.get(ENV_CACHE)
    root = Path(override).expanduser() if override else home() / "cache"
    path = make_private_dir(root)
    for part in parts:
        path = make_private_dir(path / part)
    return path


def checkpoints_cache() -> Path:
    """Dequantized PyTorch checkpoints of GGUF bases, keyed by the GGUF's content hash."""
    return cache_dir("checkpoints")


@contextlib.contextmanager
def atomic_path(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    On any error (including KeyboardInterrupt) the temporary file or folder is removed, so no
    partial output is ever left under the final name.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        from .errors import MipoError

        raise MipoError(f"{final} already exists; choose another output path or remove it first")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the block creates it (as a file or a folder)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp}")
        try:
            _private_and_synced(tmp)
            if final.is_dir() and overwrite:
                import shutil

                old = final.with_name(f".{final.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:          # fsync on a full disk, a rename refused
            from .errors import MipoError

            raise MipoError(f"could not write {final}: {exc.strerror or exc}; free some disk space or "
                            "choose another place") from None
    except BaseException:
        _remove(tmp)
        raise


def _private_and_synced(path: Path) -> None:
    """A finished output (file or folder) made private and flushed to disk before it is renamed."""
    if path.is_dir() and not path.is_symlink():
        make_private_tree(path)
        for dirpath, _, filenames in os.walk(path):
            for name in filenames:
                _fsync_file(Path(dirpath) / name)
            _fsync_dir(Path(dirpath))
    else:
        make_private(path)
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    if path.is_symlink():
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """The rename itself made durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write a file so that readers see the old or the new content, never a part, and a crash or a
    full disk leaves the old one: temp file (0600) beside it, write, fsync, rename, fsync the folder.
    A failed write is one MipoError line."""
    path = Path(path)
    try:
        with atomic_path(path, overwrite=True) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    except OSError as exc:
        from .errors import MipoError

        raise MipoError(f"could not write {path}: {exc.strerror or exc}; free some disk space or check the "
                        "folder's permissions") from None
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """`write_bytes_atomic` for text (settings, state, reports, conversations), UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def free_bytes(path: Path | None = None) -> int:
    import shutil

    return shutil.disk_usage(path or home()).free
