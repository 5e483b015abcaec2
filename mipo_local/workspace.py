"""Where mipo-local keeps user data and caches, and how it writes files safely.

Everything lives under one folder: platformdirs' user data dir for ``mipo-local``, or
``$MIPO_HOME`` when set (the tests always set it). Nothing is written to the checkout or the
current directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

ENV_HOME = "MIPO_HOME"
ENV_CACHE = "MIPO_CACHE"   # optional: keep the (re-creatable) caches elsewhere, e.g. shared by tests


def home() -> Path:
    """The workspace root, created on first use."""
    override = os.environ.get(ENV_HOME)
    if override:
        root = Path(override).expanduser()
    else:
        from platformdirs import user_data_dir

        root = Path(user_data_dir("mipo-local", appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def use_demo_workspace() -> Path:
    """Switch this process to the demo's own workspace (a `demo/` folder inside the workspace), so the
    fictional demo never mixes with the user's writing or models. Caches stay shared."""
    cache = os.environ.get(ENV_CACHE) or str(home() / "cache")
    demo = home() / "demo"
    os.environ[ENV_CACHE] = cache
    os.environ[ENV_HOME] = str(demo)
    return home()


def subdir(*parts: str) -> Path:
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Downloaded base models, and where a user places a model file by hand."""
    return subdir("models")


def cache_dir(*parts: str) -> Path:
    """Caches that can always be made again from the user's data and models."""
    override = os.environ.get(ENV_CACHE)
    root = Path(override).expanduser() if override else home() / "cache"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_cache() -> Path:
    """Dequantized PyTorch checkpoints of GGUF bases, keyed by the GGUF's content hash."""
    return cache_dir("checkpoints")


def exports_dir() -> Path:
    return subdir("exports")


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
        if final.is_dir() and overwrite:
            import shutil

            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a small text file (settings, state, reports) so that readers see the old or the new
    content, never a part."""
    with atomic_path(Path(path), overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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
