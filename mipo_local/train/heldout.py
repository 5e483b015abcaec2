"""Held-out check: DPO rewards of held-out pairs, and the policy's own preference for y+ over y-."""

from __future__ import annotations

from typing import Sequence


def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "input_ids") else encoded)


def completion_logps(model, tokenizer, records: Sequence[dict]) -> list[tuple[float, float]]:
    """(log π(chosen | prompt), log π(rejected | prompt)) for each record, tokenized as trl does: the
    whole conversation (so the end-of-turn token counts), completion = what follows the prompt."""
    from ..evaluate import continuation_logp

    out = []
    model.eval()
    for r in records:
        prompt = _ids(tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True))
        pair = []
        for side in ("chosen", "rejected"):
            full = _ids(tokenizer.apply_chat_template(r["prompt"] + r[side], tokenize=True))
            pair.append(continuation_logp(model, full[:len(prompt)], full[len(prompt):]))
        out.append((pair[0], pair[1]))
    return out


def heldout_metrics(model, tokenizer, records: Sequence[dict], beta: float) -> dict:
    """With a PEFT model: DPO reward margin/accuracy (policy vs adapter-off reference) and the
    policy's log-likelihood margin log π(y+) − log π(y−)."""
    import contextlib

    policy = completion_logps(model, tokenizer, records)
    disable = getattr(model, "disable_adapter", None)
    with (disable() if disable else contextlib.nullcontext()):
        reference = completion_logps(model, tokenizer, records)
    margins = [beta * ((pc - rc) - (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference)]
    own = [pc - pr for pc, pr in policy]
    n = max(1, len(records))
    return {
        "pairs": len(records),
        "reward_margin": sum(margins) / n,
        "reward_accuracy": sum(m > 0 for m in margins) / n,
        "logp_margin": sum(own) / n,
        "logp_accuracy": sum(m > 0 for m in own) / n,
    }
