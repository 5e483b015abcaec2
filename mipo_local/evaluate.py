"""Numbers that say whether the personal model uses the user's context.

- pointwise conditional mutual information under the base model π₀:
  MI(y; c | q) ≈ log π₀(y | c, q) − log π₀(y | q), for responses y sampled from a model — the
  quantity MIPO's DPO maximizes;
- the log-likelihood per token of the user's real reply given (c, q), for held-out email threads;
- bootstrap confidence intervals for means.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

from .prompt_format import chat_messages


def continuation_logp(model, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> float:
    """log π(completion | prompt) summed over the completion's tokens (token ids in, one forward pass)."""
    import torch

    if not completion_ids:
        return 0.0
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return float(torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt_ids):, None]).sum())


def prompt_ids(tokenizer, messages: Sequence[dict]) -> list[int]:
    """The token ids of `messages` in the model's chat template, ending with the assistant's turn start."""
    prompt = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def response_logp(model, tokenizer, messages: Sequence[dict], response: str) -> tuple[float, int]:
    """(log π(response | messages), number of response tokens), in the model's chat template. The
    response is scored as text, without the end-of-turn token, so responses cut at a length limit
    and complete ones are scored alike."""
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    return continuation_logp(model, prompt_ids(tokenizer, messages), response_ids), len(response_ids)


def pointwise_mi_and_length(model, tokenizer, context: Optional[Sequence[str]], request: str, response: str,
                            without: Optional[Sequence[str]] = None) -> tuple[float, int]:
    """(log π(y | c, q) − log π(y | c', q), number of tokens of y); c' defaults to no context."""
    with_c, n = response_logp(model, tokenizer, chat_messages(context, request), response)
    without_c, _ = response_logp(model, tokenizer, chat_messages(without, request), response)
    return with_c - without_c, n


def pointwise_mi(model, tokenizer, context: Optional[Sequence[str]], request: str, response: str,
                 without: Optional[Sequence[str]] = None) -> float:
    """log π(y | c, q) − log π(y | c', q); c' defaults to no context."""
    return pointwise_mi_and_length(model, tokenizer, context, request, response, without)[0]


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


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"\w+", text.lower())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 on lower-cased words: the longest common subsequence against both lengths (as
    LaMP and CoPe report it; no stemming)."""
    a, b = _words(candidate), _words(reference)
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


def copy_share(answer: str, context: Sequence[str], n: int = 8) -> float:
    """The share of the answer's word n-grams found verbatim in the context (0 for answers shorter
    than n words): using the user's writing is the goal, pasting it back is not."""
    words = _words(answer)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    source = set()
    for text in context or ():
        w = _words(text)
        source.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return sum(g in source for g in grams) / len(grams)


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
