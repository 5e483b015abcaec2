"""Merged checkpoint → GGUF F16 → (checked against the checkpoint) → quantized GGUF."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report
from .architectures import arch_of_config
from .bases import base_gguf
from .catalog import Base, resolve_base
from .gguf_export import checkpoint_to_gguf, read_config
from .quantize import normalize_quant, quantize_gguf


@dataclass(frozen=True)
class ExportResult:
    path: Path
    quant: str
    size_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    correlation: Optional[float] = None
    argmax_agreement: Optional[float] = None


def export_model(
    base: "str | Path | Base",
    checkpoint: Path,
    out: Path,
    *,
    quant: str = "Q8_0",
    name: Optional[str] = None,
    verify: bool = True,
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> ExportResult:
    """Write `checkpoint` (a merged model) as a GGUF at `out`, metadata carried from `base`.

    Everything is checked before heavy work starts: the quant type, the output path, the
    checkpoint's architecture and the base. The intermediate F16 file lives in the workspace and
    is removed afterwards; `out` appears only when complete.
    """
    quant = normalize_quant(quant)
    out = Path(out)
    if out.exists() and not overwrite:
        raise MipoError(f"{out} already exists; choose another output path or pass --force")
    if out.is_dir():
        raise MipoError(f"{out} is a folder; give a file name ending in .gguf")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise MipoError(f"checkpoint {checkpoint} does not exist; give the folder of a merged model")
    arch_of_config(read_config(checkpoint), where=str(checkpoint))
    base = base if isinstance(base, Base) else resolve_base(str(base))
    times: dict[str, float] = {}

    t = time.perf_counter()
    gguf_base = base_gguf(base, progress=progress)
    times["base"] = time.perf_counter() - t

    t = time.perf_counter()
    if quant == "F16":
        f16 = checkpoint_to_gguf(checkpoint, out, base_gguf=gguf_base, name=name, overwrite=overwrite, progress=progress)
    else:
        scratch = workspace.cache_dir("tmp")
        f16 = scratch / f"{out.stem}.{int(time.time() * 1000)}.f16.gguf"
        checkpoint_to_gguf(checkpoint, f16, base_gguf=gguf_base, name=name, progress=progress)
    times["write_f16"] = time.perf_counter() - t
    try:
        comparison = None
        if verify:
            t = time.perf_counter()
            report(progress, "verify", "comparing llama.cpp logits with the checkpoint")
            from .verify import verify_gguf

            try:
                comparison = verify_gguf(f16, checkpoint)
            except MipoError:
                if f16 == out:
                    out.unlink(missing_ok=True)
                raise
            times["verify"] = time.perf_counter() - t
            report(progress, "verify", f"correlation {comparison.correlation:.5f}, argmax {comparison.argmax_agreement:.1%}",
                   finished=True, data={"correlation": comparison.correlation, "argmax_agreement": comparison.argmax_agreement})
        if quant != "F16":
            t = time.perf_counter()
            quantize_gguf(f16, out, quant, overwrite=overwrite, progress=progress)
            times["quantize"] = time.perf_counter() - t
    finally:
        if f16 != out:
            f16.unlink(missing_ok=True)
    return ExportResult(
        path=out,
        quant=quant,
        size_bytes=out.stat().st_size,
        seconds=times,
        correlation=comparison.correlation if comparison else None,
        argmax_agreement=comparison.argmax_agreement if comparison else None,
    )
