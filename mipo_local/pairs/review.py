"""Reviewing pairs before training: the user drops bad ones (or takes a drop back)."""

from __future__ import annotations

from ..context.store import ContextStore
from ..errors import MipoError

USER_DROP = "dropped by you"


def set_pair_kept(store: ContextStore, pair_id: int, keep: bool) -> None:
    """Keep or drop one pair. A pair the filters dropped can't be kept (its text failed a check)."""
    row = store.pair(pair_id)
    if row is None:
        raise MipoError(f"there is no pair {pair_id}")
    if keep and row["status"] == "dropped" and row["reason"] != USER_DROP:
        raise MipoError(f"pair {pair_id} was dropped by a check ({row['reason']}) and can't be used")
    store.set_pair_status(pair_id, "ok" if keep else "dropped", None if keep else USER_DROP)
