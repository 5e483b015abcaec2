"""Batched sampling with llama.cpp's low-level API: several sequences decoded per step.

One llama.cpp context holds up to `n_parallel` sequences. For each group of prompts the shared
token prefix (the system prompt, usually) is decoded once and its KV cache copied to every
sequence; a prompt given several times (several samples of one prompt) is decoded once and copied
to each of its sequences. Then every step decodes one new token of every unfinished sequence in
one batch.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import MipoError
from .nucleus import NucleusSampler


@dataclass(frozen=True)
class Sampling:
    """How to sample; the app's values come from `PairSettings.sampling()` (the one source)."""
    temperature: float
    max_new_tokens: int
    top_p: float = 1.0           # 1.0: off
    top_k: int = 0               # 0: off


@dataclass
class Completion:
    text: str
    tokens: list[int]
    finish: str                  # "stop" (end of turn) | "length" (max_new_tokens reached)
    prompt_tokens: int


def context_per_sequence(gguf_path: Path, prompts: Sequence[str], max_new_tokens: int) -> int:
    """The KV room one sequence needs for the longest of `prompts` plus its answer, in steps of 256
    (counted with the model's own tokenizer, loaded vocabulary only)."""
    from .llama_runtime import llama_model

    with llama_model(gguf_path, vocab_only=True) as vocab:
        longest = max(len(vocab.tokenize(p.encode("utf-8"), add_bos=False, special=True)) for p in prompts)
    return ((longest + max_new_tokens + 16) // 256 + 1) * 256


class BatchedGenerator:
    """Generate completions for many prompts, `n_parallel` sequences at a time. Close when done."""

    PROMPT_CACHE = 2     # sequences that keep a repeated prompt's KV for the next copies

    def __init__(self, gguf_path: Path, *, n_parallel: int = 8, n_ctx_per_seq: int = 2048,
                 n_batch: int = 512, threads: Optional[int] = None, share_prefix: bool = True) -> None:
        import llama_cpp as L

        from .llama_runtime import physical_cores, quiet_llama_logs
        from .modelio.gguf_file import scan_gguf

        scan_gguf(Path(gguf_path))
        quiet_llama_logs()
        self.L = L
        self.n_parallel = max(1, int(n_parallel))
        self.n_ctx_per_seq = int(n_ctx_per_seq)
        self.n_batch = int(n_batch)
        self.share_prefix = share_prefix
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(gguf_path).encode(), mparams)
        if not self.model:
            raise MipoError(f"llama.cpp could not load {gguf_path}; check the file with `mipo-local doctor`")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cparams = L.llama_context_default_params()
        n_seq = self.n_parallel + 1 + self.PROMPT_CACHE  # + shared prefix + repeated prompts
        cparams.n_ctx = self.n_ctx_per_seq * n_seq
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = n_seq
        t = threads or physical_cores()
        cparams.n_threads = t
        cparams.n_threads_batch = t
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise MipoError("llama.cpp could not create a context (not enough memory?); lower n_parallel or the context size")
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)
        self._closed = False

    # ----------------------------------------------------------------------------- helpers
    def close(self) -> None:
        if self._closed:
            return
        L = self.L
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)
        self._closed = True

    def __enter__(self) -> "BatchedGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def tokenize(self, text: str) -> list[int]:
        """Prompt text → token ids (special tokens such as <|im_start|> parsed, no BOS added:
        chat templates write their own)."""
        L = self.L
        raw = text.encode("utf-8")
        n_max = len(raw) + 16
        buf = (L.llama_token * n_max)()
        n = L.llama_tokenize(self.vocab, raw, len(raw), buf, n_max, False, True)
        if n < 0:
            buf = (L.llama_token * -n)()
            n = L.llama_tokenize(self.vocab, raw, len(raw), buf, -n, False, True)
        return list(buf[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        L = self.L
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for tok in tokens:
            n = L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, False)
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self.vocab, tok, big, len(big), 0, False)
                out += big.raw[:n]
            else:
                out += buf.raw[:n]
        return out.decode("utf-8", errors="replace")

    def _sampler(self, sampling: Sampling, seed: int):
        """Greedy: llama.cpp's own sampler. Sampling: `nucleus.NucleusSampler` (the same top-k → top-p →
        temperature → draw as llama.cpp's chain, without sorting the whole vocabulary every token)."""
        L = self.L
        if sampling.temperature <= 0:
            chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        return NucleusSampler(sampling.temperature, sampling.top_p, sampling.top_k, seed)

    def _sample(self, sampler, index: int) -> int:
        """The next token of the sequence whose logits sit at `index` of the last decoded batch."""
        if isinstance(sampler, NucleusSampler):
            logits = np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
            return sampler.sample(logits)
        return self.L.llama_sampler_sample(sampler, self.ctx, index)

    def _free_sampler(self, sampler) -> None:
        if not isinstance(sampler, NucleusSampler):
            self.L.llama_sampler_free(sampler)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode (seq, pos, token, want_logits) entries as one batch."""
        L, b = self.L, self.batch
        for j, (seq, pos, tok, logits) in enumerate(entries):
            b.token[j] = tok
            b.pos[j] = pos
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = seq
            b.logits[j] = 1 if logits else 0
        b.n_tokens = len(entries)
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise MipoError(f"llama.cpp failed to decode a batch (code {rc}); lower n_parallel or the prompt length")

    # --------------------------------------------------------------------------- generate
    def generate(self, prompts: Sequence[str], sampling: Sampling, *, seeds: Optional[Sequence[int]] = None,
                 should_stop: Optional[Callable[[], bool]] = None,
                 on_complete: Optional[Callable[[int, Completion], None]] = None) -> list[Completion]:
        """Completions for `prompts` (rendered chat text), in order. `seeds[i]` seeds prompt i.

        Continuous batching: up to `n_parallel` sequences decode together, and a finished
        sequence's slot takes the next prompt at once, so the batch stays full to the end.
        `on_complete(i, completion)` is called as soon as prompt i is done. When `should_stop()`
        turns true, generation ends after the current step and only the finished prompts are
        returned (in order); the caller checks `should_stop()` to tell.
        """
        L = self.L
        seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
        toks = [self.tokenize(p) for p in prompts]
        for t in toks:
            if not t:
                raise MipoError("an empty prompt cannot be generated from")
            if len(t) + sampling.max_new_tokens > self.n_ctx_per_seq:
                raise MipoError(f"a prompt of {len(t)} tokens plus {sampling.max_new_tokens} new tokens does not fit the "
                                f"{self.n_ctx_per_seq}-token context per sequence; shorten the context budget")
        results: list[Optional[Completion]] = [None] * len(prompts)
        if not prompts:
            return []
        slots = self.n_parallel
        prefix_seq = slots                       # an extra sequence holds the shared prefix
        prefix = 0
        if self.share_prefix and len(toks) > 1:
            shortest = min(len(t) for t in toks)
            while prefix < shortest - 1 and all(t[prefix] == toks[0][prefix] for t in toks):
                prefix += 1
        L.llama_memory_clear(self.mem, True)
        for a in range(0, prefix, self.n_batch):
            self._decode([(prefix_seq, p, toks[0][p], False) for p in range(a, min(prefix, a + self.n_batch))])

        queue = list(range(len(prompts)))[::-1]
        active: dict[int, dict] = {}            # slot → state of the prompt it decodes

        repeated = {}
        for t in toks:
            repeated[tuple(t)] = repeated.get(tuple(t), 0) + 1
        cache_seqs = list(range(prefix_seq + 1, prefix_seq + 1 + self.PROMPT_CACHE))
        cached: dict[tuple, int] = {}           # prompt (all but its last token) → cache sequence

        def decode_own(seq: int, tokens: list[int], start_at: int, last_logits: bool) -> int:
            """Decode tokens[start_at:] into `seq`, a batch at a time; the index of the last one in its batch."""
            own = list(range(start_at, len(tokens)))
            part = own
            for a in range(0, len(own), self.n_batch):
                part = own[a:a + self.n_batch]
                self._decode([(seq, p, tokens[p], last_logits and p == len(tokens) - 1) for p in part])
            return len(part) - 1

        def cached_prompt(t: list[int]) -> int:
            """A cache sequence holding t[:-1] (decoded now if no cache sequence holds it)."""
            key = tuple(t[:-1])
            if key not in cached:
                seq = cache_seqs[len(cached) % len(cache_seqs)]
                for old in [k for k, v in cached.items() if v == seq]:
                    del cached[old]
                L.llama_memory_seq_rm(self.mem, seq, -1, -1)
                if prefix:
                    L.llama_memory_seq_cp(self.mem, prefix_seq, seq, -1, -1)
                decode_own(seq, t[:-1], prefix, False)
                cached[key] = seq
            return cached[key]

        def start(slot: int, i: int) -> None:
            # One prompt per decode call: a call holding several sequences' prompts is split by
            # llama.cpp into equal per-sequence ubatches, and its logits then differ from those of
            # the prompt decoded alone (measured: up to 0.5).
            L.llama_memory_seq_rm(self.mem, slot, -1, -1)
            t = toks[i]
            if repeated[tuple(t)] > 1 and len(t) - 1 > prefix:
                # a whole-sequence copy: with a KV stream per sequence only full copies are allowed
                L.llama_memory_seq_cp(self.mem, cached_prompt(t), slot, -1, -1)
                last = decode_own(slot, t, len(t) - 1, True)
            else:
                if prefix:
                    L.llama_memory_seq_cp(self.mem, prefix_seq, slot, -1, -1)
                last = decode_own(slot, t, prefix, True)
            sampler = self._sampler(sampling, seeds[i])
            active[slot] = {"i": i, "sampler": sampler, "generated": [], "n_past": len(t),
                            "next": self._sample(sampler, last)}

        def finish(slot: int, reason: str) -> None:
            state = active.pop(slot)
            self._free_sampler(state["sampler"])
            i = state["i"]
            results[i] = Completion(self.detokenize(state["generated"]), state["generated"], reason, len(toks[i]))
            if on_complete is not None:
                on_complete(i, results[i])

        try:
            while queue and len(active) < slots:
                start(next(s for s in range(slots) if s not in active), queue.pop())
            while active:
                entries = []
                for slot in sorted(active):
                    state = active[slot]
                    while True:
                        tok = state["next"]
                        if L.llama_vocab_is_eog(self.vocab, tok):
                            finish(slot, "stop")
                        else:
                            state["generated"].append(tok)
                            if len(state["generated"]) < sampling.max_new_tokens:
                                entries.append((slot, state["n_past"], tok, True))
                                state["n_past"] += 1
                                break
                            finish(slot, "length")
                        if not queue:
                            break
                        start(slot, queue.pop())          # the freed slot takes the next prompt
                        state = active[slot]
                if not entries:
                    break
                if should_stop is not None and should_stop():
                    break                    # the prompts finished so far are returned; the caller sees the stop
                self._decode(entries)
                for j, (slot, _, _, _) in enumerate(entries):
                    active[slot]["next"] = self._sample(active[slot]["sampler"], j)
        finally:
            for state in active.values():
                self._free_sampler(state["sampler"])
            active.clear()
        return [r for r in results if r is not None]
