"""Scoring texts under a PyTorch model: log π(response | prompt) for many responses to one prompt.

The prompt is run once, with the output head on its last position only, and its KV cache is kept:
a prompt that starts like one of the last few (the same context before another request) runs only
from where they differ. The responses to a prompt are then packed side by side into one row after
it, each attending to the prompt and to its own earlier tokens only (a block-diagonal causal mask,
positions restarting after the prompt), so no padding is computed and the prompt's cache is neither
copied nor repeated per response; afterwards the cache is cut back to the prompt. Packing changes
no score beyond fp32 rounding (tests/test_scoring.py compares it with scoring one response alone).

The responses are scored as text, without the end-of-turn token, so answers cut at a length limit
and complete ones are scored alike (`response_logp` below scores the same way, one at a time, as do `pointwise_mi` and `text_logp`).

`matmul_precision("bf16-matmul")` around the scoring lets PyTorch compute the fp32 model's matrix
products from bfloat16 inputs with fp32 accumulation (`torch.set_float32_matmul_precision("medium")`):
on this VM's CPU (AMX, AVX-512 BF16) that is 1.3× faster, at a cost in exactness measured in
BENCHMARKS.md ("Evaluation scoring"); on other hardware it was not measured. "fp32" is exact. It is
set once around a whole stage's scoring, not per call: switching it per call made scoring slower
than fp32.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .prompt_format import chat_messages

PRECISIONS = ("fp32", "bf16-matmul")
_MATMUL_PRECISION = {"fp32": "highest", "bf16-matmul": "medium"}
WEIGHT_PRECISIONS = ("auto", "fp32", "bf16")   # a scoring model's weights; auto: bf16 where native_bf16()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AMX or AVX-512 BF16), as PyTorch
    reports it. Elsewhere PyTorch emulates bfloat16 on the CPU, slower than fp32."""
    import torch

    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):   # private, so looked up with care
        check = getattr(getattr(torch, "cpu", None), probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:      # noqa: BLE001 — a probe that fails means: not known to be native
            continue
    return False


def weight_precision(precision: str) -> str:
    """"fp32" or "bf16" for one of WEIGHT_PRECISIONS ("auto": bf16 where this CPU computes it natively)."""
    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(f"unknown scoring precision {precision!r}; choose one of {', '.join(WEIGHT_PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """PyTorch's fp32 matmul precision for `precision` (one of PRECISIONS), restored afterwards: it is
    process-wide, and training must not inherit it."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown scoring precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(_MATMUL_PRECISION[precision])
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _cut(cache, length: int) -> None:
    """Keep the first `length` positions of a transformers cache (its `crop` takes a negative count)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class ResponseScorer:
    """log π(response | messages) under `model` (a causal LM) in its tokenizer's chat template."""

    KEEP = 4              # prompt caches kept for reuse
    MIN_SHARED = 32       # tokens a prompt must share with a kept one to start from its cache

    def __init__(self, model, tokenizer, *, batch_tokens: int = 512, batch_size: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens      # response tokens packed into one forward pass, at most
        self.batch_size = batch_size          # responses packed into one forward pass, at most
        # kept prompts, most recent first: (prompt ids, KV cache of the whole prompt, log-probabilities after it)
        self._kept: list[tuple[list[int], object, object]] = []

    def _prompt_cache(self, prompt: list[int]):
        """(KV cache of the whole prompt, log-probabilities of the token after it). The cache is
        kept for later prompts; the caller must cut it back to len(prompt) after extending it."""
        import torch

        for n, kept in enumerate(self._kept):
            if kept[0] == prompt:
                self._kept.insert(0, self._kept.pop(n))
                return kept[1], kept[2]
        device = next(self.model.parameters()).device
        best, shared = None, 0
        for ids, cache, _ in self._kept:
            n = 0
            for a, b in zip(ids, prompt[:-1]):      # at least the last token runs: its logits are needed
                if a != b:
                    break
                n += 1
            if n > shared:
                best, shared = cache, n
        if best is not None and shared >= self.MIN_SHARED:
            cache = copy.deepcopy(best)
            _cut(cache, shared)
        else:
            cache, shared = None, 0
        out = self.model(input_ids=torch.tensor([prompt[shared:]], device=device), cache=cache, use_cache=True,
                         logits_to_keep=1)
        logp = torch.log_softmax(out.logits[0, -1].float(), -1)
        self._kept = [(prompt, out.past_key_values, logp)] + [k for k in self._kept if k[0] != prompt][: self.KEEP - 1]
        return out.past_key_values, logp

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        from .scoring import prompt_ids

        return prompt_ids(self.tokenizer, messages)

    def response_ids(self, response: str) -> list[int]:
        return self.tokenizer(response, add_special_tokens=False)["input_ids"]

    def _packs(self, encoded: list[list[int]]) -> list[list[int]]:
        """Indices of the non-empty responses, in packs of at most batch_tokens tokens (a longer
        response alone) and batch_size responses."""
        packs, pack, tokens = [], [], 0
        for i, ids in enumerate(encoded):
            if not ids:
                continue
            if pack and (tokens + len(ids) > self.batch_tokens or len(pack) == self.batch_size):
                packs.append(pack)
                pack, tokens = [], 0
            pack.append(i)
            tokens += len(ids)
        return packs + ([pack] if pack else [])

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
        P = len(prompt)
        with torch.no_grad():
            cache, first_logp = self._prompt_cache(prompt)
            for pack in self._packs(encoded):
                ids = [t for i in pack for t in encoded[i]]
                T = len(ids)
                segment = torch.tensor([n for n, i in enumerate(pack) for _ in encoded[i]], device=device)
                offset = torch.tensor([j for i in pack for j in range(len(encoded[i]))], device=device)
                # True = may attend: the whole prompt, then the earlier tokens of the same response
                mask = torch.ones(1, 1, T, P + T, dtype=torch.bool, device=device)
                mask[0, 0, :, P:] = (segment[:, None] == segment[None, :]) & (offset[:, None] >= offset[None, :])
                # every position but a response's last one scores the token after it
                scored = [k for k in range(T - 1) if segment[k] == segment[k + 1]]
                try:
                    logits = model(input_ids=torch.tensor([ids], device=device), attention_mask=mask,
                                   position_ids=(P + offset)[None], cache=cache, use_cache=True,
                                   logits_to_keep=torch.tensor(scored, dtype=torch.long, device=device)).logits[0].float()
                finally:
                    _cut(cache, P)                # the prompt's cache as it was, for the next pack and prompt
                if scored:
                    targets = torch.tensor([ids[k + 1] for k in scored], device=device)
                    picked = logits.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(logits, -1)
                else:
                    picked = logits.new_zeros(0)
                sums = torch.zeros(len(pack), dtype=torch.float64, device=device)
                if scored:
                    sums.index_add_(0, segment[scored], picked.double())
                for n, i in enumerate(pack):
                    out[i] = (first_logp[encoded[i][0]].item() + sums[n].item(), len(encoded[i]))
        return out


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


def load_torch_model(folder: Path):
    """(model, tokenizer) of a PyTorch checkpoint folder, fp32, in eval mode, without progress bars."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)


def text_logp(model, tokenizer, text: str, window: int) -> tuple[float, int]:
    """(log-likelihood of `text`'s tokens after its first, in windows of `window` tokens; their number)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        piece = ids[start:start + window + 1]
        if len(piece) < 2:
            break
        total += continuation_logp(model, piece[:1], piece[1:])
        count += len(piece) - 1
    return total, count
