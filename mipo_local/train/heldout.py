"""Held-out check: DPO rewards of held-out pairs, and the policy's own preference for y+ over y-."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

OnPair = Optional[Callable[[int, int], None]]     # (pairs scored, of how many): progress


def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "input_ids") else encoded)


def completion_logps(model, tokenizer, records: Sequence[dict], on_pair: OnPair = None) -> list[tuple[float, float]]:
    """(log π(chosen | prompt), log π(rejected | prompt)) for each record, tokenized as trl does: the
    whole conversation (so the end-of-turn token counts), completion = what follows the prompt.
    `on_pair(done, total)` after each record."""
    from ..inference.scoring import continuation_logp

    out = []
    model.eval()
    for r in records:
        prompt = _ids(tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True))
        pair = []
        for side in ("chosen", "rejected"):
            full = _ids(tokenizer.apply_chat_template(r["prompt"] + r[side], tokenize=True))
            pair.append(continuation_logp(model, full[:len(prompt)], full[len(prompt):]))
        out.append((pair[0], pair[1]))
        if on_pair is not None:
            on_pair(len(out), len(records))
    return out


def reference_logps(model, tokenizer, records: Sequence[dict], on_pair: OnPair = None) -> list[tuple[float, float]]:
    """completion_logps of the reference: the PEFT model with its adapter switched off."""
    import contextlib

    disable = getattr(model, "disable_adapter", None)
    with (disable() if disable else contextlib.nullcontext()):
        return completion_logps(model, tokenizer, records, on_pair)


def _won(margin: float) -> float:
    """A pair counts 1 when y+ is preferred, 0 when y− is, ½ on a tie (before training every DPO
    margin is exactly 0: that is chance, 50%, not 0%)."""
    return 1.0 if margin > 0 else 0.0 if margin < 0 else 0.5


def summarize(policy: Sequence[tuple[float, float]], reference: Sequence[tuple[float, float]], beta: float) -> dict:
    """DPO reward margin/accuracy (policy vs reference) and the policy's log-likelihood margin."""
    margins = [beta * ((pc - rc) - (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference)]
    own = [pc - pr for pc, pr in policy]
    n = max(1, len(policy))
    return {
        "pairs": len(policy),
        "reward_margin": sum(margins) / n,
        "reward_accuracy": sum(_won(m) for m in margins) / n,
        "logp_margin": sum(own) / n,
        "logp_accuracy": sum(_won(m) for m in own) / n,
    }


def heldout_metrics(model, tokenizer, records: Sequence[dict], beta: float,
                    reference: Optional[Sequence[tuple[float, float]]] = None, on_pair: OnPair = None) -> dict:
    """With a PEFT model: DPO reward margin/accuracy (policy vs adapter-off reference) and the
    policy's log-likelihood margin log π(y+) − log π(y−). `reference`: the reference's log-probs
    when already known (they do not change during training)."""
    policy = completion_logps(model, tokenizer, records, on_pair)
    if reference is None:
        reference = reference_logps(model, tokenizer, records, on_pair)
    return summarize(policy, reference, beta)
