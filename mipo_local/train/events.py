"""The trainer callback that turns trl's steps and logs into our progress events and stops.

A module of its own because it subclasses `transformers.TrainerCallback`: `trainer.py` imports it only
once the inputs are known good, so a wrong input is refused without the seconds transformers takes
to import.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from transformers import TrainerCallback

from ..progress import ProgressCallback, report
from .settings import TrainSettings
from .world import World


class TrainingEvents(TrainerCallback):
    """Reports each logged step (loss, rewards, pairs per second, time left) and stops every process
    at the same step once `should_stop()` is true on any of them."""

    def __init__(self, world: World, settings: TrainSettings, progress: Optional[ProgressCallback],
                 should_stop: Optional[Callable[[], bool]]):
        self.world, self.settings, self.progress, self.should_stop = world, settings, progress, should_stop
        self.stop_flag = threading.Event()
        self.start = time.perf_counter()
        self.first_step: dict = {}      # the step (and time) this session started from: a resumed run's rate counts its own steps

    def restart_clock(self) -> None:
        """Time from now: the reference log-probs and the held-out scores before training do not count."""
        self.start = time.perf_counter()
        self.first_step.clear()

    @property
    def stopped(self) -> bool:
        return self.stop_flag.is_set()

    def on_step_end(self, args_, state, control, **kw):
        self.first_step.setdefault("step", state.global_step - 1)
        self.first_step.setdefault("t", self.start)
        asked = self.stop_flag.is_set() or (self.should_stop is not None and self.should_stop())
        if self.world.any(asked):              # every process stops at the same step
            self.stop_flag.set()
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args_, state, control, logs=None, **kw):
        if not logs or "loss" not in logs:
            return
        settings = self.settings
        done = state.global_step - self.first_step.get("step", 0)
        elapsed = time.perf_counter() - self.first_step.get("t", self.start)
        pairs_s = done * settings.batch_size * settings.grad_accum / elapsed if elapsed > 0 else 0.0
        steps_s = done / elapsed if elapsed > 0 else 0.0
        eta = (state.max_steps - state.global_step) / steps_s if steps_s else None
        report(self.progress, "train", f"loss {logs['loss']:.4f}", done=state.global_step, total=state.max_steps,
               unit="steps",
               data={"loss": logs["loss"], "reward_margin": logs.get("rewards/margins"),
                     "reward_accuracy": logs.get("rewards/accuracies"), "pairs_per_second": pairs_s, "eta_seconds": eta,
                     "learning_rate": logs.get("learning_rate")})
