"""Verbatim overlap between texts: the share of one text's word n-grams found in others. Using the
person's writing is the goal, pasting it back is not: retrieval, pair selection and the evaluation's
copy guard all measure it the same way."""

from __future__ import annotations

import re
from typing import Sequence


def lowercase_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def copy_share(answer: str, context: Sequence[str], n: int = 8) -> float:
    """The share of the answer's word n-grams found verbatim in the context (0 for answers shorter
    than n words): using the user's writing is the goal, pasting it back is not."""
    words = lowercase_words(answer)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    source = set()
    for text in context or ():
        w = lowercase_words(text)
        source.update(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return sum(g in source for g in grams) / len(grams)
