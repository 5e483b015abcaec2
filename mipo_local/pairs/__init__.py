"""MIPO preference pairs: examples from the context store, sampled with llama.cpp."""

from .examples import Example, build_examples
from .export import export_jsonl, format_pair, pair_rows
from .negatives import STRATEGIES, negative_contexts
from .settings import PairSettings
from .stage import PairsSummary, generate_pairs, latest_run

__all__ = ["Example", "PairSettings", "PairsSummary", "STRATEGIES", "build_examples", "export_jsonl", "format_pair",
           "generate_pairs", "latest_run", "negative_contexts", "pair_rows"]
