"""`run` killed with SIGKILL in the pairs, training and export stages: each rerun continues, and the
run finishes with nothing lost and nothing duplicated (issue 12)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import latest_run_log, tiny_demo_run_args

ARGS = tiny_demo_run_args(max_steps=2)
_log = latest_run_log


def _run_until(home: Path, marker: str, rng: random.Random) -> None:
    """Start `run`, and SIGKILL it a random moment after `marker` shows in the run's log."""
    env = {**os.environ, "MIPO_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    err = home.parent / "run-stderr.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "mipo_local", "run", *ARGS], env=env,
                                stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None and marker not in _log(home):
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert marker in _log(home), f"the run never reached {marker!r}: {err.read_text()[-2000:]}"


def test_run_killed_in_each_stage_finishes_with_nothing_lost(mipo_home, sampling_model, smol_checkpoint):
    rng = random.Random(12)
    for marker in ("tok/s", "[train] loss", "[merge] merging"):
        _run_until(mipo_home, marker, rng)
    env = {**os.environ, "MIPO_HOME": str(mipo_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "mipo_local", "run", *ARGS], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    runs = sorted((mipo_home / "runs").glob("run-*"))
    assert len(runs) == 1                                   # every rerun continued the same run
    state = json.loads((runs[0] / "state.json").read_text())
    assert state["finished"] and (runs[0] / "report.json").is_file()
    from mipo_local.context import ContextStore

    with ContextStore() as store:
        rows = [(r["example_id"], r["sample"]) for r in store.pairs()]
        runs_made = store.pair_run_count()
    assert len(rows) == 12 and len(set(rows)) == 12 and runs_made == 1
    from mipo_local.active_model import active_model

    assert active_model() == Path(state["outputs"]["model"]).resolve()
