"""Training on several GPUs or machines: the training stage under Hugging Face Accelerate.

`launch_training` is `train_lora` run as `accelerate launch --config_file CONFIG -m
mipo_local.train.launch JOB` (one process per GPU: DDP, or DeepSpeed ZeRO when the config says so)
and waited for; it returns the same `TrainResult`. Everything else in a run stays in the calling
process: the pairs come from the store there, and the export that follows runs there once, so only one
process ever writes the adapter, the exports or the run's state. Progress and stopping cross the process
boundary as files and lines: the main training process prints each progress event as one JSON line
(relayed to the caller's callback), and a stop asked of the caller creates a `stop` file that every
training process sees at its next step (`World.any` makes them agree on the step).

`World` is what `train_lora` needs to know inside such a process: how many processes, which one is
main, and the few collective steps (main first, agree on a stop, save once). It lives in `world.py`
(and `TrainResult` in `result.py`), which `trainer.py` imports too, so the two modules need not import
each other; both stay importable from here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import MipoError
from ..progress import ProgressCallback, ProgressEvent
from ..workspace import write_text_atomic
from .result import TrainResult
from .settings import TrainSettings
from .world import World

__all__ = ["CONFIGS", "EVENT_PREFIX", "TrainResult", "World", "check_config", "launch_command", "launch_training"]

EVENT_PREFIX = "mipo-local-event "     # a progress event on the main training process's stdout
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")
CONFIGS = Path(__file__).with_name("accelerate")   # example Accelerate configs (README: "Several GPUs or machines")


def check_config(config_file: Path) -> dict:
    """The Accelerate config as a dict, or a one-line MipoError: missing, unreadable, or asking for
    DeepSpeed where it is not installed."""
    config_file = Path(config_file)
    if not config_file.is_file():
        raise MipoError(f"Accelerate config {config_file} does not exist; start from one in {CONFIGS} "
                        "(see the README: 'Several GPUs or machines')")
    import yaml

    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MipoError(f"Accelerate config {config_file} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict) or "distributed_type" not in config:
        raise MipoError(f"Accelerate config {config_file} has no distributed_type; write one with `accelerate config` "
                        f"or start from {CONFIGS / 'ddp.yaml'}")
    if str(config["distributed_type"]).upper() == "DEEPSPEED":
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise MipoError(f"{config_file} asks for DeepSpeed, which is not installed; `pip install deepspeed` "
                            "(needs CUDA) or use a DDP config such as " + str(CONFIGS / "ddp.yaml"))
    return config


def launch_command(config_file: Path, job_file: Path) -> list[str]:
    """The command every machine runs: `accelerate launch` on the per-process entry point."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "mipo_local.train.launch", str(job_file)]


class OutputRelay:
    """Reads the training processes' output until it ends: progress events go to the caller's callback,
    everything else to the log file, and the processes' own errors are kept for the failure message."""

    def __init__(self, stream, log_path: Path, progress: Optional[ProgressCallback]):
        self.stream, self.log_path, self.progress = stream, log_path, progress
        self.errors: list[str] = []        # the processes' own one-line errors (train_lora's MipoErrors)
        self.crashes: list[str] = []       # the last line of a process's traceback

    def run(self) -> None:
        with open(self.log_path, "w", encoding="utf-8") as log:
            os.chmod(self.log_path, 0o600)
            for line in self.stream:
                if line.startswith(EVENT_PREFIX):
                    if self.progress is not None:
                        self.progress(ProgressEvent(**json.loads(line[len(EVENT_PREFIX):])))
                    continue
                log.write(line)
                log.flush()
                if line.startswith("mipo-local: error: "):
                    self.errors.append(line.strip()[len("mipo-local: error: "):])
                elif EXCEPTION.match(line) and "ChildFailedError" not in line:   # a process's traceback, not the launcher's
                    self.crashes.append(line.strip())

    def reason(self) -> str:
        return self.errors[0] if self.errors else self.crashes[0] if self.crashes else "see its output"


def write_job(launch_dir: Path, checkpoint: Path, records: Sequence[dict], run_dir: Path, settings: TrainSettings, *,
              resume: bool, max_steps: Optional[int], heldout: Sequence[dict], init_adapter: Optional[Path]) -> Path:
    """The job file `launch.run_job` reads in every process, beside the pairs it names; the stop and
    result files of an earlier launch are removed."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("pairs.jsonl", records), ("heldout.jsonl", heldout)):
        write_text_atomic(launch_dir / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    stop_file, result_file = launch_dir / "stop", launch_dir / "result.json"
    for stale in (stop_file, result_file):
        stale.unlink(missing_ok=True)
    job = {"checkpoint": str(Path(checkpoint).resolve()), "run_dir": str(run_dir.resolve()),
           "settings": dataclasses.asdict(settings), "resume": resume, "max_steps": max_steps,
           "pairs": str((launch_dir / "pairs.jsonl").resolve()),
           "heldout": str((launch_dir / "heldout.jsonl").resolve()) if heldout else None,
           "init_adapter": str(Path(init_adapter).resolve()) if init_adapter else None,
           "stop_file": str(stop_file.resolve()), "result_file": str(result_file.resolve())}
    return write_text_atomic(launch_dir / "job.json", json.dumps(job, indent=2))


def wait_for(proc: subprocess.Popen, stop_file: Path, should_stop: Optional[Callable[[], bool]]) -> None:
    """Wait for the launch to end, turning a stop asked of this process into the stop file; if this
    process leaves first (an exception), the launch goes with it."""
    try:
        while proc.poll() is None:
            if should_stop is not None and should_stop() and not stop_file.exists():
                stop_file.touch(mode=0o600)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def read_result(result_file: Path, run_dir: Path) -> TrainResult:
    result = json.loads(result_file.read_text(encoding="utf-8"))
    return TrainResult(run_dir=run_dir, adapter_dir=Path(result["adapter_dir"]) if result["adapter_dir"] else None,
                       steps=result["steps"], total_steps=result["total_steps"], stopped=result["stopped"],
                       seconds=result["seconds"], pairs_per_second=result["pairs_per_second"], metrics=result["metrics"])


def launch_training(
    config_file: Path,
    checkpoint: Path,
    records: Sequence[dict],
    run_dir: Path,
    settings=None,
    *,
    resume: bool = False,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    max_steps: Optional[int] = None,
    heldout: Sequence[dict] = (),
    init_adapter: Optional[Path] = None,
) -> TrainResult:
    """`train_lora` with the same arguments, run under `accelerate launch` with `config_file`; waits
    for it and returns its `TrainResult`. The training processes' output goes to `run_dir/launch/log.txt`."""
    settings = settings or TrainSettings()
    check_config(config_file)
    run_dir = Path(run_dir)
    launch_dir = run_dir / "launch"
    job_file = write_job(launch_dir, checkpoint, records, run_dir, settings, resume=resume, max_steps=max_steps,
                         heldout=heldout, init_adapter=init_adapter)
    stop_file, result_file = launch_dir / "stop", launch_dir / "result.json"
    log_path = launch_dir / "log.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a session of its own: Ctrl-C reaches this process only, which turns it into a stop at a step
    proc = subprocess.Popen(launch_command(config_file, job_file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
    relay = OutputRelay(proc.stdout, log_path, progress)
    reader = threading.Thread(target=relay.run, daemon=True)
    reader.start()
    wait_for(proc, stop_file, should_stop)
    reader.join(timeout=10)
    if proc.returncode != 0 or not result_file.is_file():
        raise MipoError(f"training under accelerate launch failed (exit {proc.returncode}): {relay.reason()}; "
                        f"the processes' output is in {log_path}")
    return read_result(result_file, run_dir)
