"""The ground floor of the library imports nothing above it (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mipo_local

PACKAGE = Path(mipo_local.__file__).resolve().parent
# modules every stage may use; they use only each other
GROUND = ("errors", "progress", "workspace", "gguf_scan", "llama_runtime", "prompt_format")


def imported_modules(name: str) -> set[str]:
    """The `mipo_local` modules (first level below the package) that module `name` imports anywhere."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mipo_local."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mipo_local."))
    return found


@pytest.mark.parametrize("name", GROUND)
def test_ground_floor_imports_only_the_ground_floor(name):
    assert imported_modules(name) <= set(GROUND)
