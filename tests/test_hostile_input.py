"""Hostile and odd input found in real mailboxes and home folders: every file that cannot be used is
a counted skip with a reason, never an abort, a hang or a traceback (issue 12)."""

from __future__ import annotations

import time

from mipo_local.context.text import chunk_text, estimate_tokens


def test_long_single_line_chunks_in_linear_time():
    """A 2 MB note on one line took ~18 s (the growing chunk was re-counted at every word)."""
    text = "word " * 400_000
    start = time.perf_counter()
    chunks = chunk_text(text, 200)
    assert time.perf_counter() - start < 2.0
    assert all(estimate_tokens(c) <= 200 for c in chunks)
    assert " ".join(chunks).split() == text.split()
