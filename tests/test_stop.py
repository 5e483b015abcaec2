"""The stop contract: Ctrl-C (and the app's Cancel) stops a run at the next safe point; the stage
says "stopped" instead of raising, and running again continues where it stopped (issue 14)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mipo_local.demo import DEMO_ADDRESSES, demo_sources
from mipo_local.stop import StopFlag

from .helpers import latest_run_log, only_run_state

_log = latest_run_log


_state = only_run_state


# Ctrl-C in a `run` on the command line, in the pairs and in training: tests/test_run_killed.py (one
# scenario with the SIGKILLs, so that the tiny pipeline runs once for both).


def test_stop_flag_asks_once_and_answers_for_its_extra_check():
    asked = {"now": False}
    flag = StopFlag(lambda: asked["now"])
    assert not flag()
    asked["now"] = True
    assert flag()
    asked["now"] = False
    assert flag(), "once asked, a stop stays asked"
    other = StopFlag()
    other.request()
    assert other()


def test_first_ctrl_c_asks_to_stop_and_the_second_interrupts():
    before = signal.getsignal(signal.SIGINT)      # SIG_IGN when the suite runs as a background job
    flag = StopFlag()
    with flag.on_sigint():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert flag()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before         # put back as it was


def test_cancel_in_the_app_during_pairs_and_training_then_start_continues(mipo_home, sampling_model, smol_checkpoint,
                                                                         monkeypatch):
    """The app's Cancel stops the run's worker at a safe point (the pane reports it, nothing raises
    past the worker), and Start continues the same run."""
    import asyncio

    from mipo_local.context import import_paths
    from mipo_local.settings import load_settings, save_settings

    from .helpers import app_runs_start_tiny, click, noted_app, set_value, settle

    save_settings(load_settings().with_addresses(list(DEMO_ADDRESSES)))
    import_paths(demo_sources())
    settings = load_settings()
    import dataclasses

    save_settings(dataclasses.replace(settings, onboarded=True))
    app_runs_start_tiny(monkeypatch)

    async def until(pilot, check, seconds: float = 400) -> None:
        deadline = time.time() + seconds
        while not check():
            assert time.time() < deadline, "the run never got there"
            await pilot.pause(0.2)

    async def run() -> None:
        app = noted_app()
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            pane = app.screen.query_one("PersonalizePane")
            for selector, value in (("#examples", 10), ("#max-new-tokens", 16), ("#epochs", 2), ("#quant", "Q8_0")):
                await set_value(pilot, selector, value)
            await click(pilot, "#start")
            await until(pilot, lambda: "tok/s" in _log(mipo_home))
            await click(pilot, "#cancel")
            await settle(pilot)
            detail = str(app.screen.query_one("#stage-detail").render())
            assert "cancelled" in detail, (detail, app.notes)
            assert _state(mipo_home)["stages"]["pairs"]["status"] == "stopped"

            await click(pilot, "#start")
            await until(pilot, lambda: bool(pane.losses))
            await click(pilot, "#cancel")
            await settle(pilot)
            assert "cancelled" in str(app.screen.query_one("#stage-detail").render()), app.notes
            state = _state(mipo_home)
            assert state["stages"]["pairs"]["status"] == "done" and state["stages"]["train"]["status"] == "stopped"

            await click(pilot, "#start")
            await settle(pilot)
            assert "✓ evaluate" in str(app.screen.query_one("#stages").render()), app.notes
            assert _state(mipo_home)["finished"]
            assert "[train] continuing from the last checkpoint" in _log(mipo_home)

    asyncio.run(run())
