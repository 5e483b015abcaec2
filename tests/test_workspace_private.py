"""The workspace holds a copy of the user's mail and notes: private whatever the umask, also when an
older version made it, and an import needs no network (issue 12)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mipo_local import workspace
from mipo_local.context import ContextStore, import_paths
from mipo_local.settings import UserSettings, save_settings

from .mail_fixtures import ME, thread_messages, write_mbox, write_notes


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            out[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return out


def assert_private(root: Path) -> None:
    found = modes(root)
    loose = {p: oct(m) for p, m in found.items() if m & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert all(m == 0o700 for p, m in found.items() if (root / p).is_dir())


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_everything_written_is_private_whatever_the_umask(tmp_path, mipo_home, umask):
    notes = write_notes(tmp_path / "notes")
    box = write_mbox(tmp_path / "mail.mbox", thread_messages())
    old = os.umask(umask)
    try:
        with ContextStore() as store:                       # store, and its -wal and -shm while open
            os.umask(umask)              # as loose again as asked (the workspace's first use tightened it)
            import_paths([notes, box], store=store, settings=UserSettings(addresses=(ME,)))
            save_settings(UserSettings(addresses=(ME,)))
            workspace.write_text_atomic(workspace.subdir("conversations") / "c1.json", "{}")
            workspace.write_text_atomic(workspace.subdir("runs", "run-1") / "state.json", "{}")
            with workspace.atomic_path(workspace.models_dir() / "personal") as tmp:   # a model folder
                tmp.mkdir()
                (tmp / "model.safetensors").write_bytes(b"weights")
            assert (mipo_home / "context.sqlite3-wal").exists()
            assert_private(mipo_home)
        assert_private(mipo_home)
    finally:
        os.umask(old)


def test_a_workspace_made_by_an_older_version_is_made_private_on_open(tmp_path):
    home = tmp_path / "old-home"
    (home / "runs" / "run-1").mkdir(parents=True)
    for name in ("context.sqlite3", "context.sqlite3-wal", "settings.json", "runs/run-1/settings.json"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
    for folder in (home, home / "runs", home / "runs" / "run-1"):
        folder.chmod(0o755)
    code = "from mipo_local import workspace; workspace.home()"
    env = {**os.environ, "MIPO_HOME": str(home)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert_private(home)


def test_mipo_home_at_a_folder_that_is_not_a_workspace_is_refused_and_left_alone(tmp_path, mipo_home):
    """MIPO_HOME=~ by mistake must not make a whole home folder private: a folder holding anything but
    a workspace's own entries is refused in one line, its permissions unchanged; a file, or a path
    under one, too."""
    from .helpers import assert_one_line_error, run_cli

    shared = tmp_path / "shared"
    (shared / "pub").mkdir(parents=True)
    (shared / "pub" / "index.html").write_text("hello")
    for path, mode in ((shared, 0o755), (shared / "pub", 0o755), (shared / "pub" / "index.html", 0o644)):
        path.chmod(mode)
    before = modes(shared)
    assert_one_line_error(run_cli(["context"], shared), "not a mipo-local workspace")
    assert modes(shared) == before
    (tmp_path / "a-file").write_text("x")
    assert_one_line_error(run_cli(["context"], tmp_path / "a-file"), "is not a folder")
    assert_one_line_error(run_cli(["doctor"], tmp_path / "a-file" / "sub"), "cannot use")
    # a new folder becomes a workspace, marked, and is used again
    assert run_cli(["context"], tmp_path / "new").returncode == 0
    assert (tmp_path / "new" / workspace.MARKER).is_file()
    (tmp_path / "new" / "notes-of-mine.txt").write_text("x")
    assert run_cli(["context"], tmp_path / "new").returncode == 0
    # a workspace of an older version (no marker) that holds something of the user's is still one
    (tmp_path / "new" / workspace.MARKER).unlink()
    assert run_cli(["context"], tmp_path / "new").returncode == 0


def test_import_pairs_and_chat_work_without_a_network(tmp_path, sampling_model, smol_checkpoint):
    """Import, pairs and chat in a fresh network namespace (no interface but a down loopback), where
    the machine allows one: nothing in them may reach for the network."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not installed")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no network namespaces here ({probe.stderr.decode().strip()})")
    notes = write_notes(tmp_path / "notes")
    # a second note on the garden: a note's own text is not its context, another note of the person's is
    (notes / "zucchini.md").write_text("# Zucchini garden\n\nThe zucchini by the south fence came up in May.\n")
    box = write_mbox(tmp_path / "mail.mbox", thread_messages())
    home = tmp_path / "home"
    env = {**os.environ, "MIPO_HOME": str(home)}
    env.pop("HF_HUB_OFFLINE", None)      # nothing should need it
    check = ("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\n    raise SystemExit('network')\n"
             "except OSError:\n    pass\n")
    proc = subprocess.run([unshare, "-rn", sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, "the namespace still reaches the network"
    proc = subprocess.run([unshare, "-rn", sys.executable, "-m", "mipo_local", "import", str(notes), str(box), "--me", ME],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "6 added" in proc.stdout
    proc = subprocess.run([unshare, "-rn", sys.executable, "-m", "mipo_local", "context", "--search", "zucchini"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Garden plans" in proc.stdout, proc.stderr
    proc = subprocess.run([unshare, "-rn", sys.executable, "-m", "mipo_local", "pairs", "--examples", "2", "--heldout-pairs",
                           "0", "--max-new-tokens", "8"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "new pairs" in proc.stdout, proc.stderr
    proc = subprocess.run([unshare, "-rn", sys.executable, "-m", "mipo_local", "chat", "--base", "-m",
                           "What are my garden plans for the zucchini?"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
