"""Snapshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot; update with --snapshot-update).

The workspace is a fixed path here, because the Settings tab shows where it is."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mipo_local.settings import UserSettings, save_settings

SIZES = [(80, 24), (120, 40)]
FIXED_HOME = Path("/tmp/mipo-local-snapshot-home")


@pytest.fixture
def fixed_home(monkeypatch):
    shutil.rmtree(FIXED_HOME, ignore_errors=True)
    monkeypatch.setenv("MIPO_HOME", str(FIXED_HOME))
    yield FIXED_HOME
    shutil.rmtree(FIXED_HOME, ignore_errors=True)


ONBOARDING = {
    "welcome": [],
    "model": ["tab", "enter"],          # focus Start, press it
    "you": ["tab", "enter", "enter"],   # Start, then Enter on the preselected model
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("step", list(ONBOARDING))
def test_onboarding(step, size, fixed_home, snap_compare):
    from tui.app import MipoApp

    assert snap_compare(MipoApp(), press=ONBOARDING[step], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onboarding_import(size, fixed_home, snap_compare):
    from tui.app import MipoApp

    async def to_import(pilot):
        pilot.app.screen.show("step-import")
        await pilot.pause()

    assert snap_compare(MipoApp(), run_before=to_import, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", ["f1", "f2", "f3", "f4", "f5", "f6"])
def test_main_tabs(tab, size, fixed_home, snap_compare):
    from tui.app import MipoApp

    save_settings(dataclasses.replace(UserSettings().with_addresses(["ada@lindqvist.example"]), name="Ada", onboarded=True))
    assert snap_compare(MipoApp(), press=[tab], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_import_dialog(size, fixed_home, snap_compare):
    from tui.app import MipoApp

    save_settings(dataclasses.replace(UserSettings(), onboarded=True))

    async def open_dialog(pilot):
        pilot.app.screen.query_one("#context").open_import()
        await pilot.pause()

    assert snap_compare(MipoApp(), run_before=open_dialog, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_path_picker(size, fixed_home, snap_compare):
    from tui.app import MipoApp
    from tui.widgets.picker import PathPicker

    root = fixed_home / "pick"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "ideas.md").write_text("# ideas\n")
    (root / "archive.mbox").write_text("")
    save_settings(dataclasses.replace(UserSettings(), onboarded=True))

    async def open_picker(pilot):
        pilot.app.push_screen(PathPicker(root))
        await pilot.pause()
        await pilot.pause(0.2)

    assert snap_compare(MipoApp(), run_before=open_picker, terminal_size=size)
