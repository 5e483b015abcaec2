"""The evaluation's statistics: means with percentile-bootstrap confidence intervals, context
identification (is the true context the best-scoring one?), ROUGE-L against the person's real text,
trimmed means and medians. The log-probabilities they summarize come from `inference.scoring`
(pointwise MI under the base π₀: log π₀(y | c, q) − log π₀(y | q), the quantity MIPO's DPO maximizes).
"""

from __future__ import annotations

import random
from typing import Sequence

from ..context.overlap import lowercase_words


def bootstrap_ci(values: Sequence[float], *, samples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile-bootstrap confidence interval."""
    values = list(values)
    if not values:
        return 0.0, 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, mean, mean
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(samples))
    lo = means[int((1 - level) / 2 * samples)]
    hi = means[min(samples - 1, int((1 + level) / 2 * samples))]
    return mean, lo, hi


def ci_dict(values: Sequence[float]) -> dict:
    """{mean, ci95: [low, high], n}: a mean with its bootstrap 95% CI, as every report writes it."""
    mean, lo, hi = bootstrap_ci(values)
    return {"mean": mean, "ci95": [lo, hi], "n": len(values)}


def identification(true_score: float, distractor_scores: Sequence[float]) -> float:
    """1 when the true context gives the answer the highest score, 0 when a distractor does; a tie
    at the top shares the point (1/(ties+1)), so an answer that carries no information about its
    context scores chance (1/M) on average."""
    top = max(distractor_scores, default=float("-inf"))
    if true_score > top:
        return 1.0
    if true_score < top:
        return 0.0
    return 1.0 / (1 + sum(1 for s in distractor_scores if s == top))


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased words: the longest common subsequence against both lengths (as
    LaMP and CoPe report it; no stemming)."""
    a, b = lowercase_words(candidate), lowercase_words(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(previous[j] + 1 if x == y else max(previous[j + 1], row[j]))
        previous = row
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def trimmed_mean(values: Sequence[float], cut: float = 0.1) -> float:
    """The mean without the lowest and highest `cut` share of the values."""
    values = sorted(values)
    k = int(len(values) * cut)
    kept = values[k:len(values) - k] or values
    return sum(kept) / len(kept) if kept else 0.0


def median(values: Sequence[float]) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
