"""The negative's context c' for each example: `drop` (none), `shuffle` (another example's context
sharing no source document), `mix` (half of the examples each, chosen by a stable hash of the
example) or `persona` (an unrelated fictional person shipped with the app)."""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import MipoError
from .examples import Example, personas, stable_fraction

STRATEGIES = ("drop", "shuffle", "mix", "persona")


def negative_contexts(examples: Sequence[Example], strategy: str) -> dict[str, Optional[tuple[str, ...]]]:
    """example id → c' (None: no context)."""
    if strategy not in STRATEGIES:
        raise MipoError(f"unknown negative strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "drop":
        return {e.id: None for e in examples}
    if strategy == "persona":
        people = personas()
        return {e.id: (people[int(stable_fraction("persona:" + e.id) * len(people))],) for e in examples}
    out: dict[str, Optional[tuple[str, ...]]] = {}
    for e in examples:
        if strategy == "mix" and stable_fraction("mix:" + e.id) < 0.5:
            out[e.id] = None
            continue
        mine = set(e.context_docs)
        others = [o for o in examples if o.id != e.id and o.context and not mine & set(o.context_docs)]
        if not others:
            raise MipoError(
                "the shuffle strategy needs examples whose contexts share no document, and this corpus is too small "
                "for it; import more writing or use --strategy drop"
            )
        others.sort(key=lambda o: stable_fraction(f"shuffle:{e.id}:{o.id}"))
        out[e.id] = others[0].context
    return out
