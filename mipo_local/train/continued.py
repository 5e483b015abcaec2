"""Continuing a saved LoRA adapter (incremental runs): its weights loaded into the adapter the trainer
made, so training starts exactly where the previous model stopped while the DPO reference stays the
base (the adapter switched off), as in MIPO.

trl, given a PeftModel that already holds an adapter, would copy that adapter as a frozen "ref"
adapter and use it as the reference; the trainer instead makes a fresh adapter from the run's
LoRA settings (reference = base) and this module fills it with the saved weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import MipoError


def adapter_digest(state: dict) -> str:
    """A short hash of LoRA tensors by name (as saved: `get_peft_model_state_dict`'s names), in fp32."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def saved_adapter(adapter_dir: Path) -> dict:
    """The tensors of a saved PEFT adapter folder."""
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise MipoError(f"{adapter_dir} holds no saved adapter to continue from; run with --from-scratch")
    try:
        return load_file(str(path))
    except Exception as exc:  # a damaged file
        raise MipoError(f"the adapter in {adapter_dir} cannot be read ({type(exc).__name__}: {exc}); "
                        "run with --from-scratch") from None


def load_into(model, adapter_dir: Path) -> str:
    """Fill `model`'s (a PeftModel) active adapter with the saved one; returns the saved weights'
    digest, after checking the model now holds exactly them."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    saved = saved_adapter(adapter_dir)
    result = set_peft_model_state_dict(model, saved)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) or [] if "lora_" in k]
    now = get_peft_model_state_dict(model)
    if unexpected or set(now) != set(saved):
        raise MipoError(f"the adapter in {adapter_dir} does not fit this model's LoRA layers; run with --from-scratch")
    import torch

    for name, tensor in now.items():     # equal, in the dtype the model trains in
        if not torch.equal(tensor.detach().cpu(), saved[name].to(tensor.dtype)):
            raise MipoError(f"the adapter in {adapter_dir} did not load exactly ({name}); run with --from-scratch")
    return adapter_digest(saved)
