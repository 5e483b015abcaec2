"""The train command's flow: pairs from the store → LoRA → merged GGUF (quantized) + GGUF LoRA."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report
from ..workspace import write_text_atomic
from .settings import TrainSettings


@dataclass
class PersonalModel:
    run_dir: Path
    gguf: Optional[Path]
    lora_gguf: Optional[Path]
    stopped: bool
    metrics: dict


def runs_dir() -> Path:
    return workspace.subdir("runs")


def latest_train_run() -> Optional[Path]:
    runs = sorted(p for p in runs_dir().glob("train-*") if (p / "train_settings.json").is_file())
    return runs[-1] if runs else None


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
    """Adapter → merged checkpoint (out_dir/merged) → personal.<quant>.gguf (checked against the merged
    checkpoint), the adapter as a GGUF LoRA, and an Ollama Modelfile, all in `out_dir`."""
    from ..modelfile import write_modelfile
    from ..modelio import base_gguf, export_model, inspect_gguf
    from ..modelio.gguf_file import read_metadata
    from ..modelio.quantize import default_quant
    from .merge import lora_to_gguf, merge_adapter

    merged = merge_adapter(checkpoint, adapter_dir, out_dir / "merged", progress=progress)
    gguf = base_gguf(base, progress=progress)
    info = inspect_gguf(gguf)
    ffn = read_metadata(gguf).get(f"{info.architecture}.feed_forward_length")
    quant = quant or default_quant(info.embedding_length or 0, ffn)
    out = out_dir / f"personal.{quant}.gguf"
    n = 1
    while out.exists():   # never overwrite a model that may be the active one
        n += 1
        out = out_dir / f"personal.{quant}.{n}.gguf"
    exported = export_model(base, merged, out, quant=quant, name=f"{info.name} (personal)", overwrite=True, progress=progress)
    lora = lora_to_gguf(adapter_dir, gguf, out_dir / "adapter.gguf")
    modelfile = write_modelfile(exported.path, out_dir / "Modelfile")
    return ExportedModel(exported.path, lora, modelfile, quant, exported.size_bytes, exported.correlation)


def train_and_export(
    base_spec: Optional[str] = None,
    settings: TrainSettings = TrainSettings(),
    *,
    resume: bool = False,
    export: bool = True,
    quant: Optional[str] = None,
    max_steps: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> PersonalModel:
    from ..catalog import resolve_base
    from ..context import ContextStore
    from ..modelio import base_checkpoint
    from .data import load_pairs_from_store
    from .trainer import train_lora

    with ContextStore() as store:   # pairs are checked before any model is loaded
        records = load_pairs_from_store(store, split="train", mirror=settings.mirror)
        try:
            heldout = load_pairs_from_store(store, split="heldout")
        except MipoError:
            heldout = []
    base = resolve_base(base_spec)
    if resume:
        run_dir = latest_train_run()
        if run_dir is None:
            raise MipoError("no training run to resume; start one with `mipo-local train`")
    else:
        run_dir = runs_dir() / f"train-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    checkpoint = base_checkpoint(base, progress=progress)
    result = train_lora(checkpoint, records, run_dir, settings, resume=resume, progress=progress,
                        should_stop=should_stop, max_steps=max_steps, heldout=heldout[:32])
    if result.stopped or not export:
        return PersonalModel(run_dir, None, None, result.stopped, result.metrics)
    exported = export_personal(base, checkpoint, result.adapter_dir, run_dir, quant=quant, progress=progress)
    from ..active_model import activate

    report(progress, "activate", "checking that the new model loads and answers")
    activate(exported.gguf)   # raises, leaving the previous model active, when it does not answer
    metrics = {**result.metrics, "export": exported.as_dict()}
    write_text_atomic(run_dir / "train_metrics.json", json.dumps(metrics, indent=2, default=str))
    report(progress, "export", f"{exported.gguf.name} and {exported.lora_gguf.name}", finished=True)
    return PersonalModel(run_dir, exported.gguf, exported.lora_gguf, False, metrics)
