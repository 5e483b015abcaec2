"""A trained adapter → the personal model: merged checkpoint, quantized GGUF (checked against the
merged checkpoint), the adapter alone as a GGUF LoRA, and an Ollama Modelfile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..progress import ProgressCallback


@dataclass
class ExportedModel:
    gguf: Path                 # the merged, quantized personal model
    lora_gguf: Path            # the adapter alone, for llama.cpp on the base GGUF
    modelfile: Path            # Ollama
    quant: str
    size_bytes: int
    correlation: Optional[float]

    def as_dict(self) -> dict:
        return {"path": str(self.gguf), "lora_gguf": str(self.lora_gguf), "modelfile": str(self.modelfile),
                "quant": self.quant, "bytes": self.size_bytes, "correlation": self.correlation}


def export_personal(base, checkpoint: Path, adapter_dir: Path, out_dir: Path, *, quant: Optional[str] = None,
                    progress: Optional[ProgressCallback] = None) -> ExportedModel:
    """Adapter → merged checkpoint (out_dir/merged) → personal.<quant>.gguf, adapter.gguf and a
    Modelfile, all in `out_dir`. A model file already there (perhaps the active one) is never
    overwritten: the new one gets the next free name."""
    from ..modelio import base_gguf, export_model, inspect_gguf
    from ..modelio.gguf_file import read_metadata
    from ..modelio.modelfile import write_modelfile
    from ..modelio.quantize import default_quant
    from .merge import lora_to_gguf, merge_adapter

    merged = merge_adapter(checkpoint, adapter_dir, out_dir / "merged", progress=progress)
    gguf = base_gguf(base, progress=progress)
    info = inspect_gguf(gguf)
    ffn = read_metadata(gguf).get(f"{info.architecture}.feed_forward_length")
    quant = quant or default_quant(info.embedding_length or 0, ffn)
    out = out_dir / f"personal.{quant}.gguf"
    n = 1
    while out.exists():
        n += 1
        out = out_dir / f"personal.{quant}.{n}.gguf"
    exported = export_model(base, merged, out, quant=quant, name=f"{info.name} (personal)", overwrite=True, progress=progress)
    lora = lora_to_gguf(adapter_dir, gguf, out_dir / "adapter.gguf")
    modelfile = write_modelfile(exported.path, out_dir / "Modelfile")
    return ExportedModel(exported.path, lora, modelfile, quant, exported.size_bytes, exported.correlation)
