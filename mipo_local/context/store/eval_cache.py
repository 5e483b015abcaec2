"""The evaluation's cache: answers sampled from a model and scores of answers scored together
under a model, kept for the next evaluation and forgotten when some of the user's writing goes."""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from .base import StoreBase


class EvalCacheStore(StoreBase):
    """Cached answers and scores (migration 7)."""

    def cached_answers(self, model: str, sampling: str, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
        """(text, finish) of the answers sampled before from `model` with `sampling`, by (prompt, seed)
        among `keys`; the keys not there are left out."""
        out = {}
        for prompt, seed in keys:
            row = self.db.execute("SELECT text, finish FROM eval_answers WHERE model = ? AND prompt = ? AND sampling = ? "
                                  "AND seed = ?", (model, prompt, sampling, seed)).fetchone()
            if row:
                out[(prompt, seed)] = (row[0], row[1])
        return out

    def save_answers(self, model: str, sampling: str, answers: Iterable[tuple[str, int, str, str]]) -> None:
        """Keep sampled answers, (prompt, seed, text, finish) each, in one transaction; one already
        there stays as it is."""
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO eval_answers(model, prompt, sampling, seed, text, finish) "
                                "VALUES (?, ?, ?, ?, ?, ?)", [(model, p, sampling, s, t, f) for p, s, t, f in answers])

    def cached_scores(self, model: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[tuple[float, int]]]:
        """[(log-prob sum, token count) per response] of responses scored together before under `model`,
        by (prompt, responses) among `keys`; the keys not there are left out."""
        out = {}
        for prompt, responses in keys:
            row = self.db.execute("SELECT scores FROM eval_scores WHERE model = ? AND prompt = ? AND responses = ?",
                                  (model, prompt, responses)).fetchone()
            if row:
                out[(prompt, responses)] = [(float(lp), int(n)) for lp, n in json.loads(row[0])]
        return out

    def save_scores(self, model: str, scores: Iterable[tuple[str, str, Sequence[tuple[float, int]]]]) -> None:
        """Keep scores, (prompt, responses, [(log-prob sum, token count) per response]) each, in one
        transaction (floats as JSON keep every bit); one already there stays as it is."""
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO eval_scores(model, prompt, responses, scores) VALUES (?, ?, ?, ?)",
                                [(model, p, r, json.dumps([[lp, n] for lp, n in got])) for p, r, got in scores])

    def _forget_eval_cache(self) -> None:
        """Forget every cached answer and score, inside the caller's transaction: they were made from
        the user's writing, and some of it is going."""
        self.db.execute("DELETE FROM eval_answers")
        self.db.execute("DELETE FROM eval_scores")
