"""The bundled SmolLM2: GGUF → checkpoint → GGUF F16 computes what the checkpoint computes."""

from __future__ import annotations

from mipo_local.modelio import gguf_to_checkpoint, inspect_gguf
from mipo_local.modelio.gguf_file import read_metadata, scan_gguf
from mipo_local.modelio.hf_vocab import TOKENIZER_SAMPLE
from mipo_local.modelio.verify import compare_gguf_to_checkpoint, llama_tokens


def test_checkpoint_is_cached_by_content(smol_checkpoint, bundled_gguf):
    assert (smol_checkpoint / "model.safetensors").is_file()
    assert (smol_checkpoint / "mipo-checkpoint.json").is_file()
    before = (smol_checkpoint / "model.safetensors").stat().st_mtime_ns
    again = gguf_to_checkpoint(bundled_gguf)
    assert again == smol_checkpoint
    assert (smol_checkpoint / "model.safetensors").stat().st_mtime_ns == before  # not rewritten


def test_roundtrip_logits_match(smol_f16, smol_checkpoint):
    result = compare_gguf_to_checkpoint(smol_f16, smol_checkpoint)
    assert result.positions >= 64
    assert result.argmax_agreement >= 0.99, result
    assert result.correlation >= 0.9999, result


def test_roundtrip_keeps_metadata(smol_f16, bundled_gguf):
    base = read_metadata(bundled_gguf)
    new = read_metadata(smol_f16)
    assert new["general.name"] == "SmolLM2 round trip"
    assert new["general.file_type"] == 1  # F16
    for key in ("tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.pre",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "llama.block_count",
                "llama.embedding_length", "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.context_length"):
        assert new[key] == base[key], key
    reader = scan_gguf(smol_f16)
    names = {t.name: t for t in reader.tensors}
    assert "output.weight" not in names  # tied embeddings
    assert names["blk.0.attn_norm.weight"].ggml_type == 0  # F32
    assert names["blk.0.attn_q.weight"].ggml_type == 1  # F16
    assert inspect_gguf(smol_f16).architecture == "llama"


def test_token_ids_match_transformers(smol_checkpoint, bundled_gguf):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_checkpoint)
    samples = [TOKENIZER_SAMPLE, "  leading spaces\n\n\n\n    and       runs   ", "🙂🙂🙂 東京 Zürich ½ x²", "for i in range(10):\n\tprint(i*1234)"]
    for text in samples:
        assert llama_tokens(bundled_gguf, text) == tokenizer.encode(text, add_special_tokens=False), text
