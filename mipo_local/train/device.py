"""Which device trains, in which dtype, with how many threads."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MipoError


@dataclass(frozen=True)
class DevicePlan:
    device: str        # cuda | mps | cpu
    dtype_name: str    # bfloat16 | float16 | float32
    threads: int

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def plan_device(requested: str = "auto") -> DevicePlan:
    """cuda > mps > cpu; bf16 where CUDA supports it, fp32 on MPS and CPU; CPU threads = physical cores."""
    import torch

    from ..llama_runtime import physical_cores

    requested = (requested or "auto").lower()
    if requested not in ("auto", "cuda", "mps", "cpu"):
        raise MipoError(f"unknown device {requested!r}; choose auto, cuda, mps or cpu")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "cuda" and not torch.cuda.is_available():
        raise MipoError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device auto")
    if requested == "mps" and not has_mps:
        raise MipoError("--device mps was asked for, but Apple MPS is not available here; use --device auto")
    device = requested if requested != "auto" else ("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if device == "cuda":
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    else:
        dtype = "float32"   # MPS: fp16 training of small models is unstable; CPU: fp32 is the fast path in torch
    return DevicePlan(device, dtype, physical_cores())
