"""Opening models with llama-cpp-python: quiet, on the physical cores, and closed after use."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, Optional


THREADS_ENV = "MIPO_THREADS"    # threads for llama.cpp and torch, where the cores are shared (e.g. 1 per test worker)


def physical_cores() -> int:
    """The threads llama.cpp and torch use: one per physical core (not hyperthreads), where they are
    fastest; MIPO_THREADS overrides it (processes that share the cores each take their part)."""
    given = os.environ.get(THREADS_ENV, "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    return count_physical_cores()


def count_physical_cores() -> int:
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


GPU_ENV = "MIPO_LLAMA_GPU"     # "0": keep llama.cpp on the CPU even where its build could offload


def gpu_layers() -> int:
    """How many layers llama.cpp puts on the GPU: all of them (-1) where this build of llama.cpp can
    offload (CUDA, Metal, Vulkan...; `llama_supports_gpu_offload`), none on a CPU-only build or with
    MIPO_LLAMA_GPU=0. A model is then decoded where the user's GPU is, not on the CPU beside it."""
    if os.environ.get(GPU_ENV, "").strip() == "0":
        return 0
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


def llama_device() -> str:
    """Where llama.cpp decodes here, in words (for `doctor` and the logs)."""
    if gpu_layers():
        return "GPU (every layer offloaded)"
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return f"CPU ({GPU_ENV}=0; this build could offload to the GPU)"
    return "CPU (this build of llama.cpp has no GPU support)"


def open_llama(path: Path, *, n_ctx: int = 2048, n_threads: Optional[int] = None, **kwargs: Any):
    """A `llama_cpp.Llama` for `path`, every layer on the GPU where the build supports it
    (`gpu_layers`; `n_gpu_layers=` overrides). Call `.close()` when done (or use `llama_model`)."""
    from llama_cpp import Llama

    from .gguf_scan import scan_gguf

    scan_gguf(Path(path))  # a clear error for a missing, foreign or truncated file
    quiet_llama_logs()
    threads = n_threads or physical_cores()
    kwargs.setdefault("n_gpu_layers", gpu_layers())
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
