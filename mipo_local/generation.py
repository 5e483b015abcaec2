"""Batched sampling with llama.cpp's low-level API: several sequences decoded per step.

One llama.cpp context holds up to `n_parallel` sequences. For each group of prompts the shared
token prefix (the system prompt, usually) is decoded once and its KV cache copied to every
sequence; a prompt given several times (several samples of one prompt) is decoded once and copied
to each of its sequences. Then every step decodes one new token of every unfinished sequence in
one batch.

A completion can also be scored as it is made: the log-probability of each of its tokens under its
own prompt (from the logits it was sampled from, at no cost) and under other prompts (`score_under`),
each computed from that prompt's kept KV cache in one call of its own once the completion is done.
A completion sampled as another split of its text than the text's own tokenization is scored in that
tokenization, under every prompt.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
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
    # the byte offset in `text` (UTF-8) where each scored token's piece ends: the tokens sampled, or with
    # `score_under`, the text's own tokenization where the sampler drew another split of the same text
    piece_ends: list[int] = field(default_factory=list)
    # with `score_under`: for each prompt listed, log π(token | that prompt, earlier tokens) of every
    # scored token (temperature 1, nothing truncated)
    scores: list[list[float]] = field(default_factory=list)

    def tokens_for(self, text: str) -> int:
        """How many of the scored tokens make up `text`, a prefix of this completion's text (an answer
        trimmed to its last sentence): the fewest whose pieces cover it."""
        import bisect

        return min(len(self.piece_ends), bisect.bisect_left(self.piece_ends, len(text.encode("utf-8"))) + 1) if text else 0


def context_per_sequence(gguf_path: Path, prompts: Sequence[str], max_new_tokens: int) -> int:
    """The KV room one sequence needs for the longest of `prompts` plus its answer, in steps of 256
    (counted with the model's own tokenizer, loaded vocabulary only)."""
    from .llama_runtime import llama_model

    with llama_model(gguf_path, vocab_only=True) as vocab:
        longest = max(len(vocab.tokenize(p.encode("utf-8"), add_bos=False, special=True)) for p in prompts)
    return ((longest + max_new_tokens + 16) // 256 + 1) * 256


def _log_softmax_at(logits: np.ndarray, targets: Sequence[int]) -> list[float]:
    """log softmax(logits[j])[targets[j]] for each row j (float64 sums)."""
    rows = np.asarray(logits, dtype=np.float32)
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0].astype(np.float64) + np.log(np.exp(rows - top).sum(axis=1, dtype=np.float64))
    picked = rows[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)].astype(np.float64)
    return (picked - lse).tolist()


class BatchedGenerator:
    """Generate completions for many prompts, `n_parallel` sequences at a time. Close when done."""

    PROMPT_CACHE = 2     # sequences that keep a repeated prompt's KV for the next copies (and for scoring)

    def __init__(self, gguf_path: Path, *, n_parallel: int = 8, n_ctx_per_seq: int = 2048,
                 n_batch: int = 512, threads: Optional[int] = None, share_prefix: bool = True,
                 prompt_cache: int = PROMPT_CACHE) -> None:
        import llama_cpp as L

        from .llama_runtime import gpu_layers, physical_cores, quiet_llama_logs
        from .modelio.gguf_file import scan_gguf

        scan_gguf(Path(gguf_path))
        quiet_llama_logs()
        self.L = L
        self.n_parallel = max(1, int(n_parallel))
        self.n_ctx_per_seq = int(n_ctx_per_seq)
        self.n_batch = int(n_batch)
        self.share_prefix = share_prefix
        self.prompt_cache = max(1, int(prompt_cache))
        self.prompts_decoded = 0     # prompts decoded into a cache sequence (again, when one was given up)
        self.scored_tokens = 0       # tokens scored from a kept prompt (not from the sampling's own logits)
        self.scoring_seconds = 0.0   # spent scoring them (with decoding their prompts again, if given up)
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        layers = gpu_layers()
        mparams.n_gpu_layers = 0x7FFFFFFF if layers < 0 else layers      # every layer where the build offloads
        self.model = L.llama_model_load_from_file(str(gguf_path).encode(), mparams)
        if not self.model:
            raise MipoError(f"llama.cpp could not load {gguf_path}; check the file with `mipo-local doctor`")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cparams = L.llama_context_default_params()
        n_seq = self.n_parallel + 1 + self.prompt_cache  # + shared prefix + kept prompts
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
        return self._pieces(tokens)[0]

    def _pieces(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """(text of `tokens`, the byte offset where each token's piece ends)."""
        L = self.L
        out = bytearray()
        ends = []
        buf = ctypes.create_string_buffer(256)
        for tok in tokens:
            n = L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, False)
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self.vocab, tok, big, len(big), 0, False)
                out += big.raw[:n]
            else:
                out += buf.raw[:n]
            ends.append(len(out))
        return out.decode("utf-8", errors="replace"), ends

    def _sampler(self, sampling: Sampling, seed: int):
        """Greedy: llama.cpp's own sampler. Sampling: `nucleus.NucleusSampler` (the same top-k → top-p →
        temperature → draw as llama.cpp's chain, without sorting the whole vocabulary every token)."""
        L = self.L
        if sampling.temperature <= 0:
            chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        return NucleusSampler(sampling.temperature, sampling.top_p, sampling.top_k, seed)

    def _sample(self, sampler, index: int, with_logp: bool = False) -> tuple[int, Optional[float]]:
        """(the next token of the sequence whose logits sit at `index` of the last decoded batch, its
        log-probability at temperature 1 untruncated when `with_logp`, else None)."""
        logits = None
        if isinstance(sampler, NucleusSampler) or with_logp:
            logits = np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        if isinstance(sampler, NucleusSampler):
            tok = sampler.sample(logits)
        else:
            tok = self.L.llama_sampler_sample(sampler, self.ctx, index)
        return tok, (_log_softmax_at(logits[None], [tok])[0] if with_logp else None)

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
                 on_complete: Optional[Callable[[int, Completion], None]] = None,
                 score_under: Optional[Sequence[Sequence[str]]] = None) -> list[Completion]:
        """Completions for `prompts` (rendered chat text), in order. `seeds[i]` seeds prompt i.

        Continuous batching: up to `n_parallel` sequences decode together, and a finished
        sequence's slot takes the next prompt at once, so the batch stays full to the end.
        `on_complete(i, completion)` is called as soon as prompt i is done. When `should_stop()`
        turns true, generation ends after the current step and only the finished prompts are
        returned (in order); the caller checks `should_stop()` to tell.

        `score_under[i]` (rendered prompts): completion i's `scores` then hold, for each of them, the
        log-probability of every one of its tokens under that prompt. The prompt it was sampled from
        costs nothing (its logits were computed to sample); another is scored from its KV cache, kept
        while completions still need it (`prompt_cache` sequences) and decoded again if it was not.
        """
        L = self.L
        seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
        tokenized: dict[str, list[int]] = {}

        def tokens_of(text: str) -> list[int]:
            if text not in tokenized:
                tokenized[text] = self.tokenize(text)
            return tokenized[text]

        toks = [tokens_of(p) for p in prompts]
        under = [[tokens_of(a) for a in score_under[i]] for i in range(len(prompts))] if score_under is not None else None
        for t in toks + [a for alts in (under or []) for a in alts]:
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
        distinct = list({tuple(t): t for t in toks + [a for alts in (under or []) for a in alts]}.values())
        if self.share_prefix and len(distinct) > 1:
            shortest = min(len(t) for t in distinct)
            while prefix < shortest - 1 and all(t[prefix] == distinct[0][prefix] for t in distinct):
                prefix += 1
        L.llama_memory_clear(self.mem, True)
        for a in range(0, prefix, self.n_batch):
            self._decode([(prefix_seq, p, distinct[0][p], False) for p in range(a, min(prefix, a + self.n_batch))])

        queue = list(range(len(prompts)))[::-1]
        active: dict[int, dict] = {}            # slot → state of the prompt it decodes

        # uses of each prompt's KV cache (all but its last token): its samples to start, the
        # completions to score under it; a prompt used more than once is kept in a cache sequence
        pending: dict[tuple, int] = {}
        for i, t in enumerate(toks):
            pending[tuple(t[:-1])] = pending.get(tuple(t[:-1]), 0) + 1
            for a in (under[i] if under is not None else []):
                if a != t:
                    pending[tuple(a[:-1])] = pending.get(tuple(a[:-1]), 0) + 1
        cache_seqs = list(range(prefix_seq + 1, prefix_seq + 1 + self.prompt_cache))
        cached: dict[tuple, int] = {}           # prompt (all but its last token) → cache sequence
        used_at: dict[int, int] = {}            # cache sequence → when it was last used
        clock = [0]

        def decode_own(seq: int, tokens: list[int], start_at: int, last_logits: bool) -> int:
            """Decode tokens[start_at:] into `seq`, a batch at a time; the index of the last one in its batch."""
            own = list(range(start_at, len(tokens)))
            part = own
            for a in range(0, len(own), self.n_batch):
                part = own[a:a + self.n_batch]
                self._decode([(seq, p, tokens[p], last_logits and p == len(tokens) - 1) for p in part])
            return len(part) - 1

        def cached_prompt(t: list[int]) -> int:
            """A cache sequence holding t[:-1] (decoded now if no cache sequence holds it). The one
            given up for it: a free one, else one no longer needed, else the least recently used."""
            key = tuple(t[:-1])
            clock[0] += 1
            if key not in cached:
                holder = {v: k for k, v in cached.items()}
                seq = min(cache_seqs, key=lambda s: (s in holder, s in holder and pending.get(holder[s], 0) > 0,
                                                     used_at.get(s, 0)))
                if seq in holder:
                    del cached[holder[seq]]
                L.llama_memory_seq_rm(self.mem, seq, -1, -1)
                if prefix:
                    L.llama_memory_seq_cp(self.mem, prefix_seq, seq, -1, -1)
                decode_own(seq, t[:-1], prefix, False)
                self.prompts_decoded += 1
                cached[key] = seq
            used_at[cached[key]] = clock[0]
            return cached[key]

        def score_under_prompt(a: list[int], generated: list[int], release: bool = True) -> list[float]:
            """log π(generated[j] | a, generated[:j]) for every j, from a's kept KV cache (`release`:
            one of the uses counted for it)."""
            if release:
                pending[tuple(a[:-1])] -= 1
            if not generated:
                return []
            t0 = time.perf_counter()
            seq = cached_prompt(a)
            P = len(a) - 1                           # where a's last token goes
            feed = [a[-1]] + generated[:-1]
            out: list[float] = []
            for c in range(0, len(feed), self.n_batch):
                part = range(c, min(len(feed), c + self.n_batch))
                self._decode([(seq, P + j, feed[j], True) for j in part])
                rows = np.ctypeslib.as_array(L.llama_get_logits(self.ctx), shape=(len(part), self.n_vocab))
                out += _log_softmax_at(rows, [generated[j] for j in part])
            L.llama_memory_seq_rm(self.mem, seq, P, -1)   # the cache holds a[:-1] again
            self.scored_tokens += len(generated)
            self.scoring_seconds += time.perf_counter() - t0
            return out

        def start(slot: int, i: int) -> None:
            # One prompt per decode call: a call holding several sequences' prompts is split by
            # llama.cpp into equal per-sequence ubatches, and its logits then differ from those of
            # the prompt decoded alone (measured: up to 0.5).
            L.llama_memory_seq_rm(self.mem, slot, -1, -1)
            t = toks[i]
            key = tuple(t[:-1])
            if (pending[key] > 1 or key in cached) and len(t) - 1 > prefix:
                # a whole-sequence copy: with a KV stream per sequence only full copies are allowed
                L.llama_memory_seq_cp(self.mem, cached_prompt(t), slot, -1, -1)
                last = decode_own(slot, t, len(t) - 1, True)
            else:
                if prefix:
                    L.llama_memory_seq_cp(self.mem, prefix_seq, slot, -1, -1)
                last = decode_own(slot, t, prefix, True)
            pending[key] -= 1
            sampler = self._sampler(sampling, seeds[i])
            active[slot] = {"i": i, "sampler": sampler, "generated": [], "logp": [], "n_past": len(t)}
            take(slot, last)

        def take(slot: int, index: int) -> None:
            state = active[slot]
            state["next"], logp = self._sample(state["sampler"], index, with_logp=under is not None)
            state["next_logp"] = logp

        def finish(slot: int, reason: str) -> None:
            state = active.pop(slot)
            self._free_sampler(state["sampler"])
            i = state["i"]
            text, ends = self._pieces(state["generated"])
            scores = []
            if under is not None:
                canonical = self.tokenize(text)
                fits = all(len(a) + len(canonical) <= self.n_ctx_per_seq for a in under[i])
                if canonical == state["generated"] or not fits:
                    scores = [list(state["logp"]) if a == toks[i] else score_under_prompt(a, state["generated"])
                              for a in under[i]]
                else:
                    # the sampler drew another split of this text than its own tokenization (what a
                    # scorer or a trainer reads): score those tokens, under every prompt
                    _, ends = self._pieces(canonical)
                    scores = [score_under_prompt(a, canonical, release=a != toks[i]) for a in under[i]]
            results[i] = Completion(text, state["generated"], reason, len(toks[i]), ends, scores)
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
                            state["logp"].append(state["next_logp"])
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
                    take(slot, j)
        finally:
            for state in active.values():
                self._free_sampler(state["sampler"])
            active.clear()
        return [r for r in results if r is not None]
