"""Snapshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot; update with --snapshot-update).

The home folder is the test's temporary folder: the Settings tab shows the workspace as `~/mipo-home`."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_onboarded

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def tmp_home(mipo_home: Path, tmp_path: Path, monkeypatch) -> Path:
    """The workspace (conftest's, in `tmp_path`) shown the same on every run: HOME is `tmp_path`; and
    the same machine everywhere: 16 GiB of RAM, whatever the machine has, for the recommended model."""
    assert mipo_home == tmp_path / "mipo-home"
    monkeypatch.setenv("HOME", str(tmp_path))
    import tui.screens.onboarding as onboarding
    from mipo_local.modelio.catalog import MachineMemory

    monkeypatch.setattr(onboarding, "machine_memory", lambda: MachineMemory(16.0, "RAM"))
    return mipo_home


ONBOARDING = {
    "welcome": [],
    "model": ["enter"],                 # Start has the focus: Enter presses it
    "you": ["enter", "enter"],          # Start, then Enter on the preselected model
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("step", list(ONBOARDING))
def test_onboarding(step, size, tmp_home, snap_compare):
    from tui.app import MipoApp

    assert snap_compare(MipoApp(), press=ONBOARDING[step], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onboarding_import(size, tmp_home, snap_compare):
    from tui.app import MipoApp

    async def to_import(pilot):
        pilot.app.screen.show("step-import")
        await pilot.pause()

    assert snap_compare(MipoApp(), run_before=to_import, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", ["f1", "f2", "f3", "f4", "f5", "f6"])
def test_main_tabs(tab, size, tmp_home, snap_compare):
    from tui.app import MipoApp

    save_onboarded(["ada@lindqvist.example"], name="Ada")
    assert snap_compare(MipoApp(), press=[tab], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_import_dialog(size, tmp_home, snap_compare):
    from tui.app import MipoApp

    save_onboarded()

    async def open_dialog(pilot):
        pilot.app.screen.query_one("#context").open_import()
        await pilot.pause()

    assert snap_compare(MipoApp(), run_before=open_dialog, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_path_picker(size, tmp_home, snap_compare):
    from tui.app import MipoApp
    from tui.widgets.picker import PathPicker

    save_onboarded()                      # the workspace first: a folder of other things is no workspace
    root = tmp_home / "pick"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "ideas.md").write_text("# ideas\n")
    (root / "archive.mbox").write_text("")

    async def open_picker(pilot):
        pilot.app.push_screen(PathPicker(root))
        await pilot.pause()
        await pilot.pause(0.2)

    assert snap_compare(MipoApp(), run_before=open_picker, terminal_size=size)
