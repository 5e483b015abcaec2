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
    from ..modelio import base_checkpoint, base_gguf, export_model, inspect_gguf
    from ..modelio.quantize import default_quant
    from .data import load_pairs_from_store
    from .merge import lora_to_gguf, merge_adapter
    from .trainer import train_lora

    with ContextStore() as store:   # pairs are checked before any model is loaded
        records = load_pairs_from_store(store, split="train")
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
    merged = merge_adapter(checkpoint, result.adapter_dir, run_dir / "merged", progress=progress)
    gguf = base_gguf(base, progress=progress)
    info = inspect_gguf(gguf)
    from ..modelio.gguf_file import read_metadata

    ffn = read_metadata(gguf).get(f"{info.architecture}.feed_forward_length")
    quant = quant or default_quant(info.embedding_length or 0, ffn)
    out = run_dir / f"personal.{quant}.gguf"
    exported = export_model(base, merged, out, quant=quant, name=f"{info.name} (personal)", overwrite=True, progress=progress)
    lora = lora_to_gguf(result.adapter_dir, gguf, run_dir / "adapter.gguf")
    from ..active_model import activate

    report(progress, "activate", "checking that the new model loads and answers")
    activate(exported.path)   # raises, leaving the previous model active, when it does not answer
    metrics = {**result.metrics, "export": {"path": str(exported.path), "quant": quant, "bytes": exported.size_bytes,
                                            "correlation": exported.correlation, "lora_gguf": str(lora)}}
    (run_dir / "train_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    report(progress, "export", f"{exported.path.name} and {lora.name}", finished=True)
    return PersonalModel(run_dir, exported.path, lora, False, metrics)
