"""What a training run returns, in one process (`trainer.train_lora`) or under `accelerate launch`
(`distributed.launch_training`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Optional[Path]        # the final adapter (None when stopped early)
    steps: int
    total_steps: int
    stopped: bool                      # stopped before the end (Ctrl-C / cancel): resume later
    seconds: float
    pairs_per_second: float
    metrics: dict
