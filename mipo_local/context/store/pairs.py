"""The MIPO preference pairs: pair runs (one per generation settings and sampling model, a view's
its own), the pairs each run made, and their review status."""

from __future__ import annotations

import json
import sqlite3
from typing import Optional

from ...errors import MipoError
from .base import StoreBase, _now

# the columns of a pair besides its run and time (pairs.stage fills them)
PAIR_FIELDS = ("example_id", "sample", "source", "heldout", "request", "context", "negative_context", "prompt",
               "prompt_text", "chosen", "rejected", "reference", "status", "reason", "chosen_tokens", "rejected_tokens")



class PairsStore(StoreBase):
    """Pair runs and their pairs."""

    def pair_run(self, key: str, settings: dict, model: dict) -> int:
        """The id of the pair run with this key (settings + sampling model), created when new. A view's
        pair runs are its own (the key names its sources): its examples are made from them alone."""
        if self.scope is not None:
            key = f"{key}:sources={','.join(map(str, self.scope))}"
        row = self.db.execute("SELECT id FROM pair_runs WHERE key = ?", (key,)).fetchone()
        if row:
            return row["id"]
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO pair_runs(key, settings, model, created_at) VALUES (?, ?, ?, ?)",
                            (key, json.dumps(settings), json.dumps(model), _now()))
            return self.db.execute("SELECT id FROM pair_runs WHERE key = ?", (key,)).fetchone()["id"]

    def latest_pair_run(self) -> Optional[int]:
        row = self.db.execute("SELECT id FROM pair_runs ORDER BY id DESC LIMIT 1").fetchone()
        return row["id"] if row else None

    def pair_run_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM pair_runs").fetchone()[0]

    def pair_samples_done(self, run_id: int) -> set[tuple[str, int]]:
        """(example id, sample) of every pair the run holds, kept or dropped."""
        return {(r[0], r[1]) for r in self.db.execute("SELECT example_id, sample FROM pairs WHERE run_id = ?", (run_id,))}

    def add_pair(self, run_id: int, **fields) -> None:
        """Commit one pair (its own transaction: an interrupted run loses only the pairs in flight).
        A pair already there for (run, example, sample) is left as it is."""
        columns = ["run_id", *PAIR_FIELDS, "created_at"]
        values = [run_id, *(fields[c] for c in PAIR_FIELDS), _now()]
        with self.transaction():
            self.db.execute(f"INSERT OR IGNORE INTO pairs({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            values)

    def pairs(self, run_id: Optional[int] = None, *, split: str = "all", include_dropped: bool = True) -> list[sqlite3.Row]:
        """The pairs of a run (every run when None) in the order they were made; `split` is train
        (not held out), heldout or all."""
        sql, args = "SELECT * FROM pairs WHERE 1=1", []
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        if not include_dropped:
            sql += " AND status = 'ok'"
        if split == "train":
            sql += " AND heldout = 0"
        elif split == "heldout":
            sql += " AND heldout = 1"
        elif split != "all":
            raise MipoError(f"unknown split {split!r}; choose train, heldout or all")
        return self.db.execute(sql + " ORDER BY id", args).fetchall()

    def pair(self, pair_id: int) -> Optional[sqlite3.Row]:
        return self.db.execute("SELECT * FROM pairs WHERE id = ?", (pair_id,)).fetchone()

    def set_pair_status(self, pair_id: int, status: str, reason: Optional[str]) -> None:
        with self.transaction():
            self.db.execute("UPDATE pairs SET status = ?, reason = ? WHERE id = ?", (status, reason, pair_id))

    def kept_pair_ids(self, run_id: int) -> list[int]:
        """The ids of the run's kept pairs: what a training run trains on (a review changes it)."""
        return [r[0] for r in self.db.execute("SELECT id FROM pairs WHERE run_id = ? AND status = 'ok' ORDER BY id",
                                              (run_id,))]
