"""Which personal model is active. A new model becomes active only after it loads and answers;
the earlier ones are kept and can be switched back to. Each profile (`mipo_local.chat.profiles`) has its
own active model and history; the default profile (None) keeps `active_model.json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .. import workspace
from ..errors import MipoError

STATE_FILE = "active_model.json"
SMOKE_PROMPT = "Say hello in one short sentence."

_SMOKE = """
import sys
from mipo_local.inference.llama_runtime import llama_model
with llama_model(sys.argv[1], n_ctx=512) as llm:
    out = llm.create_chat_completion([{"role": "user", "content": sys.argv[2]}], max_tokens=16, temperature=0.0)
text = out["choices"][0]["message"]["content"] or ""
print(len(text.strip()))
"""


def _state_path(profile: Optional[str] = None) -> Path:
    if profile is None:
        return workspace.home() / STATE_FILE
    from .profile_names import check_name

    return workspace.subdir("profiles") / f"{check_name(profile)}.{STATE_FILE}"


def _load(profile: Optional[str] = None) -> dict:
    try:
        return json.loads(_state_path(profile).read_text())
    except (OSError, ValueError):
        return {"active": None, "history": []}


def _save(state: dict, profile: Optional[str] = None) -> None:
    workspace.write_text_atomic(_state_path(profile), json.dumps(state, indent=2))


def forget(profile: str) -> None:
    """Forget which models a (removed) profile had; the model files stay in their runs."""
    _state_path(profile).unlink(missing_ok=True)


def smoke_test(gguf: Path, timeout: float = 300.0) -> None:
    """Load the model in a child process (a crash can't take the app down) and have it answer."""
    from ..modelio.gguf_file import inspect_gguf

    inspect_gguf(gguf)
    try:
        proc = subprocess.run([sys.executable, "-c", _SMOKE, str(gguf), SMOKE_PROMPT], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MipoError(f"{gguf} did not answer within {timeout:.0f} s; the previous model stays active") from None
    if proc.returncode != 0 or not proc.stdout.strip().isdigit() or int(proc.stdout.strip()) == 0:
        reason = (proc.stderr.strip().splitlines() or ["it gave an empty answer"])[-1]
        raise MipoError(f"{gguf} failed its smoke test ({reason}); the previous model stays active")


def active_model(profile: Optional[str] = None) -> Optional[Path]:
    active = _load(profile).get("active")
    return Path(active) if active and Path(active).is_file() else None


def history(profile: Optional[str] = None) -> list[Path]:
    return [Path(p) for p in _load(profile).get("history", []) if Path(p).is_file()]


def activate(gguf: Path, *, smoke: bool = True, profile: Optional[str] = None) -> Path:
    gguf = Path(gguf).resolve()
    if smoke:
        smoke_test(gguf)
    state = _load(profile)
    if state.get("active") and state["active"] != str(gguf):
        state.setdefault("history", []).append(state["active"])
    state["active"] = str(gguf)
    _save(state, profile)
    return gguf


def switch_back(profile: Optional[str] = None) -> Path:
    """Make the previously active model active again."""
    state = _load(profile)
    earlier = [p for p in state.get("history", []) if Path(p).is_file()]
    if not earlier:
        raise MipoError("there is no earlier model to switch back to")
    previous = earlier[-1]
    state["history"] = [p for p in state.get("history", []) if p != previous]
    if state.get("active"):
        state["history"].append(state["active"])
    state["active"] = previous
    _save(state, profile)
    return Path(previous)
