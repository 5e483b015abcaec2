"""The processes training together, as `train_lora` sees them from inside one of them.

`World` is what `train_lora` needs to know inside a process started by `accelerate launch`
(`distributed.py`): how many processes, which one is main, and the few collective steps (main first,
agree on a stop, save once). One process on its own is a world of one, where every step is a no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MipoError
from ..workspace import atomic_path, write_text_atomic


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
