"""Opening models with llama-cpp-python: quiet, on the physical cores, and closed after use."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Optional


def physical_cores() -> int:
    """Physical cores (not hyperthreads); llama.cpp and torch are fastest with one thread per core."""
    try:
        cores = set()
        with open("/proc/cpuinfo") as fh:
            phys = core = None
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    cores.add((phys, core))
        if cores:
            return max(1, min(len(cores), os.cpu_count() or 1))
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)


_LOG_CALLBACK = None


def quiet_llama_logs() -> None:
    """Route llama.cpp's own log lines away from the terminal (they bypass `verbose=False`)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def _ignore(level, text, user_data):  # noqa: ARG001
        return None

    _LOG_CALLBACK = _ignore
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def open_llama(path: Path, *, n_ctx: int = 2048, n_threads: Optional[int] = None, **kwargs: Any):
    """A `llama_cpp.Llama` for `path`. Call `.close()` when done (or use `llama_model`)."""
    from llama_cpp import Llama

    from .gguf_scan import scan_gguf

    scan_gguf(Path(path))  # a clear error for a missing, foreign or truncated file
    quiet_llama_logs()
    threads = n_threads or physical_cores()
    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        **kwargs,
    )


@contextlib.contextmanager
def llama_model(path: Path, **kwargs: Any) -> Iterator[Any]:
    llm = open_llama(path, **kwargs)
    try:
        yield llm
    finally:
        llm.close()
