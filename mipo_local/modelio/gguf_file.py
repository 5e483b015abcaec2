"""Reading and validating GGUF files before any heavy work starts (the fast scan itself is `gguf_scan`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import MipoError
from ..inference.gguf_scan import scan_gguf
from .catalog import SUPPORTED_ARCHITECTURES


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    architecture: str
    name: str
    n_tensors: int
    size_bytes: int
    block_count: Optional[int]
    embedding_length: Optional[int]
    context_length: Optional[int]
    file_type: Optional[int]
    chat_template: Optional[str]


def field_value(field) -> Any:
    """A `gguf.GGUFReader` field's value as a Python value (str, number, bool or list)."""
    return field.contents()


def read_metadata(source) -> dict[str, Any]:
    """Metadata of a GGUF: from a path (fast scan) or a `gguf.GGUFReader`."""
    if isinstance(source, (str, Path)):
        return scan_gguf(Path(source)).metadata
    return {name: field_value(f) for name, f in source.fields.items() if not name.startswith("GGUF.")}


def open_reader(path: Path):
    """A validated `gguf.GGUFReader` for `path` (needed to copy typed fields or read tensor data)."""
    scan_gguf(path)  # one clear MipoError for every kind of bad file, before numpy sees it
    import gguf

    try:
        return gguf.GGUFReader(str(path), "r")
    except Exception as exc:
        raise MipoError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); download or export it again") from None


def inspect_gguf(path: Path, *, require_supported: bool = True) -> GGUFInfo:
    """Validate a GGUF file and read what the pipeline needs to know about it."""
    scan = scan_gguf(path)
    meta = scan.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise MipoError(f"{path} has no general.architecture; it is not a model GGUF")
    if require_supported and arch not in SUPPORTED_ARCHITECTURES:
        raise MipoError(
            f"{path} is a {arch!r} model; mipo-local supports {', '.join(SUPPORTED_ARCHITECTURES)} — pick another base model"
        )
    return GGUFInfo(
        path=Path(path),
        architecture=arch,
        name=str(meta.get("general.name", Path(path).stem)),
        n_tensors=len(scan.tensors),
        size_bytes=scan.size_bytes,
        block_count=meta.get(f"{arch}.block_count"),
        embedding_length=meta.get(f"{arch}.embedding_length"),
        context_length=meta.get(f"{arch}.context_length"),
        file_type=meta.get("general.file_type"),
        chat_template=meta.get("tokenizer.chat_template"),
    )


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: Path) -> str:
    """`file_sha256`, remembered per (path, size, mtime) in the workspace so big files hash once."""
    import json

    from .. import workspace

    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index = workspace.cache_dir() / "sha256.json"
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = file_sha256(path)
    known[key] = digest
    workspace.write_text_atomic(index, json.dumps(known))
    return digest
