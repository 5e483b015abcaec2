"""The user's settings: one frozen dataclass, one source of defaults, saved in the workspace."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import workspace
from .errors import MipoError

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class UserSettings:
    name: str = ""
    # the user's own email addresses: their emails are their writing, the others' are prompts
    addresses: tuple[str, ...] = field(default_factory=tuple)
    # files above this size are skipped (notes, single emails); mailboxes have their own cap
    max_file_mb: float = 20.0
    max_mailbox_mb: float = 4096.0
    # chunks of the user's writing are at most this many tokens (estimated)
    chunk_tokens: int = 200
    base_model: str = ""
    onboarded: bool = False            # the app's first-run walk-through was finished

    def with_addresses(self, addresses) -> "UserSettings":
        from .addresses import normalize_address

        clean = tuple(dict.fromkeys(normalize_address(a) for a in addresses if a and a.strip()))
        return dataclasses.replace(self, addresses=clean)


def settings_path() -> Path:
    return workspace.home() / SETTINGS_FILE


def load_settings() -> UserSettings:
    path = settings_path()
    if not path.exists():
        return UserSettings()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MipoError(f"{path} is damaged ({exc}); fix it or delete it to start from the defaults") from None
    known = {f.name for f in dataclasses.fields(UserSettings)}
    values = {k: v for k, v in data.items() if k in known}
    if "addresses" in values:
        values["addresses"] = tuple(values["addresses"])
    for name in SIZE_LIMITS:       # a limit saved broken (nan, inf, ≤ 0) by an older version: the default
        if name in values and size_limit_problem(values[name]):
            del values[name]
    return UserSettings(**values)


SIZE_LIMITS = ("max_file_mb", "max_mailbox_mb")


def size_limit_problem(value) -> str:
    """Why `value` cannot be a size limit in MB ("" when it can)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{value!r} is not a number of megabytes"
    return "" if value > 0 else f"{value:g} MB would skip every file"


def save_settings(settings: UserSettings) -> None:
    workspace.write_text_atomic(settings_path(), json.dumps(dataclasses.asdict(settings), indent=2))
