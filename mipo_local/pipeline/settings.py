"""A run's settings: what pairs to make, how to train, how to export and evaluate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..evaluation.settings import EvalSettings
from ..modelio.quantize import QUANT_TYPES
from ..options import option
from ..pairs.settings import PairSettings
from ..train.settings import TrainSettings
from .runs import digest

BASE_HELP = "catalog name, GGUF path or model folder (default: your chosen model, else the bundled one)"


@dataclass(frozen=True)
class RunSettings:
    base: Optional[str] = option(None, BASE_HELP, kind=str)
    pairs: PairSettings = PairSettings()
    train: TrainSettings = TrainSettings()
    quant: Optional[str] = option(None, "quantization of the personal model (default: by the model's widths)",
                                  choices=tuple(QUANT_TYPES), kind=str)
    max_steps: Optional[int] = option(None, "stop training after this many steps (quick runs)", kind=int, low=1)
    evaluation: EvalSettings = EvalSettings()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSettings":
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in names})

        return cls(base=data.get("base"), pairs=build(PairSettings, data.get("pairs")),
                   train=build(TrainSettings, data.get("train")), quant=data.get("quant"),
                   max_steps=data.get("max_steps"), evaluation=build(EvalSettings, data.get("evaluation")))

    def key(self) -> str:
        return digest(self.to_dict())


def demo_settings() -> RunSettings:
    """Settings for `run --demo`: the whole pipeline on the demo corpus in about 20 minutes on 2 cores."""
    return RunSettings(
        # answers up to 128 tokens: with 64 the demo's held-out texts lost likelihood with their context on
        # every seed measured, with 128 they did not (BENCHMARKS.md, "A longer answer limit", issue 27)
        pairs=PairSettings(examples=40, heldout_pairs=8, max_new_tokens=128, heldout_fraction=0.3, context_tokens=256),
        train=TrainSettings(max_length=768, epochs=2.0),   # two epochs (~70 steps): the fixed-text MI gain's CI > 0
                                                          # on both seeds (BENCHMARKS.md, "Twice the training")
        quant="Q8_0",
        evaluation=EvalSettings(examples=24),
    )
