"""Outputs are written atomically (temp, fsync, rename); a full disk is one clear line and leaves the
previous file; removing a source never loses what another source also holds (issue 12)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from mipo_local import workspace
from mipo_local.context import ContextStore, import_paths
from mipo_local.errors import MipoError
from mipo_local.settings import UserSettings, load_settings, save_settings, settings_path

from .mail_fixtures import ME, plain, thread_messages, write_mbox

SETTINGS = UserSettings(addresses=(ME,))


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_keeps_the_previous_settings(monkeypatch, mipo_home):
    save_settings(UserSettings(name="Ada", addresses=(ME,)))
    before = settings_path().read_bytes()
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", _disk_full)
        with pytest.raises(MipoError, match="could not write .*settings.json: No space left on device"):
            save_settings(UserSettings(name="Someone else"))
    assert settings_path().read_bytes() == before and load_settings().name == "Ada"
    assert [p.name for p in mipo_home.iterdir() if p.name.startswith(".") and p.name != workspace.MARKER] == []  # no temp file


def test_atomic_write_is_synced_before_the_rename(monkeypatch, tmp_path):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    target = tmp_path / "state.json"
    workspace.write_text_atomic(target, json.dumps({"step": 1}))
    assert json.loads(target.read_text()) == {"step": 1}
    assert any(".state.json." in p and p.endswith(".part") for p in synced)   # the temp file, before its rename
    assert str(tmp_path) in synced                                           # and the folder, after


def test_full_disk_while_writing_a_gguf_is_one_clear_error(monkeypatch, tmp_path):
    """The writer's close, flushing after a failed write, raised a second OSError that replaced the
    clear message; the previous file must stay as it was."""
    import gguf
    import numpy as np

    from mipo_local.modelio import gguf_export

    out = tmp_path / "personal.gguf"
    out.write_bytes(b"the previous model")

    def partial_then_full(self, *args, **kwargs):
        self.fout[0].write(b"GGUF partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", partial_then_full)
    real_close = gguf.GGUFWriter.close

    def close_fails(self):
        real_close(self)
        raise OSError(errno.ENOSPC, "No space left on device (flush)")

    monkeypatch.setattr(gguf.GGUFWriter, "close", close_fails)
    with pytest.raises(MipoError) as info:
        gguf_export._write(out, "llama", lambda writer: None, iter([("token_embd.weight", np.zeros((4, 8), np.float16))]),
                           overwrite=True, progress=None, stage="export")
    assert str(info.value) == f"could not write {out}: No space left on device; free some disk space or choose another place"
    assert out.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personal.gguf"]


def test_removing_a_source_keeps_emails_another_source_holds(tmp_path):
    """The same email in two sources is stored once; removing the source that held it lost it, even
    after the other source was imported again."""
    shared = thread_messages()[1]                     # the user's reply, in both mailboxes
    (tmp_path / "a").mkdir()
    first = write_mbox(tmp_path / "a" / "Sent.mbox", [shared, plain("only-a", "bob@example.net", "A only", "Alpha.")])
    second = write_mbox(tmp_path / "b.mbox", [plain("only-b", "eve@example.net", "B only", "Beta."), shared])
    with ContextStore() as store:
        import_paths([first, second], store=store, settings=SETTINGS)
        assert store.counts()["emails"] == 3
        store.remove_source(str(first))
        assert sorted(d["title"] for d in store.documents(kind="email")) == ["B only", "Re: Choir on Thursday?"]
        again = import_paths([second], store=store, settings=SETTINGS)
        assert again.unchanged == 1
        titles = [d["title"] for d in store.documents(kind="email")]
        assert sorted(titles) == ["B only", "Re: Choir on Thursday?"]           # once, not twice
        assert store.search("tuning fork Gustav")[0].title == "Re: Choir on Thursday?"
        # and the other way round: the mailbox that holds it loses the message, the other keeps it
        import_paths([first], store=store, settings=SETTINGS)
        write_mbox(tmp_path / "b2.mbox", [plain("only-b", "eve@example.net", "B only", "Beta.")])
        os.replace(tmp_path / "b2.mbox", second)
        import_paths([second], store=store, settings=SETTINGS)
        assert sorted(d["title"] for d in store.documents(kind="email")) == ["A only", "B only", "Re: Choir on Thursday?"]
        store.remove_source(str(first))
        assert [d["title"] for d in store.documents(kind="email")] == ["B only"]
        assert store.integrity_ok()


def test_full_disk_during_an_import_is_one_clear_line(tmp_path):
    """The store cannot grow (a file size limit stands in for a full disk): one line, exit 1, and the
    store keeps every file imported before."""
    import resource
    import signal
    import subprocess
    import sys

    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(400):
        (notes / f"n{i:03d}.md").write_text(f"# Note {i}\n\n" + f"word{i} harbour kelp survey " * 200)
    home = tmp_path / "home"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, 2 * 1024 * 1024))

    proc = subprocess.run([sys.executable, "-m", "mipo_local", "import", str(notes)], capture_output=True, text=True,
                          env={**os.environ, "MIPO_HOME": str(home)}, preexec_fn=limit, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("mipo-local")]
    assert len(lines) == 1 and "free some disk space" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    with ContextStore(home / "context.sqlite3") as store:
        assert store.integrity_ok()
        counts = store.counts()
        assert 0 < counts["files"] < 400 and counts["files"] == counts["notes"]
