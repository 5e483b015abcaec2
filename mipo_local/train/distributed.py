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
main, and the few collective steps (main first, agree on a stop, save once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import MipoError
from ..progress import ProgressCallback, ProgressEvent
from ..workspace import atomic_path, write_text_atomic

EVENT_PREFIX = "mipo-local-event "     # a progress event on the main training process's stdout
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")
CONFIGS = Path(__file__).with_name("accelerate")   # example Accelerate configs (README: "Several GPUs or machines")


@dataclass(frozen=True)
class World:
    """The processes training together (torchrun's / accelerate's environment variables)."""

    size: int = 1
    rank: int = 0
    local_size: int = 1

    @classmethod
    def current(cls) -> "World":
        env = os.environ
        size = int(env.get("WORLD_SIZE", "1"))
        return cls(size, int(env.get("RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", str(size))))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def pin_gpu(self) -> None:
        """Several processes on GPUs: this one uses its own (LOCAL_RANK) from the start, so that no CUDA
        context of every process lands on GPU 0."""
        if self.size == 1:
            return
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, *, cpu: bool) -> None:
        """Join the process group now (gloo on CPUs, NCCL on GPUs), each process on its own GPU."""
        from accelerate import PartialState

        PartialState(cpu=cpu)

    def share(self, settings):
        """`settings` with this process's share of each step's pairs: `batch_size` stays the pairs per
        optimizer step over all processes, so one process or several learn the same thing."""
        if self.size == 1:
            return settings
        if settings.batch_size % self.size:
            raise MipoError(f"a batch of {settings.batch_size} pairs does not split evenly over {self.size} processes; "
                            f"choose a batch size that is a multiple of {self.size}")
        return dataclasses.replace(settings, batch_size=settings.batch_size // self.size)

    @contextlib.contextmanager
    def main_first(self):
        """The main process does the body first (it writes a cache), then the others (they read it)."""
        if self.size == 1:
            yield
            return
        from accelerate import PartialState

        with PartialState().main_process_first():
            yield

    def any(self, flag: bool) -> bool:
        """True on every process if it is true on any (one collective call: every process must make it)."""
        if self.size == 1:
            return bool(flag)
        import torch
        import torch.distributed as dist
        from accelerate import PartialState

        value = torch.tensor([1 if flag else 0], device=PartialState().device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def save_adapter(self, trainer, tokenizer, adapter_dir: Path, settings) -> None:
        """The adapter written once, by the main process. Under DeepSpeed ZeRO-3 each process holds a
        shard of the weights, so all of them take part in gathering it (`Trainer.save_model`)."""
        from accelerate import PartialState

        state = PartialState()
        partial = adapter_dir.with_name(adapter_dir.name + ".gathered")
        if trainer.is_deepspeed_enabled:
            trainer.save_model(str(partial))          # collective; the main process writes
        state.wait_for_everyone()
        if self.is_main:
            with atomic_path(adapter_dir, overwrite=True) as tmp:
                if trainer.is_deepspeed_enabled:
                    os.replace(partial, tmp)
                else:
                    trainer.model.save_pretrained(str(tmp))
                tokenizer.save_pretrained(str(tmp))
                write_text_atomic(tmp / "train_settings.json", json.dumps(dataclasses.asdict(settings), indent=2))
        state.wait_for_everyone()


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
):
    """`train_lora` with the same arguments, run under `accelerate launch` with `config_file`; waits
    for it and returns its `TrainResult`. The training processes' output goes to `run_dir/launch/log.txt`."""
    from .settings import TrainSettings
    from .trainer import TrainResult

    settings = settings or TrainSettings()
    check_config(config_file)
    run_dir = Path(run_dir)
    launch_dir = run_dir / "launch"
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
    job_file = write_text_atomic(launch_dir / "job.json", json.dumps(job, indent=2))
    log_path = launch_dir / "log.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a session of its own: Ctrl-C reaches this process only, which turns it into a stop at a step
    proc = subprocess.Popen(launch_command(config_file, job_file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
    errors: list[str] = []                 # the processes' own one-line errors (train_lora's MipoErrors)
    crashes: list[str] = []                # the last line of a process's traceback

    def relay() -> None:
        with open(log_path, "w", encoding="utf-8") as log:
            os.chmod(log_path, 0o600)
            for line in proc.stdout:
                if line.startswith(EVENT_PREFIX):
                    if progress is not None:
                        progress(ProgressEvent(**json.loads(line[len(EVENT_PREFIX):])))
                    continue
                log.write(line)
                log.flush()
                if line.startswith("mipo-local: error: "):
                    errors.append(line.strip()[len("mipo-local: error: "):])
                elif EXCEPTION.match(line) and "ChildFailedError" not in line:   # a process's traceback, not the launcher's
                    crashes.append(line.strip())

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if should_stop is not None and should_stop() and not stop_file.exists():
                stop_file.touch(mode=0o600)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:              # this process is leaving (an exception): take the launch with it
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    reader.join(timeout=10)
    if proc.returncode != 0 or not result_file.is_file():
        reason = errors[0] if errors else crashes[0] if crashes else "see its output"
        raise MipoError(f"training under accelerate launch failed (exit {proc.returncode}): {reason}; "
                        f"the processes' output is in {log_path}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    return TrainResult(run_dir=run_dir, adapter_dir=Path(result["adapter_dir"]) if result["adapter_dir"] else None,
                       steps=result["steps"], total_steps=result["total_steps"], stopped=result["stopped"],
                       seconds=result["seconds"], pairs_per_second=result["pairs_per_second"], metrics=result["metrics"])
