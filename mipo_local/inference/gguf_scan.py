"""The fast GGUF scan: header, metadata and tensor table read without the tensor data.

A ground-floor helper (it needs only the `gguf` package's type sizes), so that opening a model with
llama.cpp (`llama_runtime`) and reading a chat template (`prompt_format`) can validate a file without
importing `modelio`, which itself uses `llama_runtime`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MipoError

GGUF_MAGIC = b"GGUF"


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
