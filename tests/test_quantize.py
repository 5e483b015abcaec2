"""Each quantization type loads in llama.cpp and generates."""

from __future__ import annotations

import pytest

from mipo_local.errors import MipoError
from mipo_local.inference.llama_runtime import llama_model
from mipo_local.modelio import inspect_gguf, quantize_gguf
from mipo_local.modelio.quantize import default_quant


@pytest.mark.parametrize("quant", ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"])
def test_quant_type_loads_and_generates(quant, smol_f16, tmp_path):
    events = []
    out = quantize_gguf(smol_f16, tmp_path / f"m.{quant}.gguf", quant, progress=events.append)
    assert out.is_file() and out.stat().st_size < smol_f16.stat().st_size
    assert events[-1].finished and events[-1].stage == "quantize"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left
    info = inspect_gguf(out)
    assert info.architecture == "llama" and info.file_type != 1
    with llama_model(out, n_ctx=256) as llm:
        result = llm.create_completion("Once upon a time", max_tokens=8, temperature=0.0)
    assert result["usage"]["completion_tokens"] >= 1
    assert result["choices"][0]["text"].strip()


def test_unknown_quant_type_is_refused(smol_f16, tmp_path):
    with pytest.raises(MipoError, match="unknown quantization"):
        quantize_gguf(smol_f16, tmp_path / "x.gguf", "Q3_XYZ")
    assert not list(tmp_path.iterdir())


def test_default_quant_follows_widths():
    assert default_quant(576, 1536) == "Q8_0"      # SmolLM2-135M: K-quants would fall back
    assert default_quant(2048, 8192) == "Q4_K_M"   # Llama-3.2-1B
