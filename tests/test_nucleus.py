"""The nucleus sampler keeps exactly the tokens a full sort keeps, and draws from the tempered nucleus."""

from __future__ import annotations

import numpy as np
import pytest

from mipo_local.inference.nucleus import NucleusSampler


def full_sort_nucleus(logits: np.ndarray, top_p: float, top_k: int = 0) -> list[int]:
    """The reference: llama.cpp's chain done the slow way (sort everything)."""
    order = np.argsort(-logits, kind="stable")
    if top_k:
        order = order[:top_k]
    if top_p >= 1.0:                 # llama.cpp's top-p is off at 1.0
        return sorted(order.tolist())
    probs = np.exp(logits[order] - logits[order].max())
    probs /= probs.sum()
    cumulative = np.cumsum(probs, dtype=np.float64)
    keep = next((i + 1 for i, c in enumerate(cumulative) if c >= top_p), len(order))
    return sorted(order[:keep].tolist())


@pytest.mark.parametrize("shape", ["peaked", "flat", "two-peaks"])
@pytest.mark.parametrize("top_k", [0, 50])
def test_nucleus_equals_the_full_sort(shape, top_k):
    rng = np.random.default_rng(7)
    for trial in range(40):
        if shape == "peaked":        # as a language model's next token usually is
            logits = rng.normal(0, 3, 49152).astype(np.float32)
            logits[rng.integers(0, 49152, 5)] += 25
        elif shape == "flat":        # the floor check fails: the full sort is taken
            logits = rng.normal(0, 0.01, 49152).astype(np.float32)
        else:
            logits = rng.normal(0, 2, 5000).astype(np.float32)
            logits[:2] += 12
        for top_p in (0.5, 0.9, 0.95, 1.0):
            sampler = NucleusSampler(0.8, top_p, top_k, seed=trial)
            ours, reference = set(sampler.nucleus(logits).tolist()), set(full_sort_nucleus(logits, top_p, top_k))
            if shape == "flat":      # thousands of near-equal tokens: rounding may move the boundary by one,
                # or swap two exactly tied tokens there
                assert len(ours ^ reference) <= 2 and abs(len(ours) - len(reference)) <= 1, (trial, top_p)
            else:
                assert ours == reference, (trial, top_p)


def test_draws_follow_the_tempered_nucleus_and_repeat_with_the_seed():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.04, 0.01], dtype=np.float32))
    sampler = NucleusSampler(0.5, top_p=0.9, seed=3)
    assert sorted(sampler.nucleus(logits).tolist()) == [0, 1, 2]     # 0.5 + 0.3 < 0.9 ≤ 0.95
    draws = np.array([sampler.sample(logits) for _ in range(20000)])
    kept = np.array([0.5, 0.3, 0.15]) ** (1 / 0.5)                     # temperature after the cut
    expected = kept / kept.sum()
    observed = np.bincount(draws, minlength=5)[:3] / len(draws)
    assert set(np.unique(draws)) <= {0, 1, 2}
    assert np.abs(observed - expected).max() < 0.015
    again = NucleusSampler(0.5, top_p=0.9, seed=3)
    assert [again.sample(logits) for _ in range(200)] == draws[:200].tolist()


def test_temperature_zero_is_refused():
    with pytest.raises(ValueError):
        NucleusSampler(0.0)
