"""Tiny random-weight models of each supported architecture, built in the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def build_tiny_model(arch: str, folder: Path, tokenizer_from: Path, *, seed: int = 0, rope_scaling: dict | None = None) -> Path:
    """Save a tiny `arch` model with random weights (exactly representable in fp16) and a real tokenizer."""
    import json

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,          # n_head != n_head_kv: the k permutation differs from q's
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    if arch == "qwen3":
        common["head_dim"] = 32          # not hidden/heads: exercises key_length/value_length
    if rope_scaling is not None:
        common["rope_scaling"] = rope_scaling
    config = AutoConfig.for_model(arch, **common)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(torch.randn_like(param) * (0.5 if param.ndim == 1 else 0.15))
            if name.endswith("embed_tokens.weight"):
                # rows of very different norms, as in trained models: the argmax is decisive,
                # not a near-tie between thousands of equally likely tokens
                param.mul_(torch.exp(1.0 * torch.randn(param.shape[0], 1)))
            param.copy_(param.half().float())  # exactly representable in the F16 GGUF
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, folder / name)
    if arch in ("qwen2", "qwen3"):
        # transformers tokenizes a Qwen model with Qwen's own pre-tokenizer regex: give the
        # tokenizer file that splitting too, as a real Qwen folder has it
        from tokenizers import Tokenizer

        from mipo_local.modelio.hf_vocab import pre_tokenizer_for

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.pre_tokenizer = pre_tokenizer_for("qwen2")
        tok.save(str(folder / "tokenizer.json"))
    return folder
