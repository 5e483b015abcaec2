"""PyTorch checkpoint (a merged model or a Hugging Face folder) → GGUF F16, with gguf's writer.

Two sources of metadata:
- `checkpoint_to_gguf(..., base_gguf=...)`: every key of the base GGUF (tokenizer, chat template,
  hyperparameters) is carried over; only the name and the file type change.
- `hf_folder_to_gguf(...)`: hyperparameters from config.json, tokenizer from the folder through the
  gguf package's vocab helpers, then tokenization is checked against transformers.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .. import workspace
from ..errors import MipoError
from ..progress import ProgressCallback, report
from .architectures import (
    ArchSpec,
    arch_of_config,
    head_dim,
    llama3_rope_factors,
    permute_for_gguf,
    rope_scaling,
    rope_theta,
)
from .gguf_file import inspect_gguf, open_reader

# Keys never copied from a base GGUF: the writer sets them, or they describe the old file.
_NOT_COPIED = {"general.architecture", "general.file_type", "general.name", "general.quantization_version"}


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise MipoError(f"{folder} has no config.json; give a checkpoint folder (save_pretrained) or a Hugging Face model folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MipoError(f"{path} is not valid JSON ({exc}); the checkpoint is damaged") from None


def iter_checkpoint_tensors(folder: Path) -> Iterator[tuple[str, Any]]:
    """(name, torch tensor) for every tensor in the folder's safetensors files."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise MipoError(f"{folder} holds no .safetensors weights; save the model with save_pretrained(safe_serialization=True)")
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name)


def count_checkpoint_tensors(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            total += len(list(fh.keys()))
    return total


def gguf_tensors(
    config: dict[str, Any], tensors: Iterator[tuple[str, Any]], spec: ArchSpec, *, permute_qk: Optional[bool] = None
) -> Iterator[tuple[str, Any]]:
    """Map HF tensors to GGUF names and layouts; 2-D weights as float16, 1-D (norms, biases) as float32."""
    import gguf
    import numpy as np
    import torch

    permute = spec.permute_qk if permute_qk is None else permute_qk
    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == spec.name)
    name_map = gguf.get_tensor_name_map(arch_enum, n_layers)
    for hf_name, tensor in tensors:
        if hf_name.endswith((".rotary_emb.inv_freq", "rotary_emb.inv_freq")):
            continue
        if hf_name == "lm_head.weight" and tied:
            continue
        new_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise MipoError(f"cannot map tensor {hf_name!r} of this {spec.name} checkpoint to GGUF; is it a plain causal LM?")
        data = tensor.detach().to(torch.float32)
        if permute and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_for_gguf(data, n_head)
        elif permute and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute_for_gguf(data, n_head_kv)
        array = data.numpy()
        array = array.astype(np.float32 if array.ndim <= 1 else np.float16)
        yield new_name, np.ascontiguousarray(array)


def _write(
    out: Path,
    arch: str,
    add_metadata: Callable[[Any], None],
    tensors: Iterator[tuple[str, Any]],
    *,
    overwrite: bool,
    progress: Optional[ProgressCallback],
    stage: str,
    total_tensors: Optional[int] = None,
    extra_tensors: tuple = (),
) -> Path:
    import gguf

    out = Path(out)
    with workspace.atomic_path(out, overwrite=overwrite) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        try:
            add_metadata(writer)
            writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            count = 0
            for name, array in list(tensors) + list(extra_tensors):
                writer.add_tensor(name, array)
                count += 1
                report(progress, stage, f"prepared {name}", done=count, total=total_tensors, unit="tensors")
            report(progress, stage, "writing the file", done=count, total=total_tensors, unit="tensors")
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()           # flushes: a full disk may first show here
        except OSError as exc:
            with contextlib.suppress(Exception):   # closing after a failed write raises again: keep the first error
                writer.close()
            raise MipoError(f"could not write {out}: {exc.strerror or exc}; free some disk space or choose another place") from None
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
    report(progress, stage, "done", finished=True, data={"path": str(out)})
    return out


def _copy_metadata_from(reader, writer, *, name: str) -> None:
    import gguf

    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in _NOT_COPIED:
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), vtype)
    writer.add_name(name)


def checkpoint_to_gguf(
    checkpoint: Path,
    out: Path,
    *,
    base_gguf: Path,
    name: Optional[str] = None,
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
    permute_qk: Optional[bool] = None,
) -> Path:
    """Write a (merged) checkpoint as GGUF F16 with all metadata carried from `base_gguf`.

    `permute_qk` overrides the architecture's rule; it exists only so tests can prove that a
    missing permutation is caught.
    """
    checkpoint = Path(checkpoint)
    base_info = inspect_gguf(base_gguf)
    config = read_config(checkpoint)
    spec = arch_of_config(config, where=str(checkpoint))
    if spec.name != base_info.architecture:
        raise MipoError(f"checkpoint {checkpoint} is {spec.name} but base {base_gguf} is {base_info.architecture}; export with the base it was trained from")
    for key, value in (("block_count", config["num_hidden_layers"]), ("embedding_length", config["hidden_size"])):
        if getattr(base_info, key) not in (None, value):
            raise MipoError(
                f"checkpoint {checkpoint} does not match base {base_gguf} ({key} {value} vs {getattr(base_info, key)}); "
                "export with the base it was trained from"
            )
    reader = open_reader(base_gguf)
    base_tensor_names = {t.name for t in reader.tensors}
    extra = []
    if "rope_freqs.weight" in base_tensor_names:  # llama 3 rope scaling factors: not in HF checkpoints
        import numpy as np

        t = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
        extra.append(("rope_freqs.weight", np.array(t.data, dtype=np.float32)))
    n_tensors = sum(1 for t in reader.tensors)
    display = name or f"{base_info.name} (personalized)"
    start = time.perf_counter()
    path = _write(
        out,
        spec.name,
        lambda w: _copy_metadata_from(reader, w, name=display),
        gguf_tensors(config, iter_checkpoint_tensors(checkpoint), spec, permute_qk=permute_qk),
        overwrite=overwrite,
        progress=progress,
        stage="write-gguf",
        total_tensors=n_tensors,
        extra_tensors=tuple(extra),
    )
    report(progress, "write-gguf", "written", finished=True, data={"seconds": time.perf_counter() - start})
    return path


def hf_folder_to_gguf(
    folder: Path,
    out: Path,
    *,
    name: Optional[str] = None,
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
    check_tokenizer: bool = True,
) -> Path:
    """Convert a Hugging Face model folder to GGUF F16 (hyperparameters + tokenizer from the folder)."""
    import gguf

    from .hf_vocab import add_tokenizer_metadata, check_tokenization

    folder = Path(folder)
    config = read_config(folder)
    spec = arch_of_config(config, where=str(folder))
    if not (folder / "tokenizer.json").is_file():
        raise MipoError(f"{folder} has no tokenizer.json; a base folder needs its tokenizer (a fast GPT-2 style BPE tokenizer)")
    scaling = rope_scaling(config)
    extra = []
    if scaling is not None:
        if scaling["rope_type"] == "llama3":
            extra.append(("rope_freqs.weight", llama3_rope_factors(config)))
        elif scaling["rope_type"] not in ("linear", "yarn"):
            raise MipoError(f"{folder} uses rope scaling {scaling['rope_type']!r}, which mipo-local cannot export yet")
    vocab_size = int(config["vocab_size"])

    def add_metadata(w) -> None:
        w.add_name(name or config.get("_name_or_path") or folder.name)
        w.add_context_length(int(config["max_position_embeddings"]))
        w.add_embedding_length(int(config["hidden_size"]))
        w.add_block_count(int(config["num_hidden_layers"]))
        w.add_feed_forward_length(int(config["intermediate_size"]))
        w.add_head_count(int(config["num_attention_heads"]))
        w.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
        w.add_rope_freq_base(rope_theta(config))
        w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
        w.add_key_length(head_dim(config))
        w.add_value_length(head_dim(config))
        if spec.name == "llama":
            w.add_rope_dimension_count(head_dim(config))
            w.add_vocab_size(vocab_size)
        if scaling is not None and scaling["rope_type"] in ("linear", "yarn"):
            kind = gguf.RopeScalingType.LINEAR if scaling["rope_type"] == "linear" else gguf.RopeScalingType.YARN
            w.add_rope_scaling_type(kind)
            w.add_rope_scaling_factor(float(scaling.get("factor", 1.0)))
            if "original_max_position_embeddings" in scaling:
                w.add_rope_scaling_orig_ctx_len(int(scaling["original_max_position_embeddings"]))
        add_tokenizer_metadata(w, folder, vocab_size)

    n_tensors = count_checkpoint_tensors(folder) + len(extra)
    path = _write(
        out,
        spec.name,
        add_metadata,
        gguf_tensors(config, iter_checkpoint_tensors(folder), spec),
        overwrite=overwrite,
        progress=progress,
        stage="write-gguf",
        total_tensors=n_tensors,
        extra_tensors=tuple(extra),
    )
    if check_tokenizer:
        try:
            check_tokenization(path, folder)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path
