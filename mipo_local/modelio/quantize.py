"""GGUF F16 → quantized GGUF through llama.cpp's `llama_model_quantize` (no separate binary)."""

from __future__ import annotations

import ctypes
import threading
import time
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report
from .gguf_file import inspect_gguf

# name → (llama_cpp constant, approximate bits per weight, for progress and size estimates)
QUANT_TYPES: dict[str, tuple[str, float]] = {
    "F16": ("LLAMA_FTYPE_MOSTLY_F16", 16.0),
    "Q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "Q6_K": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.56),
    "Q5_K_M": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.7),
    "Q4_K_M": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.9),
}
K_QUANT_BLOCK = 256


def normalize_quant(quant: str) -> str:
    key = quant.strip().upper()
    if key not in QUANT_TYPES:
        raise MipoError(f"unknown quantization {quant!r}; choose one of {', '.join(QUANT_TYPES)}")
    return key


def k_quants_fit(embedding_length: int, feed_forward_length: Optional[int] = None) -> bool:
    """K-quants need rows divisible by 256; otherwise most tensors fall back to larger types."""
    widths = [w for w in (embedding_length, feed_forward_length) if w]
    return all(w % K_QUANT_BLOCK == 0 for w in widths)


def default_quant(embedding_length: int, feed_forward_length: Optional[int] = None) -> str:
    return "Q4_K_M" if k_quants_fit(embedding_length, feed_forward_length) else "Q8_0"


def quantize_gguf(
    src: Path,
    out: Path,
    quant: str,
    *,
    threads: Optional[int] = None,
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> Path:
    """Quantize `src` (normally F16) to `quant`, written atomically to `out`."""
    quant = normalize_quant(quant)
    info = inspect_gguf(src)
    import llama_cpp

    from ..inference.llama_runtime import physical_cores, quiet_llama_logs

    quiet_llama_logs()

    const, bpw = QUANT_TYPES[quant]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, const)
    params.nthread = threads or physical_cores()
    src_bpw = 16.0 if info.file_type in (None, 1) else 32.0 if info.file_type == 0 else 16.0
    expected = max(1, int(info.size_bytes * bpw / src_bpw))
    out = Path(out)
    start = time.perf_counter()
    with workspace.atomic_path(out, overwrite=overwrite) as tmp:
        stop = threading.Event()

        def watch() -> None:  # the C call gives no progress: report the growing output file
            while not stop.wait(0.25):
                size = tmp.stat().st_size if tmp.exists() else 0
                report(progress, "quantize", f"{quant}", done=min(size, expected - 1), total=expected, unit="bytes")

        watcher = threading.Thread(target=watch, daemon=True)
        report(progress, "quantize", f"{quant}", done=0, total=expected, unit="bytes")
        watcher.start()
        try:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        finally:
            stop.set()
            watcher.join()
        if rc != 0 or not tmp.exists():
            free = workspace.free_bytes(out.parent)
            hint = "free some disk space" if free < expected * 1.1 else "check the file and the disk"
            raise MipoError(f"llama.cpp could not quantize {src} to {quant} (code {rc}); {hint} and try again")
    seconds = time.perf_counter() - start
    report(progress, "quantize", "done", done=expected, total=expected, finished=True,
           data={"seconds": seconds, "path": str(out), "bytes": out.stat().st_size})
    return out
