"""Reading and validating GGUF files before any heavy work starts."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..catalog import SUPPORTED_ARCHITECTURES
from ..errors import MipoError

GGUF_MAGIC = b"GGUF"


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
    """A reader field's value as a Python value (str, number, bool or list)."""
    return field.contents()


def read_metadata(reader) -> dict[str, Any]:
    return {name: field_value(f) for name, f in reader.fields.items() if not name.startswith("GGUF.")}


def open_reader(path: Path):
    """A validated `gguf.GGUFReader` for `path`; one clear MipoError for every kind of bad file."""
    path = Path(path)
    if not path.exists():
        raise MipoError(f"{path} does not exist; give the path of a .gguf model file")
    if path.is_dir():
        raise MipoError(f"{path} is a folder, not a GGUF file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise MipoError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    if magic != GGUF_MAGIC:
        raise MipoError(f"{path} is not a GGUF file (it does not start with 'GGUF'); give a .gguf model file")
    import gguf

    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:  # truncated header, bad offsets, wrong version
        raise MipoError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); download or export it again") from None
    size = os.path.getsize(path)
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size or tensor.data.nbytes != tensor.n_bytes:
            raise MipoError(f"{path} is truncated: tensor {tensor.name} ends past the end of the file; download or export it again")
    return reader


def inspect_gguf(path: Path, *, require_supported: bool = True) -> GGUFInfo:
    """Validate a GGUF file and read what the pipeline needs to know about it."""
    reader = open_reader(path)
    meta = read_metadata(reader)
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
        n_tensors=len(reader.tensors),
        size_bytes=os.path.getsize(path),
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
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known))
    os.replace(tmp, index)
    return digest
