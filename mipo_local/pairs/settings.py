"""The pairs stage's settings: they make the CLI flags and the app's form, and their fingerprint
decides whether pairs made before can be reused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Optional

from ..inference.prompt_format import CONTEXT_IN, PLACEMENTS
from ..inference.scoring import WEIGHT_PRECISIONS
from ..options import option
from .examples import OWN_DOCUMENT
from .negatives import STRATEGIES

SAMPLER = "sampler"                      # candidates scored by the sampling model in llama.cpp as it samples


CANDIDATE_SCORING = (SAMPLER,) + WEIGHT_PRECISIONS


@dataclass(frozen=True)
class PairSettings:
    examples: int = option(200, "at most this many training examples to make pairs from", low=1)
    heldout_pairs: int = option(16, "and pairs for at most this many held-out examples (held-out DPO metrics)", low=0)
    strategy: str = option("drop", "the negative's context: none, another example's, half each, or an unrelated "
                           "persona", choices=STRATEGIES,
                           labels={"drop": "no context (drop)", "shuffle": "another's context",
                                   "mix": "half each (mix)", "persona": "a persona"})
    samples: int = option(1, "pairs per example (one sample per side each, as in MIPO)", low=1)
    temperature: float = option(0.8, "sampling temperature (pairs and evaluation)", low=0)
    top_p: float = option(0.95, "nucleus sampling: the smallest set of tokens with this much probability", above=0, high=1)
    max_new_tokens: int = option(160, "longest sampled answer, in tokens", low=1)
    seed: int = option(0, "sampling seed")
    heldout_fraction: float = option(0.1, "share of the examples held out for evaluation", low=0, high=0.9)
    context_tokens: int = option(400, "the budget for your writing in each prompt, in tokens (chat uses the run's)", low=1)
    n_parallel: int = option(16, "sequences decoded together", flag="--parallel", low=1)
    context_in: str = option(CONTEXT_IN, "where the context goes in the prompt", choices=PLACEMENTS)
    candidates: int = option(2, "answers sampled per side; the pair with the largest MI margin is kept", low=1)
    min_context_mi: Optional[float] = option(0.0, "drop a pair whose positive's MI (nats) under the base is not above "
                                             "this", kind=float)
    max_length_ratio: float = option(2.0, "drop a pair whose longer answer has more than this × the shorter's tokens", low=1)
    own_document: str = option("exclude", "whether a note's own text may be in the context of the request to write "
                               "about it (include: the model learns to paste it back; BENCHMARKS.md)",
                               choices=OWN_DOCUMENT)
    copy_ceiling: Optional[float] = option(0.2, "a positive may copy at most this share of its word 8-grams from the "
                                           "context: the candidate with the largest MI among those that do not paste "
                                           "the context back (none left: the pair is dropped; empty: no ceiling)",
                                           kind=float, low=0, high=1)
    real_text: bool = option(True, "also train on your own text where it exists (your reply or email; a note's text "
                             "for its title) as the chosen answer against the base's answer without context (beyond "
                             "the paper; with the likelihood term it raised your held-out writing most: BENCHMARKS.md)")
    scoring: str = option("auto", "what scores the candidates: the base in PyTorch, with bf16 weights where this CPU "
                          "computes them natively (auto), fp32 or bf16; or the sampling model in llama.cpp as it samples "
                          "(sampler: no second model in memory, the same pair as fp32 for 42 of 48 examples measured)",
                          choices=CANDIDATE_SCORING, flag="--candidate-scoring")

    def sampling(self):
        """How answers are sampled — for pairs, and for the evaluation, which samples exactly alike."""
        from ..inference.generation import Sampling

        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)

    def run_key(self, model_sha: str) -> str:
        """Runs with the same key continue each other; `examples` may grow without a new run."""
        how = ("examples", "heldout_pairs", "n_parallel", "scoring")     # how many, or how computed: not what
        keyed = {k: v for k, v in dataclasses.asdict(self).items() if k not in how}
        return hashlib.sha256(json.dumps([keyed, model_sha], sort_keys=True).encode()).hexdigest()[:16]
