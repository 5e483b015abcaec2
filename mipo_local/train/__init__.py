"""LoRA DPO training on MIPO pairs (trl + peft), merge, and LoRA adapter export."""

from .settings import TrainSettings
from .trainer import TrainResult, train_lora

__all__ = ["TrainResult", "TrainSettings", "train_lora"]
