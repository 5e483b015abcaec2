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

from ..errors import MipoError
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

        from .gguf_scan import scan_gguf
        from .llama_runtime import gpu_layers, physical_cores, quiet_llama_logs

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

    def _decode_from(self, seq: int, tokens: list[int], start_at: int, last_logits: bool) -> int:
        """Decode tokens[start_at:] into `seq`, a batch at a time; the index of the last one in its batch."""
        own = list(range(start_at, len(tokens)))
        part = own
        for a in range(0, len(own), self.n_batch):
            part = own[a:a + self.n_batch]
            self._decode([(seq, p, tokens[p], last_logits and p == len(tokens) - 1) for p in part])
        return len(part) - 1

    def _tokenize_all(self, prompts: Sequence[str], score_under: Optional[Sequence[Sequence[str]]],
                      max_new_tokens: int) -> tuple[list[list[int]], Optional[list[list[list[int]]]]]:
        """(the tokens of each prompt, of each prompt to score its completion under), each distinct
        text tokenized once; every one checked to fit a sequence with `max_new_tokens` after it."""
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
            if len(t) + max_new_tokens > self.n_ctx_per_seq:
                raise MipoError(f"a prompt of {len(t)} tokens plus {max_new_tokens} new tokens does not fit the "
                                f"{self.n_ctx_per_seq}-token context per sequence; shorten the context budget")
        return toks, under

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
        seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
        toks, under = self._tokenize_all(prompts, score_under, sampling.max_new_tokens)
        if not prompts:
            return []
        cache = _PromptCache(self, toks, under)
        batch = _Batch(self, cache, toks, under, sampling, seeds, on_complete)
        try:
            batch.fill()
            while batch.active:
                entries = batch.advance()            # each sequence's next token, or its end
                if not entries:
                    break
                if should_stop is not None and should_stop():
                    break                    # the prompts finished so far are returned; the caller sees the stop
                batch.decode(entries)
        finally:
            batch.close()
        return [r for r in batch.results if r is not None]


class _PromptCache:
    """The KV caches one `generate` call reuses. The token prefix all its prompts share (the system
    prompt, usually) is decoded once into an extra sequence and copied to each sequence that starts;
    a prompt used more than once (several samples of it, completions scored under it) is kept, all
    but its last token, in one of `prompt_cache` sequences and copied whole."""

    def __init__(self, gen: BatchedGenerator, toks: list[list[int]],
                 under: Optional[list[list[list[int]]]]) -> None:
        self.gen = gen
        self.prefix_seq = gen.n_parallel          # an extra sequence holds the shared prefix
        distinct = list({tuple(t): t for t in toks + [a for alts in (under or []) for a in alts]}.values())
        self.prefix = _shared_prefix(distinct) if gen.share_prefix and len(distinct) > 1 else 0
        gen.L.llama_memory_clear(gen.mem, True)
        gen._decode_from(self.prefix_seq, distinct[0][:self.prefix], 0, False)
        # uses of each prompt's KV cache (all but its last token): its samples to start, the
        # completions to score under it; a prompt used more than once is kept in a cache sequence
        self.pending: dict[tuple, int] = {}
        for i, t in enumerate(toks):
            self.pending[tuple(t[:-1])] = self.pending.get(tuple(t[:-1]), 0) + 1
            for a in (under[i] if under is not None else []):
                if a != t:
                    self.pending[tuple(a[:-1])] = self.pending.get(tuple(a[:-1]), 0) + 1
        self.seqs = list(range(self.prefix_seq + 1, self.prefix_seq + 1 + gen.prompt_cache))
        self.cached: dict[tuple, int] = {}        # prompt (all but its last token) → cache sequence
        self.used_at: dict[int, int] = {}         # cache sequence → when it was last used
        self.clock = 0

    def load(self, slot: int, t: list[int]) -> int:
        """Put prompt `t` into sequence `slot` with the logits of its last token; their index in the
        last decoded batch."""
        # One prompt per decode call: a call holding several sequences' prompts is split by
        # llama.cpp into equal per-sequence ubatches, and its logits then differ from those of
        # the prompt decoded alone (measured: up to 0.5).
        gen, L, prefix = self.gen, self.gen.L, self.prefix
        L.llama_memory_seq_rm(gen.mem, slot, -1, -1)
        key = tuple(t[:-1])
        if (self.pending[key] > 1 or key in self.cached) and len(t) - 1 > prefix:
            # a whole-sequence copy: with a KV stream per sequence only full copies are allowed
            L.llama_memory_seq_cp(gen.mem, self.holding(t), slot, -1, -1)
            last = gen._decode_from(slot, t, len(t) - 1, True)
        else:
            if prefix:
                L.llama_memory_seq_cp(gen.mem, self.prefix_seq, slot, -1, -1)
            last = gen._decode_from(slot, t, prefix, True)
        self.pending[key] -= 1
        return last

    def holding(self, t: list[int]) -> int:
        """A cache sequence holding t[:-1] (decoded now if no cache sequence holds it). The one
        given up for it: a free one, else one no longer needed, else the least recently used."""
        gen, cached, pending, used_at = self.gen, self.cached, self.pending, self.used_at
        key = tuple(t[:-1])
        self.clock += 1
        if key not in cached:
            holder = {v: k for k, v in cached.items()}
            seq = min(self.seqs, key=lambda s: (s in holder, s in holder and pending.get(holder[s], 0) > 0,
                                                used_at.get(s, 0)))
            if seq in holder:
                del cached[holder[seq]]
            gen.L.llama_memory_seq_rm(gen.mem, seq, -1, -1)
            if self.prefix:
                gen.L.llama_memory_seq_cp(gen.mem, self.prefix_seq, seq, -1, -1)
            gen._decode_from(seq, t[:-1], self.prefix, False)
            gen.prompts_decoded += 1
            cached[key] = seq
        used_at[cached[key]] = self.clock
        return cached[key]

    def score(self, a: list[int], generated: list[int], release: bool = True) -> list[float]:
        """log π(generated[j] | a, generated[:j]) for every j, from a's kept KV cache (`release`:
        one of the uses counted for it)."""
        gen, L = self.gen, self.gen.L
        if release:
            self.pending[tuple(a[:-1])] -= 1
        if not generated:
            return []
        t0 = time.perf_counter()
        seq = self.holding(a)
        P = len(a) - 1                           # where a's last token goes
        feed = [a[-1]] + generated[:-1]
        out: list[float] = []
        for c in range(0, len(feed), gen.n_batch):
            part = range(c, min(len(feed), c + gen.n_batch))
            gen._decode([(seq, P + j, feed[j], True) for j in part])
            rows = np.ctypeslib.as_array(L.llama_get_logits(gen.ctx), shape=(len(part), gen.n_vocab))
            out += _log_softmax_at(rows, [generated[j] for j in part])
        L.llama_memory_seq_rm(gen.mem, seq, P, -1)   # the cache holds a[:-1] again
        gen.scored_tokens += len(generated)
        gen.scoring_seconds += time.perf_counter() - t0
        return out


def _shared_prefix(distinct: list[list[int]]) -> int:
    """How many leading tokens all of `distinct` share (each keeps at least its last token)."""
    prefix = 0
    shortest = min(len(t) for t in distinct)
    while prefix < shortest - 1 and all(t[prefix] == distinct[0][prefix] for t in distinct):
        prefix += 1
    return prefix


class _Sequence:
    """Prompt `i` being answered in a slot: its sampler, the tokens sampled so far (with their
    log-probabilities), where the next goes, and the token sampled to go there."""
    __slots__ = ("generated", "i", "logp", "n_past", "next", "next_logp", "sampler")

    def __init__(self, i: int, sampler, n_past: int) -> None:
        self.i = i
        self.sampler = sampler
        self.generated: list[int] = []
        self.logp: list[Optional[float]] = []
        self.n_past = n_past
        self.next = 0
        self.next_logp: Optional[float] = None


class _Batch:
    """The live sequences of one `generate` call, one per slot (`n_parallel`), and the prompts
    waiting for a slot: each step feeds every live sequence its sampled token in one decode call."""

    def __init__(self, gen: BatchedGenerator, cache: _PromptCache, toks: list[list[int]],
                 under: Optional[list[list[list[int]]]], sampling: Sampling, seeds: list[int],
                 on_complete: Optional[Callable[[int, Completion], None]]) -> None:
        self.gen, self.cache, self.toks, self.under = gen, cache, toks, under
        self.sampling, self.seeds, self.on_complete = sampling, seeds, on_complete
        self.with_logp = under is not None
        self.queue = list(range(len(toks)))[::-1]
        self.active: dict[int, _Sequence] = {}   # slot → the prompt it decodes
        self.results: list[Optional[Completion]] = [None] * len(toks)

    def fill(self) -> None:
        """Start waiting prompts in the free slots."""
        slots = self.gen.n_parallel
        while self.queue and len(self.active) < slots:
            self.start(next(s for s in range(slots) if s not in self.active), self.queue.pop())

    def start(self, slot: int, i: int) -> None:
        """Prompt i takes `slot`: its KV cache there, and its first token sampled."""
        gen = self.gen
        last = self.cache.load(slot, self.toks[i])
        seq = self.active[slot] = _Sequence(i, gen._sampler(self.sampling, self.seeds[i]), len(self.toks[i]))
        seq.next, seq.next_logp = gen._sample(seq.sampler, last, with_logp=self.with_logp)

    def advance(self) -> list[tuple[int, int, int, bool]]:
        """The next decode call's entries: every live sequence's sampled token, appended to it. A
        sequence that ends (end of turn, or `max_new_tokens`) is finished and its slot takes the next
        prompt at once."""
        L, vocab, active, queue = self.gen.L, self.gen.vocab, self.active, self.queue
        max_new_tokens = self.sampling.max_new_tokens
        entries = []
        for slot in sorted(active):
            seq = active[slot]
            while True:
                tok = seq.next
                if L.llama_vocab_is_eog(vocab, tok):
                    self.finish(slot, "stop")
                else:
                    seq.generated.append(tok)
                    seq.logp.append(seq.next_logp)
                    if len(seq.generated) < max_new_tokens:
                        entries.append((slot, seq.n_past, tok, True))
                        seq.n_past += 1
                        break
                    self.finish(slot, "length")
                if not queue:
                    break
                self.start(slot, queue.pop())          # the freed slot takes the next prompt
                seq = active[slot]
        return entries

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode one step's entries and sample each sequence's next token from its logits."""
        gen, active, with_logp = self.gen, self.active, self.with_logp
        gen._decode(entries)
        for j, (slot, _, _, _) in enumerate(entries):
            seq = active[slot]
            seq.next, seq.next_logp = gen._sample(seq.sampler, j, with_logp=with_logp)

    def finish(self, slot: int, reason: str) -> None:
        """The sequence in `slot` is done: its sampler freed, its completion made (and scored)."""
        gen = self.gen
        seq = self.active.pop(slot)
        gen._free_sampler(seq.sampler)
        i = seq.i
        text, ends = gen._pieces(seq.generated)
        scores: list[list[float]] = []
        if self.under is not None:
            ends, scores = self._scores(seq, text, ends)
        self.results[i] = Completion(text, seq.generated, reason, len(self.toks[i]), ends, scores)
        if self.on_complete is not None:
            self.on_complete(i, self.results[i])

    def _scores(self, seq: _Sequence, text: str, ends: list[int]) -> tuple[list[int], list[list[float]]]:
        """(piece ends, scores under each of `score_under[i]`) of a finished sequence's text."""
        gen, cache, own, under = self.gen, self.cache, self.toks[seq.i], self.under[seq.i]
        canonical = gen.tokenize(text)
        fits = all(len(a) + len(canonical) <= gen.n_ctx_per_seq for a in under)
        if canonical == seq.generated or not fits:
            return ends, [list(seq.logp) if a == own else cache.score(a, seq.generated) for a in under]
        # the sampler drew another split of this text than its own tokenization (what a
        # scorer or a trainer reads): score those tokens, under every prompt
        _, ends = gen._pieces(canonical)
        return ends, [cache.score(a, canonical, release=a != own) for a in under]

    def close(self) -> None:
        """Free the samplers of the sequences still live (generation stopped, or failed)."""
        for seq in self.active.values():
            self.gen._free_sampler(seq.sampler)
        self.active.clear()
