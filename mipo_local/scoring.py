"""Scoring texts under a PyTorch model: log π(response | prompt) for many responses to one prompt.

The prompt is run once and its KV cache copied to a batch of responses, so scoring K answers
under M contexts costs M prompts plus M·K short continuations instead of M·K full sequences. The
caches of the last few prompts are kept: a prompt that starts like one of them (the same context
before another request) runs only from where they differ. The
responses are scored as text, without the end-of-turn token, so answers cut at a length limit and
complete ones are scored alike (`evaluate.response_logp` scores the same way, one at a time).
"""

from __future__ import annotations

import copy
from typing import Sequence


class ResponseScorer:
    """log π(response | messages) under `model` (a causal LM) in its tokenizer's chat template."""

    KEEP = 4              # prompt caches kept for reuse
    MIN_SHARED = 32       # tokens a prompt must share with a kept one to start from its cache

    def __init__(self, model, tokenizer, *, batch_size: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._kept: list[tuple[list[int], object]] = []     # (prompt ids, KV cache of all but the last)

    def _prompt_cache(self, prompt: list[int]):
        """(KV cache of prompt[:-1], logits of prompt's last position)."""
        import torch

        device = next(self.model.parameters()).device
        body = prompt[:-1]
        best, shared, length = None, 0, 0
        for ids, cache in self._kept:
            n = 0
            for a, b in zip(ids, body):
                if a != b:
                    break
                n += 1
            if n > shared:
                best, shared, length = cache, n, len(ids)
        if best is not None and shared >= self.MIN_SHARED:
            cache = copy.deepcopy(best)
            if shared < length:
                cache.crop(shared - length)     # a negative count: the tokens to drop from the end
        else:
            cache, shared = None, 0
        rest = body[shared:]
        if rest:
            out = self.model(input_ids=torch.tensor([rest], device=device), cache=cache, use_cache=True)
            cache = out.past_key_values
        self._kept = [(body, cache)] + [k for k in self._kept if k[0] != body][: self.KEEP - 1]
        past = copy.deepcopy(cache)
        last = self.model(input_ids=torch.tensor([prompt[-1:]], device=device), cache=past, use_cache=True)
        return past, last.logits[0, -1].float()

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        from .evaluate import prompt_ids

        return prompt_ids(self.tokenizer, messages)

    def response_ids(self, response: str) -> list[int]:
        return self.tokenizer(response, add_special_tokens=False)["input_ids"]

    def score(self, messages: Sequence[dict], responses: Sequence[str]) -> list[tuple[float, int]]:
        """(log π(response | messages) summed over its tokens, number of tokens) for each response."""
        import torch

        if not responses:
            return []
        model = self.model
        device = next(model.parameters()).device
        prompt = self.prompt_ids(messages)
        encoded = [self.response_ids(r) for r in responses]
        out: list[tuple[float, int]] = [(0.0, 0)] * len(responses)
        with torch.no_grad():
            cache, last_logits = self._prompt_cache(prompt)
            first_logp = torch.log_softmax(last_logits, -1)
            order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
            for a in range(0, len(order), self.batch_size):
                batch = order[a:a + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
                # right padding: a padding token comes after every real token, so causal attention
                # keeps it out of the real tokens' scores and needs no mask
                ids = torch.tensor([encoded[i] + [pad] * (width - len(encoded[i])) for i in batch], device=device)
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(batch))
                logits = model(input_ids=ids, cache=past, use_cache=True).logits[:, :-1].float()
                # log-softmax of the target only: its logit minus the log-sum-exp of the row
                picked = (logits.gather(-1, ids[:, 1:, None])[..., 0] - torch.logsumexp(logits, -1)) if width > 1 else None
                for row, i in enumerate(batch):
                    n = len(encoded[i])
                    total = first_logp[encoded[i][0]].item()
                    if n > 1:
                        total += picked[row, :n - 1].sum().item()
                    out[i] = (total, n)
        return out
