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
    return UserSettings(**values)


def save_settings(settings: UserSettings) -> None:
    workspace.write_text_atomic(settings_path(), json.dumps(dataclasses.asdict(settings), indent=2))
