"""The two forms every base is needed in: a GGUF for llama.cpp and a checkpoint for torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from .. import workspace
from ..progress import ProgressCallback
from .catalog import Base
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

    out = workspace.cache_dir("bases") / f"{base.path.name}-{_folder_fingerprint(base.path)}.f16.gguf"
    if not out.is_file():
        hf_folder_to_gguf(base.path, out, progress=progress)
    return out


def base_checkpoint(base: Base, *, progress: Optional[ProgressCallback] = None) -> Path:
    """The base as a trainable checkpoint folder: itself, or (for a GGUF) the cached dequantized one."""
    if base.kind == "hf":
        return base.path
    return gguf_to_checkpoint(base.path, progress=progress)


# GGUF file types llama.cpp decodes fast in batches on CPUs (F32, F16, Q4_0, Q8_0, BF16).
# Q4_1 and the K-quants have no batched fast path: 8 sequences decode only ~1.5x faster than one.
FAST_BATCHED_FILE_TYPES = {0, 1, 2, 7, 32}


def sampling_gguf(base: Base, *, progress: Optional[ProgressCallback] = None) -> Path:
    """The GGUF that pairs are sampled from: the base itself when llama.cpp batches its type well,
    else a Q8_0 written from the base's (dequantized) checkpoint, cached. Both compute the model
    being trained: the checkpoint is what DPO starts from."""
    from .gguf_file import cached_sha256, inspect_gguf

    gguf = base_gguf(base, progress=progress)
    info = inspect_gguf(gguf)
    if info.file_type in FAST_BATCHED_FILE_TYPES:
        return gguf
    out = workspace.cache_dir("bases") / f"{cached_sha256(gguf)[:24]}.sampling.q8_0.gguf"
    if out.is_file():
        return out
    from .gguf_export import checkpoint_to_gguf
    from .quantize import quantize_gguf

    checkpoint = base_checkpoint(base, progress=progress)
    f16 = workspace.cache_dir("tmp") / f"{out.stem}.f16.gguf"
    f16.unlink(missing_ok=True)
    try:
        checkpoint_to_gguf(checkpoint, f16, base_gguf=gguf, name=info.name, progress=progress)
        quantize_gguf(f16, out, "Q8_0", progress=progress)
    finally:
        f16.unlink(missing_ok=True)
    return out
