"""GGUF → trainable PyTorch checkpoint (dequantized), cached in the workspace by content hash."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report
from .gguf_file import cached_sha256 as file_sha256, inspect_gguf

CHECKPOINT_MARKER = "mipo-checkpoint.json"


def cached_checkpoint_path(gguf_path: Path, digest: Optional[str] = None) -> Path:
    digest = digest or file_sha256(gguf_path)
    return workspace.checkpoints_cache() / digest[:24]


def gguf_to_checkpoint(gguf_path: Path, *, progress: Optional[ProgressCallback] = None) -> Path:
    """Dequantize a GGUF into a safetensors checkpoint folder (model + tokenizer), once.

    The folder is keyed by the GGUF's SHA-256, so a second call is instant and a changed file
    gets a new checkpoint. Written to a temporary folder and renamed when complete.
    """
    gguf_path = Path(gguf_path)
    info = inspect_gguf(gguf_path)  # validates before any heavy import
    report(progress, "checkpoint", "hashing the GGUF", done=0, total=3)
    digest = file_sha256(gguf_path)
    out = cached_checkpoint_path(gguf_path, digest)
    if (out / CHECKPOINT_MARKER).is_file():
        report(progress, "checkpoint", "cached", done=3, total=3, finished=True, data={"path": str(out), "cached": True})
        return out
    if out.exists():  # a folder without its marker: left by something else; replace it
        import shutil

        shutil.rmtree(out)

    start = time.perf_counter()
    report(progress, "checkpoint", "loading and dequantizing the GGUF", done=1, total=3)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        # transformers' GGUF loader draws its own progress bar on stderr: keep the terminal ours
        with contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(
                folder,
                gguf_file=name,
                quantization_config=GgufConfig(gguf_file=name, dequantize=True),
                dtype=torch.float32,
            )
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:
        raise MipoError(f"transformers could not load {gguf_path} ({type(exc).__name__}: {exc})") from None
    # The loaded model must not remember it came from a quantized file: it is plain fp32 now.
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            try:
                delattr(model, attr)
            except AttributeError:
                pass
    if hasattr(model.config, "quantization_config"):
        try:
            del model.config.quantization_config
        except AttributeError:
            pass
    model.config.dtype = torch.float32
    _align_pre_tokenizer(tokenizer, gguf_path)
    if info.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = info.chat_template

    report(progress, "checkpoint", "saving safetensors", done=2, total=3)
    with workspace.atomic_path(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        meta = {
            "source_gguf": str(gguf_path.resolve()),
            "source_sha256": digest,
            "architecture": info.architecture,
            "name": info.name,
            "seconds": round(time.perf_counter() - start, 2),
        }
        (tmp / CHECKPOINT_MARKER).write_text(json.dumps(meta, indent=2))
    del model
    report(progress, "checkpoint", "done", done=3, total=3, finished=True, data={"path": str(out), "cached": False})
    return out


def _align_pre_tokenizer(tokenizer, gguf_path: Path) -> None:
    """transformers rebuilds a GGUF's tokenizer with a plain GPT-2 pre-tokenizer; llama.cpp splits
    text by the GGUF's `tokenizer.ggml.pre` type (SmolLM: every digit alone; Qwen2, Llama 3: their
    own regex). Give the checkpoint's tokenizer llama.cpp's splitting, so both produce the same ids."""
    from .gguf_file import read_metadata
    from .hf_vocab import pre_tokenizer_for

    pre = read_metadata(gguf_path).get("tokenizer.ggml.pre")
    replacement = pre_tokenizer_for(pre) if isinstance(pre, str) else None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if replacement is not None and backend is not None:
        backend.pre_tokenizer = replacement


def load_checkpoint(path: Path, *, dtype=None, device: str = "cpu"):
    """Load a checkpoint folder as a transformers causal LM (fp32 on CPU by default)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise MipoError(f"{path} is not a model checkpoint (no config.json); give a folder made by mipo-local or save_pretrained")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return model.to(device).eval()
