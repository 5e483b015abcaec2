"""Held-out check: DPO rewards of held-out pairs, and the policy's own preference for y+ over y-."""

from __future__ import annotations

from typing import Sequence


def completion_logps(model, tokenizer, records: Sequence[dict]) -> list[tuple[float, float]]:
    """(log π(chosen | prompt), log π(rejected | prompt)) for each record, summed over completion tokens."""
    import torch

    out = []
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for r in records:
            pair = []
            prompt_ids = tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
            if hasattr(prompt_ids, "input_ids"):
                prompt_ids = prompt_ids["input_ids"]
            prompt_ids = list(prompt_ids)
            for side in ("chosen", "rejected"):
                full = tokenizer.apply_chat_template(r["prompt"] + r[side], tokenize=True)
                if hasattr(full, "input_ids"):
                    full = full["input_ids"]
                full = list(full)
                ids = torch.tensor([full], device=device)
                logits = model(input_ids=ids).logits[0, :-1].float()
                logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
                pair.append(float(logps[len(prompt_ids) - 1:].sum()))
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
