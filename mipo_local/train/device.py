"""Which device trains, in which dtype, with how many threads."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MipoError


@dataclass(frozen=True)
class DevicePlan:
    device: str        # cuda | mps | cpu
    dtype_name: str    # the weights: bfloat16 | float16 | float32
    threads: int
    autocast_bf16: bool = False   # fp32 weights, matrix products in bfloat16 (a CPU with it in hardware)

    @property
    def mixed_precision(self) -> str:
        """What the trainer computes in: "bf16", "fp16" or "no" (fp32)."""
        if self.autocast_bf16 or self.dtype_name == "bfloat16":
            return "bf16"
        return "fp16" if self.dtype_name == "float16" else "no"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def plan_device(requested: str = "auto", precision: str = "auto") -> DevicePlan:
    """cuda > mps > cpu; with `precision` "auto": bf16 where CUDA supports it, fp32 on MPS and CPU;
    "bf16" on a CPU: fp32 weights with bfloat16 autocast, refused where the CPU has no bfloat16
    hardware (emulated, it is slower than fp32). CPU threads = physical cores."""
    import torch

    from ..inference.llama_runtime import physical_cores
    from ..inference.scoring import native_bf16
    from .settings import PRECISIONS

    requested = (requested or "auto").lower()
    if requested not in ("auto", "cuda", "mps", "cpu"):
        raise MipoError(f"unknown device {requested!r}; choose auto, cuda, mps or cpu")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "cuda" and not torch.cuda.is_available():
        raise MipoError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device auto")
    if requested == "mps" and not has_mps:
        raise MipoError("--device mps was asked for, but Apple MPS is not available here; use --device auto")
    device = requested if requested != "auto" else ("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise MipoError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return DevicePlan(device, "float32", physical_cores())
    if device == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise MipoError("--precision bf16 was asked for, but this GPU has no bfloat16; use --precision auto")
        return DevicePlan(device, "bfloat16" if torch.cuda.is_bf16_supported() else "float16", physical_cores())
    if precision == "bf16":
        if device == "mps":
            raise MipoError("--precision bf16 is not supported on Apple MPS here; use --precision auto (fp32)")
        if not native_bf16():
            raise MipoError("--precision bf16 was asked for, but this CPU has no bfloat16 hardware (AMX or AVX-512 "
                            "BF16), where it is slower than fp32; use --precision auto (fp32)")
        return DevicePlan(device, "float32", physical_cores(), autocast_bf16=True)
    # auto on MPS and CPU: fp32 (MPS: fp16 training of small models is unstable; CPU: see BENCHMARKS.md, "bf16")
    return DevicePlan(device, "float32", physical_cores())
