"""Dropping pairs that teach nothing: empty, identical, degenerate (repetition loops, cut mid-word)."""

from __future__ import annotations

import re
from typing import Optional

_SENTENCE_END = re.compile(r"[.!?…)\]\"'”’»:;]\s*$|\n\s*$")


def trim_cut(text: str, finish: str) -> Optional[str]:
    """A completion stopped by the token limit, cut back to its last finished sentence or line.
    None when nothing whole is left (cut mid-word)."""
    text = text.rstrip()
    if finish != "length":
        return text
    if _SENTENCE_END.search(text):
        return text
    ends = [m.end() for m in re.finditer(r"[.!?…](?=\s)|[.!?…]$|\n", text)]
    if not ends or ends[-1] < len(text) * 0.3:
        return None
    return text[:ends[-1]].rstrip()


def is_degenerate(text: str) -> bool:
    """A repetition loop: a line repeated three times or more, or a 4-word run repeated to cover
    a third of the text."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if lines and max(lines.count(l) for l in set(lines)) >= 3 and len(set(lines)) <= len(lines) / 2:
        return True
    words = text.lower().split()
    if len(words) < 16:
        return False
    grams = [" ".join(words[i:i + 4]) for i in range(len(words) - 3)]
    counts: dict[str, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    top = max(counts.values())
    return top >= 3 and top * 4 >= len(words) / 3


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def judge_pair(chosen: str, chosen_finish: str, rejected: str, rejected_finish: str) -> tuple[Optional[str], str, str]:
    """(reason to drop or None, chosen, rejected) with cut completions trimmed."""
    c = trim_cut(chosen, chosen_finish)
    r = trim_cut(rejected, rejected_finish)
    if c is None or r is None:
        return "cut mid-word", chosen, rejected
    if not c.strip() or not r.strip():
        return "empty", c, r
    if _norm(c) == _norm(r):
        return "identical", c, r
    if is_degenerate(c) or is_degenerate(r):
        return "repetition loop", c, r
    return None, c, r


def usable_answer(text: str, finish: str) -> Optional[str]:
    """An answer as the pairs keep it (trimmed to its last whole sentence when cut at the token limit),
    or None when it would be dropped on its own: cut mid-word, empty, or a repetition loop."""
    trimmed = trim_cut(text, finish)
    if trimmed is None or not trimmed.strip() or is_degenerate(trimmed):
        return None
    return trimmed


