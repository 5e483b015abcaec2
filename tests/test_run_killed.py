"""`run` stopped with Ctrl-C (in the pairs and in training) and killed with SIGKILL (in training and in
export), one after the other on the same run: every stop says so and exits 130, every rerun continues
the same run, and the run finishes with nothing lost and nothing duplicated (issues 12 and 14). One
scenario, so that the tiny pipeline runs once for all of them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import latest_run_log, only_run_state, tiny_demo_run_args

ARGS = tiny_demo_run_args(max_steps=4)
_log = latest_run_log


def _env(home: Path) -> dict:
    return {**os.environ, "MIPO_HOME": str(home), "HF_HUB_OFFLINE": "1"}


_state = only_run_state


def _start_until(home: Path, marker: str) -> subprocess.Popen:
    """Start `run` and wait until `marker` shows in the run's log once more than it did before."""
    before = _log(home).count(marker)
    err = home.parent / "run-stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mipo_local", "run", *ARGS], env=_env(home),
                                stdout=subprocess.PIPE, stderr=fh, text=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None and _log(home).count(marker) <= before:
        time.sleep(0.2)
    if proc.poll() is not None:
        raise AssertionError(f"the run ended before {marker!r}: {err.read_text()[-2000:]}")
    assert _log(home).count(marker) > before, f"the run never reached {marker!r}"
    return proc


def _ctrl_c(home: Path, marker: str) -> tuple[int, str, str]:
    proc = _start_until(home, marker)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)      # a safe point comes within seconds, not at the stage's end
    return proc.returncode, out, (home.parent / "run-stderr.txt").read_text()


def _kill(home: Path, marker: str, rng: random.Random) -> None:
    proc = _start_until(home, marker)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_run_stopped_and_killed_in_each_stage_continues_and_finishes_with_nothing_lost(mipo_home, sampling_model,
                                                                                       smol_checkpoint):
    code, out, err = _ctrl_c(mipo_home, "tok/s")
    assert code == 130 and "Traceback" not in err, err[-2000:]
    assert "stopped; run the same command again to continue" in out
    state = _state(mipo_home)
    assert state["stages"]["pairs"]["status"] == "stopped" and not state["finished"]

    code, out, err = _ctrl_c(mipo_home, "[train] loss")
    assert code == 130 and "Traceback" not in err, err[-2000:]
    state = _state(mipo_home)
    assert state["stages"]["pairs"]["status"] == "done" and state["stages"]["train"]["status"] == "stopped"
    assert "[pairs] stopped" in _log(mipo_home) and "[train] stopped" in _log(mipo_home)

    rng = random.Random(12)
    _kill(mipo_home, "[train] continuing from the last checkpoint", rng)
    _kill(mipo_home, "[merge] merging", rng)

    done = subprocess.run([sys.executable, "-m", "mipo_local", "run", *ARGS], env=_env(mipo_home), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    state = _state(mipo_home)
    runs = sorted((mipo_home / "runs").glob("run-*"))
    assert state["finished"] and state["stages"]["train"]["steps"] == 4 and (runs[0] / "report.json").is_file()
    from mipo_local.context import ContextStore

    with ContextStore() as store:
        rows = [(r["example_id"], r["sample"]) for r in store.pairs()]
        runs_made = store.pair_run_count()
    # 12 MIPO pairs (sample 0) and, for kept ones with text of the person's own, their text's pair (sample 1)
    assert sum(sample == 0 for _, sample in rows) == 12 and {sample for _, sample in rows} <= {0, 1}
    assert len(set(rows)) == len(rows) and runs_made == 1
    from mipo_local.chat.active_model import active_model

    assert active_model() == Path(state["outputs"]["model"]).resolve()
