"""Incremental runs: when the active model came from a run and the user's writing has grown or
changed since, a run makes pairs only for the examples made from new or changed documents, continues
training the active run's adapter on them with a replay share of earlier pairs, and reports the new
model against the previous one and the base on the same held-out examples.

What a run saw is the version of every document when its pairs were made (`documents.json` in its
folder: "file id:locator:content hash", `ContextStore.document_versions`); a document whose version
no such snapshot holds is new or changed. An example's held-out split depends only on its id
(`pairs.examples.is_heldout`), so it never changes as the data grows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import workspace
from ..pairs.examples import stable_fraction
from .runs import load_state

SNAPSHOT = "documents.json"


@dataclass(frozen=True)
class Basis:
    """The run an incremental run continues: the active model's."""
    run_dir: Path
    adapter: Path
    model: Path
    merged: Path
    pair_run: int

    def to_dict(self) -> dict:
        return {"run": str(self.run_dir), "adapter": str(self.adapter), "model": str(self.model),
                "merged": str(self.merged), "pair_run": self.pair_run}

    @classmethod
    def from_dict(cls, data: dict) -> "Basis":
        return cls(Path(data["run"]), Path(data["adapter"]), Path(data["model"]), Path(data["merged"]),
                   int(data["pair_run"]))


def write_snapshot(store, run_dir: Path) -> None:
    """Record the version of every document now (the data this run's pairs are made from)."""
    versions = sorted(set(store.document_versions().values()))
    workspace.write_text_atomic(Path(run_dir) / SNAPSHOT, json.dumps(versions))


def new_documents(store, run_dir: Path) -> set[int]:
    """The ids of the documents added or changed since the run in `run_dir` made its pairs."""
    seen = set(json.loads((Path(run_dir) / SNAPSHOT).read_text()))
    return {doc_id for doc_id, version in store.document_versions().items() if version not in seen}


def _compatible(settings, state: dict, base_path: str) -> Optional[str]:
    """Why the previous run's adapter cannot simply be continued with `settings`, or None."""
    import dataclasses

    from .settings import RunSettings

    before = RunSettings.from_dict(state["settings"])
    if str(state.get("base")) != base_path:
        return "the active model was trained from another base model"
    loose = ("examples", "heldout_pairs", "n_parallel")   # the pair run's own key ignores these too
    mine = {k: v for k, v in dataclasses.asdict(settings.pairs).items() if k not in loose}
    theirs = {k: v for k, v in dataclasses.asdict(before.pairs).items() if k not in loose}
    if mine != theirs:
        return "the pair settings differ from the active model's run"
    if (settings.train.lora_rank, settings.train.lora_alpha) != (before.train.lora_rank, before.train.lora_alpha):
        return "the LoRA rank or alpha differs from the active model's"
    return None


def find_basis(settings, base_path: str, profile: Optional[str] = None) -> tuple[Optional[Basis], str]:
    """(the active model's run to continue, or None; why). The active model must come from a
    finished run with its adapter, merged model and document snapshot, made with compatible settings."""
    from ..chat.active_model import active_model

    model = active_model(profile)     # a profile's run continues that profile's model
    if model is None:
        return None, "there is no active personal model yet"
    run_dir = model.parent
    try:
        state = load_state(run_dir)
    except Exception:  # noqa: BLE001 - an active model that is not a run's (a GGUF chosen by hand)
        return None, "the active model does not come from a run"
    outputs = state.get("outputs") or {}
    pair_run = ((state.get("stages") or {}).get("pairs") or {}).get("pair_run")
    adapter, merged = Path(outputs.get("adapter") or "-"), Path(outputs.get("merged") or "-")
    if not state.get("finished") or pair_run is None or not (run_dir / SNAPSHOT).is_file() \
            or not (adapter / "adapter_config.json").is_file() or not merged.is_dir():
        return None, f"the active model's run ({run_dir.name}) lacks what continuing needs (adapter, snapshot)"
    why = _compatible(settings, state, base_path)
    if why:
        return None, why
    return Basis(run_dir, adapter, model, merged, int(pair_run)), f"continuing {run_dir.name}'s model"


def replay_split(rows, new_examples: set[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(new pair ids, replayed pair ids) among a pair run's kept training `rows`: every pair of a new
    example, and earlier pairs, in a stable random order, as many as make them `fraction` of the whole
    (n_new × fraction / (1 − fraction)), all of them when there are fewer; 0 ≤ fraction < 1."""
    new = [r["id"] for r in rows if r["example_id"] in new_examples]
    old = sorted((r for r in rows if r["example_id"] not in new_examples),
                 key=lambda r: stable_fraction(f"replay:{seed}:{r['example_id']}:{r['sample']}"))
    wanted = round(len(new) * fraction / (1.0 - fraction))
    return new, [r["id"] for r in old[:wanted]]
