"""A model becomes active only after it loads and answers; the previous one stays and can come back."""

from __future__ import annotations

import shutil

import pytest

from mipo_local.chat.active_model import activate, active_model, switch_back
from mipo_local.errors import MipoError


def test_activation_needs_a_working_model(tmp_path, bundled_gguf):
    good = tmp_path / "good.gguf"
    shutil.copy(bundled_gguf, good)
    second = tmp_path / "second.gguf"
    shutil.copy(bundled_gguf, second)
    assert active_model() is None
    activate(good)
    assert active_model() == good.resolve()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(bundled_gguf.read_bytes()[:3_000_000])
    with pytest.raises(MipoError, match="truncated"):
        activate(broken)
    assert active_model() == good.resolve()
    activate(second)
    assert active_model() == second.resolve()
    assert switch_back() == good.resolve()
    assert active_model() == good.resolve()
