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
    """A `gguf.GGUFReader` field's value as a Python value (str, number, bool or list)."""
    return field.contents()


@dataclass(frozen=True)
class TensorEntry:
    name: str
    ggml_type: int
    shape: tuple[int, ...]
    offset: int      # absolute offset of the data in the file
    n_bytes: int


@dataclass(frozen=True)
class GGUFScan:
    """Everything in a GGUF except the tensor data, read without loading it."""

    version: int
    metadata: dict[str, Any]
    tensors: list[TensorEntry]
    size_bytes: int


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def scan_gguf(path: Path) -> GGUFScan:
    """Parse a GGUF's header, metadata and tensor table (fast: no numpy views, no tensor data).

    Raises MipoError for a missing file, a non-GGUF file and a truncated or corrupt one.
    """
    import mmap
    import struct

    path = Path(path)
    if not path.exists():
        raise MipoError(f"{path} does not exist; give the path of a .gguf model file")
    if path.is_dir():
        raise MipoError(f"{path} is a folder, not a GGUF file")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise MipoError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(4) != GGUF_MAGIC:
            raise MipoError(f"{path} is not a GGUF file (it does not start with 'GGUF'); give a .gguf model file")
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            pos = 4

            def take(fmt: str):
                nonlocal pos
                (value,) = struct.unpack_from(fmt, buf, pos)
                pos += struct.calcsize(fmt)
                return value

            def string() -> str:
                nonlocal pos
                n = take("<Q")
                if pos + n > size:
                    raise struct.error("string past the end of the file")
                raw = buf[pos:pos + n]
                pos += n
                return raw.decode("utf-8", errors="replace")

            def value(vtype: int):
                if vtype in _SCALARS:
                    return take(_SCALARS[vtype])
                if vtype == _STRING:
                    return string()
                if vtype == _ARRAY:
                    item_type, count = take("<I"), take("<Q")
                    if count > size:
                        raise struct.error("array longer than the file")
                    return [value(item_type) for _ in range(count)]
                raise struct.error(f"unknown value type {vtype}")

            version = take("<I")
            if version not in (2, 3):
                raise MipoError(f"{path} is GGUF version {version}; only versions 2 and 3 are supported")
            n_tensors, n_kv = take("<Q"), take("<Q")
            if n_tensors > size or n_kv > size:
                raise struct.error("counts larger than the file")
            metadata: dict[str, Any] = {}
            for _ in range(n_kv):
                key = string()
                metadata[key] = value(take("<I"))
            raw_tensors = []
            for _ in range(n_tensors):
                name = string()
                n_dims = take("<I")
                shape = tuple(take("<Q") for _ in range(n_dims))
                raw_tensors.append((name, take("<I"), shape, take("<Q")))
            alignment = int(metadata.get("general.alignment", 32)) or 32
            data_start = (pos + alignment - 1) // alignment * alignment
        except (struct.error, IndexError, ValueError, OverflowError) as exc:
            raise MipoError(f"{path} is truncated or corrupt ({exc}); download or export it again") from None
        finally:
            buf.close()
    import gguf

    tensors = []
    for name, ggml_type, shape, offset in raw_tensors:
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            raise MipoError(f"{path}: tensor {name} has an unknown type {ggml_type}; this GGUF is newer than mipo-local or corrupt") from None
        n_elements = 1
        for d in shape:
            n_elements *= d
        n_bytes = n_elements // block * type_size
        start = data_start + offset
        if start + n_bytes > size:
            raise MipoError(f"{path} is truncated: tensor {name} ends past the end of the file; download or export it again")
        tensors.append(TensorEntry(name, ggml_type, shape, start, n_bytes))
    return GGUFScan(version, metadata, tensors, size)


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
