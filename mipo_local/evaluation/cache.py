"""The evaluation's exact cache: answers sampled and scores computed by an earlier evaluation, reused.

Much of an evaluation is the same from one to the next: the base's answers, their scores under the
base, the base's neutral perplexity, and in an incremental run all of the previous model's part (it
was the personal model of its own run). Each piece is kept in the context store (in the workspace,
private: they are made from the user's writing) under everything it depends on:

- an answer: the sampling GGUF's content hash, the rendered prompt's hash, the sampling settings
  (with the answers per prompt, the llama.cpp version and `ANSWERS_VERSION`) and the answer's seed.
  llama.cpp's batched sampling gives a seed the same answer whatever else is sampled with it (the
  order, the other prompts, the number of sequences decoded together, the context size: measured
  bit-equal logits) once no prefix is shared between prompts (`sample_completions`), but not between a
  prompt sampled once and one copied to several answers, hence the answers per prompt in the key;
- scores: the scoring checkpoint's identity (a hash of its files' content hashes, with the scoring
  precision, the torch and transformers versions and `SCORES_VERSION`), the hash of the prompt's token
  ids and the hash of the responses scored together (one `ResponseScorer.score` call: what else is
  packed with a response moves its score by fp32 rounding, so the evaluation scores each model's
  answers by a call of their own, the same in every evaluation);
- a neutral perplexity: as a score, the text's log-likelihood and token count.

What is kept is what was computed (floats keep every bit): an evaluation made wholly from the cache
reports exactly what the one that filled it did, and one with a cold cache exactly what one without
the cache does (tests/test_eval_cache.py). Partly cached (an incremental run: the new model's scores
computed, the others' reused) is exact in what it reuses, but the new scores come from another
sequence of work in the process than without the cache, and PyTorch's CPU kernels then round
differently (measured in the tests: 2.5e-7 in a mean log-likelihood per token). A model
whose every score is cached is not loaded at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

# Bump when the sampling code (generation, nucleus sampler, prompt rendering) changes what a seed
# gives, or the scoring code changes a score: what the cache holds is then no longer what the code
# would compute.
ANSWERS_VERSION = 1
SCORES_VERSION = 1
PERPLEXITY_WINDOW = 512      # tokens per window of the neutral text's log-likelihood


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def answer_seed(seed: int, example_id: str, k: int) -> int:
    """The seed of an example's k-th answer: by the example's id, not its place in the list, so a
    grown list of examples keeps the answers of the examples it had (like `pairs.stage._seed`)."""
    return int(text_sha256(f"{seed}:{example_id}:{k}")[:8], 16)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def checkpoint_sha256(folder: Path) -> str:
    """One content hash of a PyTorch checkpoint folder (weights, config, tokenizer, chat template):
    its files' hashes by name, each computed once and remembered by path, size and mtime."""
    from ..modelio.gguf_file import cached_sha256

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return text_sha256(json.dumps([[p.relative_to(folder).as_posix(), cached_sha256(p)] for p in files]))


class EvalCache:
    """The store's evaluation tables as the evaluation uses them (all SQL stays in the store)."""

    def __init__(self, store) -> None:
        self.store = store

    @classmethod
    @contextlib.contextmanager
    def opened(cls) -> Iterator["EvalCache"]:
        """The cache in the workspace's context store, open for the block."""
        from ..context import ContextStore

        with ContextStore() as store:
            yield cls(store)

    # ------------------------------------------------------------------------------ answers
    @staticmethod
    def answer_model(gguf: Path) -> str:
        from ..modelio.gguf_file import cached_sha256

        return cached_sha256(gguf)

    @staticmethod
    def answer_sampling(sampling, copies: int) -> str:
        """The sampling settings as the cache keys them: with `copies`, how many answers are sampled per
        prompt (a prompt sampled once is decoded another way than one copied to several: measured, its
        answers differ)."""
        from dataclasses import asdict

        return json.dumps({**asdict(sampling), "copies": copies, "llama_cpp": _version("llama_cpp_python"),
                           "version": ANSWERS_VERSION}, sort_keys=True)

    def answers(self, model: str, sampling: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
        return self.store.cached_answers(model, sampling, keys)

    def save_answers(self, model: str, sampling: str, answers: Sequence[tuple[str, int, str, str]]) -> None:
        if answers:
            self.store.save_answers(model, sampling, answers)

    # ------------------------------------------------------------------------------- scores
    @staticmethod
    def score_model(checkpoint: Path, precision: str) -> str:
        return json.dumps({"checkpoint": checkpoint_sha256(checkpoint), "precision": precision,
                           "torch": _version("torch"), "transformers": _version("transformers"),
                           "version": SCORES_VERSION}, sort_keys=True)

    def scores(self, model: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[float, int]]]:
        return self.store.cached_scores(model, keys)

    def save_scores(self, model: str, scores: Sequence[tuple[str, str, list[tuple[float, int]]]]) -> None:
        if scores:
            self.store.save_scores(model, scores)


def sample_completions(gguf: Path, prompts: Sequence[str], seeds: Sequence[int], sampling, n_parallel: int,
                       cache: Optional[EvalCache], should_stop: Optional[Callable[[], bool]] = None
                       ) -> list[Optional[tuple[str, str, bool]]]:
    """(text, finish, from the cache) for each prompt and seed (each prompt given as many times as it
    has answers, the same number for all): the cache's answer when it holds one, else sampled with
    llama.cpp and kept (one transaction; the answers finished before a stop too). None for a prompt a
    stop left unsampled. llama.cpp is not loaded when every answer is cached."""
    from ..inference.generation import BatchedGenerator, context_per_sequence

    keys = [(text_sha256(p), s) for p, s in zip(prompts, seeds)]
    model = sampling_key = None
    known: dict = {}
    if cache is not None:
        copies = max(Counter(prompts).values(), default=1)
        model, sampling_key = cache.answer_model(gguf), cache.answer_sampling(sampling, copies)
        known = cache.answers(model, sampling_key, keys)
    # a prompt's answers are sampled together (the prompt decoded once, copied to each), so that an
    # answer is always made the same way: a prompt with any answer missing is sampled again in full
    unfinished = {prompt for prompt, seed in keys if (prompt, seed) not in known}
    todo = [i for i, key in enumerate(keys) if key[0] in unfinished]
    sampled: dict[int, tuple[str, str]] = {}
    if todo:
        wanted = [prompts[i] for i in todo]
        n_ctx = context_per_sequence(gguf, wanted, sampling.max_new_tokens)
        # no prefix shared between prompts: its length depends on which prompts are sampled together,
        # and with it an answer's logits (measured: no answer alike when the prefix changed)
        with BatchedGenerator(gguf, n_parallel=min(n_parallel, len(todo)), n_ctx_per_seq=n_ctx,
                              share_prefix=False) as gen:
            gen.generate(wanted, sampling, seeds=[seeds[i] for i in todo], should_stop=should_stop,
                         on_complete=lambda j, c: sampled.__setitem__(todo[j], (c.text, c.finish)))
        if cache is not None:
            cache.save_answers(model, sampling_key, [(*keys[i], *sampled[i]) for i in sorted(sampled)])
    return [(*known[key], True) if key in known else (*sampled[i], False) if i in sampled else None
            for i, key in enumerate(keys)]


class CachedScorer:
    """`ResponseScorer.score` and the neutral perplexity under one checkpoint, from the cache where it
    holds them. A call's scores are kept as one entry, under the responses it scored together: packing
    changes a score by fp32 rounding (~1e-4 nats for an answer), so a score is given back only for the
    same responses scored together, and is then exactly what that call computed. The model is loaded
    (by `load`, which returns (model, tokenizer)) only when a call is not cached; the tokenizer alone
    when the cache is asked. Computed scores are kept at `save()`, one transaction per part. Without
    a cache it only scores."""

    def __init__(self, checkpoint: Path, precision: str, cache: Optional[EvalCache], load: Callable) -> None:
        self.checkpoint = Path(checkpoint)
        self.precision = precision
        self.cache = cache
        self._load = load
        self._tokenizer = None
        self._scorer = None
        self._keys: dict[str, str] = {}      # precision → the cache's model key
        self._pending: dict[str, list] = {}  # model key → scores computed, not kept yet
        self.loaded = False
        self.computed = self.reused = 0      # scores

    def _model_key(self, precision: str) -> str:
        if precision not in self._keys:
            self._keys[precision] = EvalCache.score_model(self.checkpoint, precision)
        return self._keys[precision]

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
        return self._tokenizer

    def scorer(self):
        """The checkpoint's `ResponseScorer`, loaded on first use."""
        if self._scorer is None:
            from ..inference.scoring import ResponseScorer

            model, tokenizer = self._load(self.checkpoint)
            self._scorer, self._tokenizer, self.loaded = ResponseScorer(model, tokenizer), tokenizer, True
        return self._scorer

    def _cached(self, precision: str, prompt: str, responses: Sequence[str], compute: Callable[[], list]) -> list:
        """The scores of `responses` together after `prompt`: cached, else `compute()`d (and kept at `save`)."""
        if self.cache is None:
            self.computed += len(responses)
            return compute()
        model, key = self._model_key(precision), (prompt, text_sha256(json.dumps(list(responses))))
        known = self.cache.scores(model, [key]).get(key)
        if known is not None:
            self.reused += len(responses)
            return known
        got = compute()
        self._pending.setdefault(model, []).append((*key, got))
        self.computed += len(responses)
        return got

    def score(self, messages: Sequence[dict], responses: Sequence[str]) -> list[tuple[float, int]]:
        """(log π(response | messages), number of tokens) for each response, as `ResponseScorer.score`."""
        from ..inference.scoring import prompt_ids

        if not responses:
            return []
        prompt = text_sha256(json.dumps(prompt_ids(self.tokenizer, messages))) if self.cache is not None else ""
        return self._cached(self.precision, prompt, responses, lambda: self.scorer().score(messages, responses))

    def perplexity(self, text: str) -> float:
        """exp(mean negative log-likelihood per token) of `text` (fp32, whatever the scoring precision)."""
        from ..inference.scoring import text_logp

        (total, count), = self._cached("fp32", f"perplexity:{PERPLEXITY_WINDOW}", [text], lambda: [
            text_logp(self.scorer().model, self.scorer().tokenizer, text, PERPLEXITY_WINDOW)])
        return math.exp(-total / max(1, count))

    def save(self) -> None:
        """Keep the scores computed since the last save (one transaction per model key)."""
        for key, rows in self._pending.items():
            self.cache.save_scores(key, rows)
        self._pending = {}

    def release(self) -> None:
        """Save, and let the model go (its memory is needed for the next)."""
        if self.cache is not None:
            self.save()
        self._scorer = None
