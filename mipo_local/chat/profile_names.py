"""Profile names: what a user may type, and the default profile (every source)."""

from __future__ import annotations

import re
from typing import Optional

from ..errors import MipoError

DEFAULT = "default"          # what the user may type for the default profile (every source)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def check_name(name: str) -> str:
    """A profile name as given, or a one-line MipoError (it also names a file in the workspace)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MipoError(f"{name!r} is not a profile name; use up to 40 letters, digits, '-' or '_' "
                        "(starting with a letter or digit)")
    if name == DEFAULT:
        raise MipoError(f"{DEFAULT!r} is the profile of all your sources; choose another name")
    return name


def normalize(name: Optional[str]) -> Optional[str]:
    """None for the default profile (None, "" or "default"), else the checked name."""
    if name is None or name.strip() in ("", DEFAULT):
        return None
    return check_name(name.strip())
