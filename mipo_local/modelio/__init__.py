"""Model I/O: GGUF ⇄ PyTorch checkpoint, Hugging Face folder → GGUF, quantization, logit checks."""

from .bases import base_checkpoint, base_gguf
from .checkpoint import gguf_to_checkpoint, load_checkpoint
from .export import ExportResult, export_model
from .gguf_export import checkpoint_to_gguf, hf_folder_to_gguf
from .gguf_file import GGUFInfo, inspect_gguf
from .quantize import QUANT_TYPES, default_quant, quantize_gguf

__all__ = [
    "ExportResult", "GGUFInfo", "QUANT_TYPES", "base_checkpoint", "base_gguf", "checkpoint_to_gguf",
    "default_quant", "export_model", "gguf_to_checkpoint", "hf_folder_to_gguf", "inspect_gguf",
    "load_checkpoint", "quantize_gguf",
]
