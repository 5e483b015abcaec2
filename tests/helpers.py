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


# --- a tiny `run` of the demo corpus (tests/test_run_killed.py, tests/test_stop.py) ---

def tiny_demo_run_args(max_steps: int) -> list[str]:
    """`mipo-local run` arguments: the demo corpus and addresses, settings small enough for a test."""
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources

    return [*map(str, demo_sources()), *[a for address in DEMO_ADDRESSES for a in ("--me", address)],
            "--examples", "10", "--heldout-pairs", "2", "--candidates", "1", "--max-new-tokens", "32", "--context-tokens", "128",
            "--max-steps", str(max_steps), "--batch-size", "2", "--eval-examples", "2", "--eval-answers", "1",
            "--eval-contexts", "2", "--eval-writing", "2", "--quant", "Q8_0"]


def tiny_run_settings(max_steps: int):
    """The settings `tiny_demo_run_args` gives the command line, as the library's RunSettings."""
    from mipo_local.cli import build_parser
    from mipo_local.cli.run import run_settings

    return run_settings(build_parser().parse_args(["run", *tiny_demo_run_args(max_steps)]))


def app_runs_start_tiny(monkeypatch, max_steps: int = 4) -> None:
    """The app's run form starts from `tiny_run_settings` instead of the library's defaults: the app
    tests check what a run does from the app (progress, Cancel, Start continuing, errors), not how
    long the defaults take (held-out pairs, candidates, evaluation size)."""
    app_runs_start_from(monkeypatch, tiny_run_settings(max_steps))


def app_runs_start_from(monkeypatch, settings) -> None:
    """The app's run form starts from `settings` (RunSettings) instead of the library's defaults."""
    import tui.panes.personalize as personalize

    monkeypatch.setattr(personalize, "RunSettings", lambda: settings)


def only_run_state(home: Path) -> dict:
    """The state of the workspace's one run (a rerun must continue it, never start another)."""
    import json

    runs = sorted((home / "runs").glob("run-*"))
    assert len(runs) == 1, runs
    return json.loads((runs[0] / "state.json").read_text())


def latest_run_log(home: Path) -> str:
    """The log of the workspace's latest run ("" before there is one)."""
    logs = sorted((home / "runs").glob("run-*/log.txt"))
    return logs[-1].read_text(encoding="utf-8") if logs else ""


# --- the app under Textual's Pilot (tests/test_tui.py, tests/test_stop.py) ---

def noted_app():
    """The app, keeping the text of every notification it shows (from any thread) in `app.notes`."""
    import tui.app
    from tui.app import MipoApp

    class NotedApp(MipoApp):
        CSS_PATH = Path(tui.app.__file__).with_name(MipoApp.CSS_PATH)   # a relative path is the class's module's

        def __init__(self) -> None:
            super().__init__()
            self.notes: list[str] = []

        def notify(self, message, **kw) -> None:
            self.notes.append(str(message))
            super().notify(message, **kw)

    return NotedApp()


def save_onboarded(addresses=(), **kw) -> None:
    """Settings of someone past the first steps, so the app opens on its main screen."""
    import dataclasses

    from mipo_local.settings import UserSettings, save_settings

    save_settings(dataclasses.replace(UserSettings().with_addresses(list(addresses)), onboarded=True, **kw))


async def settle(pilot) -> None:
    """Every worker done and the messages they posted handled."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def set_value(pilot, selector: str, value) -> None:
    """Type `value` into an Input or choose it in a Select."""
    from textual.widgets import Input, Select

    widget = pilot.app.screen.query_one(selector)
    if isinstance(widget, Input):
        widget.value = str(value)
    elif isinstance(widget, Select):
        widget.value = value
    await pilot.pause()


async def click(pilot, selector: str) -> None:
    """Press the button `selector` (scrolled into view first, as a person would)."""
    widget = pilot.app.screen.query_one(selector)
    widget.scroll_visible(animate=False)
    await pilot.pause()
    widget.press()
    await pilot.pause()


# --- comparing two computations of one model (issue 28) ---

# Two computations that round differently (batched or alone, a LoRA merged or applied at run time,
# another CPU's kernels) give logits within LOGIT_TOLERANCE of each other, and the same top token
# wherever the top two differ by more than MARGIN; greedy text may part at a near-tie.
LOGIT_TOLERANCE = 0.5
MARGIN = 1.0


def greedy_tokens(llm, prompt: str, n: int) -> tuple[list[int], list[int]]:
    """(the prompt's tokens, llama.cpp's greedy tokens after it: at most `n`, the end of the answer
    not counted), from a fresh state."""
    llm.reset()
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    out = []
    for token in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
        if token == llm.token_eos() or len(out) == n:
            break
        out.append(token)
    return tokens, out


def assert_greedy_agree(llm, prompt_tokens, a, b, margin: float = MARGIN) -> None:
    """Greedy tokens `a` and `b` of two computations of the same model are equal, or part at a
    near-tie: at the first token where they differ, `llm` (one of the two computations) puts the two
    tokens (or a token and the end of the answer) within `margin` of each other in logit."""
    a, b = list(a), list(b)
    if a == b:
        return
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    llm.reset()
    llm.eval(list(prompt_tokens) + a[:i])
    logits = llm.scores[llm.n_tokens - 1]
    ta = a[i] if i < len(a) else llm.token_eos()
    tb = b[i] if i < len(b) else llm.token_eos()
    gap = abs(float(logits[ta]) - float(logits[tb]))
    assert gap <= margin, f"the decodings part at token {i} where the model prefers one by {gap:.3f} logits: {a} vs {b}"
