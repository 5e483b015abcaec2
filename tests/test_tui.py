"""The app's first screen, driven by Textual's Pilot."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable


def test_welcome_screen_lists_models():
    from tui.app import MipoApp

    async def run() -> None:
        app = MipoApp()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            table = app.screen.query_one("#models", DataTable)
            assert table.row_count == 7
            text = str(app.screen.query_one("#welcome-text").render())
            assert "leaves this machine" in text
            await pilot.press("q")
        assert app.return_code in (0, None)

    asyncio.run(run())


def test_library_never_imports_textual():
    import subprocess
    import sys

    code = ("import sys, mipo_local, mipo_local.cli, mipo_local.catalog, mipo_local.modelio, mipo_local.doctor\n"
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
