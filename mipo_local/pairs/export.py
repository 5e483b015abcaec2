"""Reading pairs back: trl's conversational JSONL, and a readable view for a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..context.store import ContextStore
from ..errors import MipoError
from ..workspace import atomic_path
from .stage import latest_run

SPLITS = ("train", "heldout", "all")


def pair_rows(store: ContextStore, *, run_id: Optional[int] = None, split: str = "train", include_dropped: bool = False):
    if split not in SPLITS:
        raise MipoError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    run_id = run_id if run_id is not None else latest_run(store)
    if run_id is None:
        raise MipoError("no pairs yet; run `mipo-local pairs` first")
    return store.pairs(run_id, split=split, include_dropped=include_dropped)


def conversational_record(row) -> dict:
    """trl's conversational preference format: prompt messages, chosen and rejected turns."""
    return {
        "prompt": json.loads(row["prompt"]),
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def mirrored_record(row) -> dict:
    """The same pair seen from the negative's side: the negative's prompt (no context, or the other
    context), where the answer made without the user's context is the one to prefer. Trained along
    with the pair, it asks for log π(y+|c,q) − log π(y+|c',q) to grow — the pointwise MI itself —
    instead of only log π(y+|c,q) − log π(y−|c,q)."""
    from ..inference.prompt_format import chat_messages, placement_of

    negative = json.loads(row["negative_context"]) if row["negative_context"] else None
    return {
        "prompt": chat_messages(negative, row["request"], context_in=placement_of(json.loads(row["prompt"]))),
        "chosen": [{"role": "assistant", "content": row["rejected"]}],
        "rejected": [{"role": "assistant", "content": row["chosen"]}],
    }


def export_jsonl(store: ContextStore, out: Path, *, run_id: Optional[int] = None, split: str = "train") -> int:
    """Write the pairs of a run as JSONL (atomically); returns how many were written."""
    rows = pair_rows(store, run_id=run_id, split=split)
    with atomic_path(Path(out), overwrite=True) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(conversational_record(row), ensure_ascii=False) + "\n")
    return len(rows)


def format_pair(row, width: int = 100) -> str:
    import textwrap

    def block(title: str, text: str) -> str:
        body = "\n".join(textwrap.fill(line, width) if line.strip() else "" for line in text.splitlines())
        return f"--- {title}\n{body}"

    context = json.loads(row["context"])
    negative = json.loads(row["negative_context"]) if row["negative_context"] else None
    parts = [
        f"=== pair {row['id']} ({row['source']}{', held out' if row['heldout'] else ''}"
        f"{', dropped: ' + row['reason'] if row['status'] != 'ok' else ''})",
        block("request", row["request"]),
        block(f"context ({len(context)} excerpts)", "\n…\n".join(c[:300] for c in context)),
        block("negative context", "(none)" if not negative else "\n…\n".join(c[:200] for c in negative)),
        block("chosen (with context)", row["chosen"]),
        block("rejected", row["rejected"]),
    ]
    return "\n".join(parts)
