"""The evaluation's settings (they make the CLI flags and the app's form) and the neutral text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..inference.scoring import PRECISIONS
from ..options import option

NEUTRAL_TEXT = Path(__file__).resolve().parents[1] / "data" / "neutral.txt"


@dataclass(frozen=True)
class EvalSettings:
    writing: int = option(100, "held-out pieces of your own writing (notes, replies you wrote) scored in place, at "
                          "most: the headline", flag="--eval-writing", low=0)
    writing_tokens: int = option(256, "each held-out text scored up to this many tokens (whole sentences)",
                                 flag="--eval-writing-tokens", low=8)
    examples: int = option(24, "held-out examples to evaluate on, at most", flag="--eval-examples", low=0)
    answers: int = option(2, "K: answers sampled per example and model", flag="--eval-answers", low=1)
    contexts: int = option(4, "M: the true context and M−1 distractors in the identification test",
                           flag="--eval-contexts", low=1)
    seed: int = option(1234, "evaluation sampling seed", flag="--eval-seed")
    samples_shown: int = option(2, "before/after answers shown in the report", flag="--samples-shown", low=0)
    scoring: str = option("fp32", "how answers are scored: fp32 (exact), or bf16-matmul (fp32 with bfloat16 matrix "
                          "products: ~1.3x faster where the CPU has AMX/AVX-512 BF16, but the fixed-text MI gain "
                          "moves by ~0.003 nats/token; BENCHMARKS.md)",
                          choices=PRECISIONS, flag="--eval-scoring")
