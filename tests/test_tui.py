"""The app, driven by Textual's Pilot on the real stack: onboarding → import of the demo corpus →
a personalize run with tiny settings → a chat message answered by the real model; and error paths
that must end as a notification naming the cause while the app keeps running."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable

from mipo_local.demo import DEMO_ADDRESSES, demo_dir, demo_sources
from mipo_local.settings import load_settings

from .helpers import app_runs_start_tiny, click, noted_app, save_onboarded, set_value, settle


def test_onboarding_import_personalize_and_chat(mipo_home, sampling_model, smol_checkpoint, monkeypatch):
    from tui.screens.main import MainScreen
    from tui.screens.onboarding import OnboardingScreen

    app_runs_start_tiny(monkeypatch)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, OnboardingScreen)
            assert "leaves this machine" in str(screen.query_one("#welcome-text").render())
            await click(pilot, "#next-welcome")
            table = screen.query_one("#models", DataTable)
            assert table.row_count == 7 and "*" in str(table.get_row_at(table.cursor_row)[0])   # bundled preselected
            await click(pilot, "#next-model")
            await set_value(pilot, "#name", "Ada")
            await set_value(pilot, "#addresses", ", ".join(DEMO_ADDRESSES))
            await click(pilot, "#next-you")
            assert screen.step == "step-import"
            for folder in ("notes", "mail"):
                await set_value(pilot, "#import-path", demo_dir() / folder)
                await pilot.press("enter")
            await click(pilot, "#do-import")
            await settle(pilot)
            assert "42 added" in str(screen.query_one("#import-summary").render())
            await click(pilot, "#finish")
            assert isinstance(app.screen, MainScreen)
            assert load_settings().onboarded and load_settings().addresses == DEMO_ADDRESSES
            assert "notes" in str(app.screen.query_one("#context-counts").render())

            await pilot.press("f2")
            for selector, value in (("#examples", 6), ("#max-new-tokens", 16), ("#epochs", 1), ("#quant", "Q8_0")):
                await set_value(pilot, selector, value)
            await click(pilot, "#start")
            await settle(pilot)
            assert "✓ evaluate" in str(app.screen.query_one("#stages").render()), app.notes
            from mipo_local.chat.active_model import active_model

            assert active_model() is not None
            assert "active model: run-" in str(app.screen.query_one("#active-model").render())

            await pilot.press("f3")    # review: drop the first kept pair
            table = app.screen.query_one("#pairs-table", DataTable)
            kept = [i for i in range(table.row_count) if table.get_row_at(i)[2] == "kept"]
            assert kept
            table.focus()
            table.move_cursor(row=kept[0])
            await pilot.pause()
            await pilot.press("d")
            from mipo_local.context import ContextStore
            from mipo_local.pairs import pair_rows

            pair_id = int(table.get_row_at(kept[0])[0])
            with ContextStore() as store:
                row = next(r for r in pair_rows(store, split="all", include_dropped=True) if r["id"] == pair_id)
            assert (row["status"], row["reason"]) == ("dropped", "dropped by you")
            assert "Chosen (with your context)" in str(app.screen.query_one("#pair-detail").render())

            await pilot.press("f4")
            await set_value(pilot, "#chat-input", "What do I feed Bjørn the sourdough starter?")
            app.screen.query_one("#chat-input").focus()
            await pilot.press("enter")
            await settle(pilot)
            answer = app.screen.query(".msg-model").last()
            assert answer.source.strip() and answer.source != "*(no answer)*", app.notes
            assert "•" in str(app.screen.query_one("#snippets").render())
            assert app.screen.query_one("#conversations").option_count == 1

    asyncio.run(run())


def test_unreadable_source_is_a_notification(mipo_home, tmp_path):

    save_onboarded(DEMO_ADDRESSES)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.screen.query_one("#context").open_import()
            await pilot.pause()
            await set_value(pilot, "#import-path", tmp_path / "no-such-folder")
            await pilot.press("enter")
            await click(pilot, "#do-import")
            await settle(pilot)
            assert any("no-such-folder does not exist" in n for n in app.notes), app.notes
            assert app.is_running

    asyncio.run(run())


def test_settings_names_an_entry_that_is_not_an_address(mipo_home):
    save_onboarded(DEMO_ADDRESSES)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("f6")
            await set_value(pilot, "#settings-addresses", "ada@lindqvist.example; ada")
            await click(pilot, "#save-settings")
            assert any("'ada' is not an email address" in n for n in app.notes), app.notes
            assert load_settings().addresses == DEMO_ADDRESSES

    asyncio.run(run())


def test_no_model_available_is_a_notification(mipo_home):
    from mipo_local.context import import_paths

    save_onboarded(DEMO_ADDRESSES, base_model="qwen2.5-0.5b-instruct")   # in the catalog, not on this machine
    import_paths([demo_dir() / "notes"])

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            await click(pilot, "#start")
            await settle(pilot)
            assert any("qwen2.5-0.5b-instruct" in n.lower() or "not on this machine" in n for n in app.notes), app.notes
            assert app.is_running and not app.screen.query_one("#start").disabled

    asyncio.run(run())


def test_training_failure_is_a_notification(mipo_home, sampling_model, smol_checkpoint, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: asking for it does not fail here")
    from mipo_local.context import import_paths

    save_onboarded(DEMO_ADDRESSES)
    import_paths(demo_sources())
    app_runs_start_tiny(monkeypatch)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            for selector, value in (("#examples", 6), ("#max-new-tokens", 16), ("#device", "cuda")):
                await set_value(pilot, selector, value)
            await click(pilot, "#start")
            await settle(pilot)
            assert any("cuda" in n.lower() for n in app.notes), app.notes
            stages = str(app.screen.query_one("#stages").render())
            assert app.is_running and "✓ pairs" in stages and "✗ train" in stages

    asyncio.run(run())


def test_library_never_imports_textual():
    import subprocess
    import sys

    code = ("import sys, mipo_local, mipo_local.cli, mipo_local.modelio.catalog, mipo_local.modelio, mipo_local.cli.doctor, "
            "mipo_local.pipeline, mipo_local.chat.session, mipo_local.evaluation.stage, mipo_local.pipeline.summary, mipo_local.addresses\n"
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_context_results_settings_chat_and_palette(mipo_home, bundled_gguf):
    """The other tabs' actions on real data: search, re-import, remove a source, switch back to an
    earlier model, save settings, chat with the base model, a command from the palette."""
    import shutil

    from mipo_local.chat.active_model import activate, active_model
    from mipo_local.context import ContextStore, import_paths

    save_onboarded(DEMO_ADDRESSES)
    import_paths(demo_sources())
    first, second = (shutil.copy(bundled_gguf, mipo_home / name) for name in ("a.gguf", "b.gguf"))
    activate(first, smoke=False)
    activate(second, smoke=False)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            s = app.screen
            await set_value(pilot, "#search", "sourdough")
            s.query_one("#search").focus()
            await pilot.press("enter")
            assert "Bjørn" in str(s.query_one("#search-results").render())
            s.query_one("#context").reimport_selected()
            await settle(pilot)
            s.query_one("#context").remove_selected()
            await pilot.pause()
            with ContextStore() as store:
                assert store.counts()["sources"] == 1
            await pilot.press("f5")
            assert "b.gguf" in str(s.query_one("#active-model").render())
            await click(pilot, "#switch-back")
            assert active_model().name == "a.gguf" and "a.gguf" in str(s.query_one("#active-model").render())
            await pilot.press("f6")
            await set_value(pilot, "#settings-name", "Ada L.")
            await click(pilot, "#save-settings")
            assert load_settings().name == "Ada L."
            await pilot.press("f4")
            s.query_one("#chat").use_model("base")
            await set_value(pilot, "#chat-input", "hello")
            s.query_one("#chat-input").focus()
            await pilot.press("enter")
            await settle(pilot)
            assert s.query(".msg-model").last().source.strip()
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"new conversation")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            assert not s.query(".msg-model")
            assert app.is_running

    asyncio.run(run())


def test_a_newcomer_is_led_by_the_keys_a_person_presses(mipo_home, bundled_gguf):
    """Issue 28, tried in a terminal of 110×34: Enter on the welcome screen starts (Start has the
    focus); F4 puts the cursor in the message box, so what one types is sent; before any run Chat
    talks to the original model, labelled so, and says in the app's words how to make the personal
    one (no command-line flags, no '(no answer)')."""
    from mipo_local.modelio.catalog import default_card, load_catalog, machine_memory, recommend
    from tui.screens.main import MainScreen
    from tui.screens.onboarding import OnboardingScreen

    best, why = recommend(load_catalog(), machine_memory())

    async def welcome() -> None:
        app = noted_app()
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, OnboardingScreen) and app.screen.step == "step-welcome"
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen.step == "step-model"
            # the largest model that fits this machine is recommended, and why; the bundled one stays
            # preselected while the recommended one is not on the machine
            table = app.screen.query_one("#models", DataTable)
            assert "(recommended)" in str(table.get_row(best.name)[0])
            assert why in str(app.screen.query_one("#model-recommendation").render())
            chosen = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            assert chosen == (best.name if best.available else default_card().name)

    asyncio.run(welcome())

    save_onboarded(DEMO_ADDRESSES)
    from mipo_local.context import import_paths

    import_paths(demo_sources())

    async def chat() -> None:
        app = noted_app()
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
            await pilot.press("f4")
            await pilot.pause()
            assert app.focused is not None and app.focused.id == "chat-input"
            model = app.screen.query_one("#chat-model")
            assert model.value == "base" and "original model" in str(model.query_one("SelectCurrent #label").render())
            hint = str(app.screen.query_one("#chat-hint").render())
            assert "no personal model yet" in hint and "Personalize tab" in hint
            await pilot.press(*"hello")
            await pilot.press("enter")
            await settle(pilot)
            answer = app.screen.query(".msg-model").last()
            assert answer.source.strip() and "no answer" not in answer.source, app.notes
            assert not any("--" in note for note in app.notes), app.notes

    asyncio.run(chat())


def test_the_apps_import_summary_speaks_of_the_app_not_of_flags():
    from mipo_local.context.importer import ImportSummary
    from tui.widgets.import_panel import summary_lines

    summary = ImportSummary(added=3, detected_addresses=["ada@example.org"],
                            skipped=[("a.md", "empty file"), ("b.md", "empty file")])
    text = "\n".join(summary_lines(summary))
    assert "change them in Settings (F6)" in text and "--" not in text.replace("—", "")


def test_the_catalog_recommends_the_largest_model_that_fits_and_says_why():
    """Issue 28: the largest model that fits the machine's memory (at most 80% of it), and why; the
    bundled one when nothing larger fits. The app's model step shows it (the newcomer's test)."""
    from mipo_local.modelio.catalog import MachineMemory, load_catalog, machine_memory, recommend

    cards = load_catalog()
    assert recommend(cards, MachineMemory(2.0, "RAM"))[0].default                 # nothing larger fits
    small, why = recommend(cards, MachineMemory(6.0, "GPU memory"))
    assert small.memory_gb <= 4.8 and "6 GiB of GPU memory" in why
    large, _ = recommend(cards, MachineMemory(64.0, "unified memory"))
    assert large.memory_gb == max(c.memory_gb for c in cards)
    here = machine_memory()
    assert here.gib > 0 and here.kind in ("RAM", "GPU memory", "unified memory")
