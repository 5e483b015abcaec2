"""Training settings: one frozen dataclass, the single source of defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainSettings:
    beta: float = option(0.1, "DPO beta: how far the model may move from the base (the MIPO paper's 0.1)", above=0)
    sft_weight: float = option(1.0, "weight of a likelihood (SFT) term on each pair's chosen answer added to the "
                               "DPO loss, as in RPO, so training keeps the chosen answers likely; 0: plain DPO "
                               "(with real_text it keeps your real text likely: BENCHMARKS.md, issue 27)", low=0)
    learning_rate: float = option(2e-4, "learning rate (from the sweep in BENCHMARKS.md; the paper: 5e-7, full "
                                  "fine-tune)", flag="--lr", above=0)
    epochs: float = option(1.0, "passes over the pairs", above=0)
    batch_size: int = option(4, "pairs per optimizer step (split into micro-batches when memory requires)", low=1)
    grad_accum: int = option(1, "micro-batches accumulated per step", low=1)
    lora_rank: int = option(16, "LoRA rank (alpha follows as 2 × rank on the command line; 32 was swept and not "
                            "kept: BENCHMARKS.md)", flag="--rank", low=1)
    lora_alpha: int = option(32, "LoRA alpha", above=0)
    lora_dropout: float = option(0.0, "LoRA dropout", low=0, high=0.99)
    max_length: int = option(1024, "prompt + answer tokens; longer pairs are left out and counted, never truncated", low=16)
    warmup_steps: int = option(2, "learning-rate warm-up steps", low=0)
    checkpoint_every: int = option(20, "save a resumable checkpoint every this many steps", low=1)
    seed: int = option(0, "training seed")
    device: str = option("auto", "where to train: auto (cuda > mps > cpu), cuda, mps or cpu", choices=DEVICES)
    precision: str = option("auto", "auto: bf16 on a GPU that has it, fp32 elsewhere; fp32; or bf16 (on a CPU: fp32 "
                            "weights with bfloat16 compute, only where the CPU has it in hardware)", choices=PRECISIONS)
    mirror: bool = option(True, "also train each pair from the negative's prompt, y- over y+ (the sweep in "
                          "BENCHMARKS.md)")
    gradient_checkpointing: str = option("auto", "auto (when memory requires), on or off", choices=("auto", "on", "off"))
    replay_fraction: float = option(0.5, "incremental runs: share of the training pairs replayed from earlier runs "
                                    "(the rest are the new ones), so the old is not forgotten; 0.5: one earlier "
                                    "pair for each new one, and the cost stays proportional to what is new", low=0,
                                    below=1)
