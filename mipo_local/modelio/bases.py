"""The two forms every base is needed in: a GGUF for llama.cpp and a checkpoint for torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from .. import workspace
from ..catalog import Base
from ..progress import ProgressCallback
from .checkpoint import gguf_to_checkpoint


def _folder_fingerprint(folder: Path) -> str:
    """Changes when any file of the folder changes (name, size, mtime)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        st = path.stat()
        h.update(json.dumps([path.name, st.st_size, int(st.st_mtime)]).encode())
    return h.hexdigest()[:24]


def base_gguf(base: Base, *, progress: Optional[ProgressCallback] = None) -> Path:
    """The base as a GGUF file: itself, or (for a model folder) a cached F16 conversion."""
    if base.kind == "gguf":
        return base.path
    from .gguf_export import hf_folder_to_gguf

    out = workspace.subdir("cache", "bases") / f"{base.path.name}-{_folder_fingerprint(base.path)}.f16.gguf"
    if not out.is_file():
        hf_folder_to_gguf(base.path, out, progress=progress)
    return out


def base_checkpoint(base: Base, *, progress: Optional[ProgressCallback] = None) -> Path:
    """The base as a trainable checkpoint folder: itself, or (for a GGUF) the cached dequantized one."""
    if base.kind == "hf":
        return base.path
    return gguf_to_checkpoint(base.path, progress=progress)
