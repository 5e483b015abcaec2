"""Adapter → merged checkpoint, and adapter → GGUF LoRA adapter that llama.cpp loads on its base."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report


def merge_adapter(checkpoint: Path, adapter_dir: Path, out_dir: Path, *, progress: Optional[ProgressCallback] = None) -> Path:
    """base + LoRA → a plain checkpoint (safetensors), written atomically."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise MipoError(f"{adapter_dir} is not a LoRA adapter (no adapter_config.json)")
    hf_logging.disable_progress_bar()
    report(progress, "merge", "merging the adapter into the base")
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    try:
        with warnings.catch_warnings():      # peft asks transformers' deprecated `is_gradient_checkpointing`
            warnings.simplefilter("ignore", FutureWarning)
            merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except Exception as exc:  # a damaged or foreign adapter file
        raise MipoError(f"the LoRA adapter in {adapter_dir} cannot be loaded ({type(exc).__name__}: {exc}); "
                        "train again (`mipo-local run --new`)") from None
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    with workspace.atomic_path(Path(out_dir), overwrite=True) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    report(progress, "merge", "done", finished=True)
    return Path(out_dir)


def lora_to_gguf(adapter_dir: Path, base_gguf: Path, out: Path, *, overwrite: bool = True) -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp GGUF LoRA (`Llama(lora_path=...)` on `base_gguf`)."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    from ..modelio.architectures import ARCHS, permute_for_gguf
    from ..modelio.gguf_file import inspect_gguf, read_metadata

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    info = inspect_gguf(base_gguf)
    meta = read_metadata(base_gguf)
    arch = info.architecture
    spec = ARCHS[arch]
    n_layers = int(meta[f"{arch}.block_count"])
    n_head = int(meta[f"{arch}.attention.head_count"])
    n_head_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    name_map = gguf.get_tensor_name_map(arch_enum, n_layers)
    tensors = []
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as fh:
        for key in fh.keys():
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            module = key.split(".lora_")[0]
            module = module[len("base_model.model."):] if module.startswith("base_model.model.") else module
            target = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
            if target is None:
                raise MipoError(f"cannot map adapter tensor {key} to llama.cpp")
            data = fh.get_tensor(key).float()
            side = "lora_a" if ".lora_A." in key else "lora_b"
            if side == "lora_b" and spec.permute_qk and module.endswith("q_proj"):
                data = permute_for_gguf(data, n_head)
            elif side == "lora_b" and spec.permute_qk and module.endswith("k_proj"):
                data = permute_for_gguf(data, n_head_kv)
            tensors.append((f"{target}.{side}", np.ascontiguousarray(data.numpy().astype(np.float16))))
    if not tensors:
        raise MipoError(f"{adapter_dir} holds no LoRA tensors")
    with workspace.atomic_path(Path(out), overwrite=overwrite) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        try:
            writer.add_string("general.type", "adapter")
            writer.add_string("adapter.type", "lora")
            writer.add_float32("adapter.lora.alpha", float(config.get("lora_alpha", config.get("r", 8))))
            writer.add_name(f"{info.name} personal LoRA")
            for name, array in tensors:
                writer.add_tensor(name, array)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return Path(out)
