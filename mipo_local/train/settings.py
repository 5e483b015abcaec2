"""Training settings: one frozen dataclass, the single source of defaults."""

from __future__ import annotations

from dataclasses import dataclass

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainSettings:
    beta: float = 0.1                  # DPO β, as in the MIPO paper
    learning_rate: float = 2e-4        # from the sweep in BENCHMARKS.md (the paper: 5e-7, full fine-tune)
    epochs: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    max_length: int = 1024             # prompt + completion tokens; longer pairs are truncated
    warmup_steps: int = 2
    checkpoint_every: int = 20         # steps
    seed: int = 0
    device: str = "auto"               # auto | cuda | mps | cpu
    mirror: bool = True                # also train each pair from the negative's prompt, y− over y+ (pairs.export; the sweep in BENCHMARKS.md)
    gradient_checkpointing: str = "auto"   # auto (when memory requires) | on | off
