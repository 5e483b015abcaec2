#!/usr/bin/env bash
# The CUDA path of training, checked on a machine with an NVIDIA GPU (issue 15): the card, the
# training tests with --device cuda, then benchmarks/train.py on CUDA (bf16 where supported).
#
#   bash scripts/gpu_check.sh                 # after `make setup` on the GPU machine
#   PY=python3 PAIRS=pairs.jsonl bash scripts/gpu_check.sh
#
# PY: the Python with the project's packages (default .venv/bin/python). PAIRS: a pairs JSONL for the
# benchmark made elsewhere (benchmarks/train.py --pairs), for a GPU box without llama.cpp; tests that
# need llama.cpp are skipped when it is not importable. Figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

echo "== card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
from mipo_local.train.device import plan_device
plan = plan_device("auto")
print(f"plan_device(auto): {plan.device} {plan.dtype_name}")
assert plan.device == "cuda"
EOF

echo "== training tests on cuda, and the shipped DDP config on this machine's GPUs"
skip=()
if ! "$PY" -c "import llama_cpp" 2>/dev/null; then
    echo "(llama_cpp is not importable here: the tests that export GGUF or sample pairs are skipped)"
    skip=(-k "not gguf and not train_command")
fi
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_train.py --device cuda "${skip[@]}"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_train_distributed.py --device cuda -k gpu

echo "== benchmarks/train.py on cuda"
"$PY" benchmarks/train.py --device cuda ${PAIRS:+--pairs "$PAIRS"}

echo "== llama.cpp on the GPU: pairs' batched decoding and chat, tokens/s against the CPU (issue 28)"
if "$PY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>/dev/null; then
    "$PY" -m mipo_local doctor | grep -E "device|stages|decode"
    "$PY" - <<'EOF2'
import os, time
from mipo_local.modelio.catalog import default_card
from mipo_local.inference.generation import BatchedGenerator, Sampling

path = default_card().local_path()
prompts = [f"Write two sentences about the number {i}." for i in range(16)]
for where, flag in (("GPU", "1"), ("CPU", "0")):
    os.environ["MIPO_LLAMA_GPU"] = flag
    gen = BatchedGenerator(path, n_parallel=16, n_ctx_per_seq=512)
    try:
        start = time.perf_counter()
        outs = gen.generate(prompts, Sampling(temperature=0.8, max_new_tokens=64, top_p=0.95))
        took = time.perf_counter() - start
    finally:
        gen.close()
    tokens = sum(len(o.tokens) for o in outs)
    print(f"{where}: {tokens} tokens in {took:.2f} s: {tokens / took:.0f} tok/s (16 prompts, batched)")
EOF2
    MIPO_HOME=$(mktemp -d) "$PY" -m mipo_local chat --base -m "What is the capital of Norway?"
else
    echo "(this llama.cpp build has no GPU offload: rebuild with CMAKE_ARGS=-DGGML_CUDA=ON, or run make setup with nvcc on PATH)"
fi
