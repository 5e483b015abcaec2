"""Tiny random-weight llama, qwen2 and qwen3 models: folder → GGUF and checkpoint → GGUF match torch."""

from __future__ import annotations

import pytest

from mipo_local.modelio import checkpoint_to_gguf, hf_folder_to_gguf
from mipo_local.modelio.gguf_file import read_metadata, scan_gguf
from mipo_local.modelio.verify import compare_gguf_to_checkpoint

from .tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def tokenizer_source(smol_checkpoint):
    return smol_checkpoint


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_folder_and_checkpoint_export_match_torch(arch, tmp_path, tokenizer_source):
    folder = build_tiny_model(arch, tmp_path / f"tiny-{arch}", tokenizer_source)
    converted = hf_folder_to_gguf(folder, tmp_path / "base.gguf")  # also checks tokenization vs transformers
    result = compare_gguf_to_checkpoint(converted, folder)
    assert result.positions >= 64
    assert result.argmax_agreement >= 0.99, result
    assert result.correlation >= 0.9999, result
    meta = read_metadata(converted)
    assert meta["general.architecture"] == arch
    assert meta["tokenizer.chat_template"]
    assert meta[f"{arch}.attention.head_count_kv"] == 2

    # the merged-checkpoint path: metadata carried from a base GGUF of the same architecture
    exported = checkpoint_to_gguf(folder, tmp_path / "personal.gguf", base_gguf=converted, name="tiny personal")
    again = compare_gguf_to_checkpoint(exported, folder)
    assert again.argmax_agreement >= 0.99 and again.correlation >= 0.9999, again
    assert read_metadata(exported)["general.name"] == "tiny personal"


def test_llama3_rope_scaling_exports_rope_freqs(tmp_path, tokenizer_source):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64, "rope_theta": 500000.0}
    folder = build_tiny_model("llama", tmp_path / "tiny-llama3", tokenizer_source, rope_scaling=scaling)
    converted = hf_folder_to_gguf(folder, tmp_path / "llama3.gguf")
    assert "rope_freqs.weight" in {t.name for t in scan_gguf(converted).tensors}
    result = compare_gguf_to_checkpoint(converted, folder)
    # random weights leave near-ties between tokens: the correlation is the sharp check here
    assert result.correlation >= 0.9999 and result.argmax_agreement >= 0.97, result


def test_missing_permutation_is_caught(tmp_path, tokenizer_source):
    folder = build_tiny_model("llama", tmp_path / "tiny-llama", tokenizer_source)
    good = hf_folder_to_gguf(folder, tmp_path / "good.gguf")
    bad = checkpoint_to_gguf(folder, tmp_path / "bad.gguf", base_gguf=good, permute_qk=False)
    result = compare_gguf_to_checkpoint(bad, folder)
    assert not result.passes(), result
