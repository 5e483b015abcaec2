"""`mipo-local doctor`: what this machine has, and whether llama.cpp can really decode here."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Optional

from .. import __version__, workspace
from ..inference.llama_runtime import THREADS_ENV, count_physical_cores

REBUILD_COMMAND = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/pip install --force-reinstall --no-cache-dir --no-deps '
    "llama-cpp-python==0.3.36"
)
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "gguf", "llama_cpp_python", "textual", "huggingface_hub")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def package_versions() -> dict[str, Optional[str]]:
    versions: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def detect_device() -> str:
    """cuda > mps > cpu, as training will choose it."""
    try:
        import torch
    except ImportError:
        return "cpu (torch is not installed)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


_PROBE = """
import sys
from mipo_local.inference.llama_runtime import llama_model
with llama_model(sys.argv[1], n_ctx=256) as llm:
    out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
print(repr(out["choices"][0]["text"]))
"""


def decode_probe(gguf_path: str, timeout: float = 180.0) -> Check:
    """Load a model and decode a few tokens in a child process: a crash can't take us down."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, gguf_path], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check("llama.cpp decode", False, f"no answer within {timeout:.0f} s")
    if proc.returncode == 0:
        return Check("llama.cpp decode", True, f"decoded {proc.stdout.strip()}")
    if proc.returncode in (-signal.SIGILL, 128 + signal.SIGILL, -signal.SIGSEGV):
        what = "an illegal instruction" if proc.returncode in (-signal.SIGILL, 128 + signal.SIGILL) else "a crash"
        return Check(
            "llama.cpp decode",
            False,
            f"llama.cpp died with {what}: it was built for another CPU. Rebuild it: {REBUILD_COMMAND}",
        )
    last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    return Check("llama.cpp decode", False, f"failed (exit {proc.returncode}): {last}")


def _llama_device(versions: dict) -> str:
    if not versions.get("llama_cpp_python"):
        return "nothing (llama-cpp-python is missing)"
    from ..inference.llama_runtime import llama_device

    return llama_device()


def run_doctor(probe: bool = True) -> list[Check]:
    checks: list[Check] = []
    checks.append(Check("mipo-local", True, f"{__version__} on Python {platform.python_version()} ({platform.system()} {platform.machine()})"))
    versions = package_versions()
    missing = [n for n, v in versions.items() if v is None]
    checks.append(Check(
        "packages",
        not missing,
        ", ".join(f"{n} {v}" for n, v in versions.items() if v) + (f"; missing: {', '.join(missing)} (run `make setup`)" if missing else ""),
    ))
    device = detect_device()
    checks.append(Check("device", True, device))
    checks.append(Check("stages", True, f"training and scoring on {device.split(' ')[0]}; llama.cpp (pairs, "
                                        f"chat, the evaluation's sampling) on {_llama_device(versions)}"))
    threads = f"{count_physical_cores()} physical cores, {os.cpu_count()} logical"
    if os.environ.get(THREADS_ENV, "").strip():
        threads += f"; {THREADS_ENV}={os.environ[THREADS_ENV].strip()} sets the threads used"
    checks.append(Check("threads", True, threads))
    home = workspace.home()
    free = workspace.free_bytes(home)
    checks.append(Check("workspace", free > 2 * 1024**3, f"{home} ({free / 1024**3:.1f} GiB free)"))
    from ..modelio.catalog import default_card

    card = default_card()
    path = card.local_path()
    checks.append(Check("bundled model", path is not None, str(path) if path else f"{card.name} is not installed (run `make setup`)"))
    if probe and path is not None and versions.get("llama_cpp_python"):
        checks.append(decode_probe(str(path)))
    return checks
