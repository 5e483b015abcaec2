"""Training data: MIPO pairs from the store (or a JSONL file), checked before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Collection, Optional

from ..errors import MipoError


def _check_record(record, where: str) -> dict:
    if not isinstance(record, dict):
        raise MipoError(f"{where}: not a JSON object; every line needs prompt, chosen and rejected")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in record]
    if missing:
        raise MipoError(f"{where}: missing field(s) {', '.join(missing)}; every pair needs prompt, chosen and rejected")
    prompt, chosen, rejected = record["prompt"], record["chosen"], record["rejected"]
    ok_prompt = isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt)
    ok_turn = lambda t: isinstance(t, list) and len(t) == 1 and isinstance(t[0], dict) and t[0].get("role") == "assistant" and isinstance(t[0].get("content"), str) and t[0]["content"].strip()  # noqa: E731
    if not ok_prompt or not ok_turn(chosen) or not ok_turn(rejected):
        raise MipoError(f"{where}: prompt must be a list of messages and chosen/rejected one non-empty assistant message each")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def load_pairs_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise MipoError(f"pairs file {path} does not exist; run `mipo-local pairs` or give an exported .jsonl")
    records = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MipoError(f"{path} line {n} is not valid JSON ({exc.msg})") from None
            records.append(_check_record(record, f"{path} line {n}"))
    if not records:
        raise MipoError(f"{path} holds no pairs; generate some with `mipo-local pairs`")
    return records


def load_pairs_from_store(store, *, run_id: Optional[int] = None, split: str = "train",
                          mirror: bool = False, pair_ids: Optional[Collection[int]] = None) -> list[dict]:
    """The pairs of a run as trl records; with `mirror` each pair is followed by its mirror
    (`pairs.export.mirrored_record`); `pair_ids` keeps only those pairs (an incremental run's)."""
    from ..pairs.export import conversational_record, mirrored_record, pair_rows

    records = []
    keep = set(pair_ids) if pair_ids is not None else None
    for r in pair_rows(store, run_id=run_id, split=split):
        if keep is not None and r["id"] not in keep:
            continue
        records.append(_check_record(conversational_record(r), f"pair {r['id']}"))
        if mirror:
            records.append(_check_record(mirrored_record(r), f"pair {r['id']} (mirrored)"))
    if not records:
        raise MipoError(f"no {split} pairs in the store; run `mipo-local pairs` first")
    return records
