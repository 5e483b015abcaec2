"""Plain helpers shared by the tests (fixtures live in conftest.py, mail and notes in mail_fixtures.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "mipo_local"]


def run_cli(args, env_home: Path, preexec=None, timeout=600):
    """`mipo-local ARGS` in a subprocess with its workspace at `env_home`."""
    env = {**os.environ, "MIPO_HOME": str(env_home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=env, timeout=timeout, preexec_fn=preexec)


def assert_one_line_error(proc, *needles):
    """The command failed with one `mipo-local: error: ...` line on stderr that holds every needle."""
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mipo-local: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its content hash, mtime and mode (links by target): to show that
    nothing was modified."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = "->" + os.readlink(path)
        elif path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = f"{hashlib.sha256(path.read_bytes()).hexdigest()}:{st.st_mtime_ns}:{oct(st.st_mode)}"
    return out
