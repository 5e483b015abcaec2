"""Model I/O on the bundled SmolLM2-135M: GGUF→checkpoint (first, cached), checkpoint→GGUF F16,
quantize per type, file sizes, and the round trip's logit agreement.

Run: .venv/bin/python benchmarks/model_io.py
Uses a fresh temporary workspace so the first conversion is really the first.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["MIPO_HOME"] = home
        from mipo_local.inference.llama_runtime import physical_cores
        from mipo_local.modelio import checkpoint_to_gguf, gguf_to_checkpoint, quantize_gguf
        from mipo_local.modelio.catalog import default_card
        from mipo_local.modelio.verify import compare_gguf_to_checkpoint

        gguf = default_card().local_path()
        print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {physical_cores()} physical; Python {platform.python_version()}")
        print(f"base: {gguf.name} ({gguf.stat().st_size / 1e6:.1f} MB)")

        t = time.perf_counter()
        ckpt = gguf_to_checkpoint(gguf)
        first = time.perf_counter() - t
        t = time.perf_counter()
        gguf_to_checkpoint(gguf)
        cached = time.perf_counter() - t
        size = sum(p.stat().st_size for p in ckpt.iterdir()) / 1e6
        print(f"gguf -> checkpoint: first {first:.1f} s, cached {cached:.2f} s ({size:.0f} MB safetensors)")

        f16 = Path(home) / "roundtrip.f16.gguf"
        t = time.perf_counter()
        checkpoint_to_gguf(ckpt, f16, base_gguf=gguf)
        print(f"checkpoint -> gguf F16: {time.perf_counter() - t:.1f} s ({f16.stat().st_size / 1e6:.1f} MB)")

        result = compare_gguf_to_checkpoint(f16, ckpt)
        print(f"round trip (F16 via llama.cpp vs checkpoint via transformers, {result.positions} positions): "
              f"argmax agreement {result.argmax_agreement:.1%}, correlation {result.correlation:.6f}")

        for quant in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"):
            out = Path(home) / f"m.{quant}.gguf"
            t = time.perf_counter()
            quantize_gguf(f16, out, quant)
            seconds = time.perf_counter() - t
            q = compare_gguf_to_checkpoint(out, ckpt)
            print(f"quantize {quant:6}: {seconds:.1f} s, {out.stat().st_size / 1e6:.1f} MB, "
                  f"vs checkpoint: argmax {q.argmax_agreement:.1%}, correlation {q.correlation:.4f}")


if __name__ == "__main__":
    main()
