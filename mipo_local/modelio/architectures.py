"""What differs between the architectures mipo-local can export: llama, qwen2, qwen3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MipoError
from .catalog import SUPPORTED_ARCHITECTURES


@dataclass(frozen=True)
class ArchSpec:
    name: str            # the GGUF architecture name (general.architecture)
    permute_qk: bool     # HF rotary layout (rotate-half) → llama.cpp's interleaved (NORM) rope


ARCHS: dict[str, ArchSpec] = {
    # llama.cpp runs llama with interleaved ("NORM") rope, HF with rotate-half: q/k rows must be
    # permuted. Qwen2/Qwen3 run with NEOX rope in llama.cpp, the same layout as HF: no permutation.
    "llama": ArchSpec("llama", permute_qk=True),
    "qwen2": ArchSpec("qwen2", permute_qk=False),
    "qwen3": ArchSpec("qwen3", permute_qk=False),
}
assert set(ARCHS) == set(SUPPORTED_ARCHITECTURES)


def arch_of_config(config: dict[str, Any], where: str = "the model") -> ArchSpec:
    model_type = config.get("model_type")
    if model_type not in ARCHS:
        raise MipoError(
            f"{where} is a {model_type!r} model; mipo-local supports {', '.join(ARCHS)} — pick another base model"
        )
    return ARCHS[model_type]


def rope_theta(config: dict[str, Any]) -> float:
    if "rope_theta" in config:
        return float(config["rope_theta"])
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta", 10000.0))


def rope_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    """The rope scaling settings, or None for plain rope."""
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or None
    if not scaling:
        return None
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind in (None, "default"):
        return None
    return {**scaling, "rope_type": kind}


def head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def permute_for_gguf(w, n_head: int):
    """Reorder q/k projection rows from HF's rotate-half layout to llama.cpp's interleaved one."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def llama3_rope_factors(config: dict[str, Any]):
    """The `rope_freqs` tensor llama.cpp needs for Llama 3.x long-context rope scaling."""
    import math

    import numpy as np

    scaling = rope_scaling(config) or {}
    base = rope_theta(config)
    dim = head_dim(config)
    factor = float(scaling.get("factor", 8.0))
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    factors = []
    for i in range(0, dim, 2):
        freq = 1.0 / (base ** (i / dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)
