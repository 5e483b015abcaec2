"""Training under `accelerate launch`: two CPU processes (DDP over gloo) learn what one process learns
from the same pairs with the same global batch (2 pairs per process × 2 vs 4 × 1), and a config
that cannot run here is refused in one line."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from mipo_local.errors import MipoError
from mipo_local.train import TrainSettings, train_lora
from mipo_local.train.distributed import CONFIGS, check_config, launch_training

from .helpers import assert_one_line_error, run_cli
from .test_train import RECORDS
from .tiny_models import build_tiny_model

# plain DPO: a per-token mean (RPO's term, `sft_weight`) taken in each process and then averaged weights
# the tokens differently from one process's mean over them all (0.7% apart here), as in any data-parallel run
SETTINGS = TrainSettings(batch_size=4, learning_rate=5e-3, warmup_steps=0, lora_rank=4, lora_alpha=8, max_length=256,
                         gradient_checkpointing="off", device="cpu", checkpoint_every=100, sft_weight=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_config(folder, processes: int):
    """The shipped DDP config with this machine's CPUs as its processes (torch then picks gloo)."""
    import yaml

    config = yaml.safe_load((CONFIGS / "ddp.yaml").read_text())
    config.update(num_processes=processes, main_process_port=_free_port())
    path = folder / "ddp-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _lora(adapter_dir):
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_two_processes_learn_what_one_learns(tmp_path, smol_checkpoint):
    import torch

    tiny = build_tiny_model("llama", tmp_path / "tiny", smol_checkpoint, seed=5)
    one = train_lora(tiny, RECORDS, tmp_path / "one", SETTINGS, max_steps=2)
    events = []
    two = launch_training(_cpu_config(tmp_path, 2), tiny, RECORDS, tmp_path / "two", SETTINGS, max_steps=2,
                          progress=events.append)

    assert (one.metrics["processes"], one.metrics["micro_batch"]) == (1, 4)
    assert (two.metrics["processes"], two.metrics["micro_batch"]) == (2, 2)      # the same 4 pairs per step
    assert two.steps == one.steps == 2 and not two.stopped
    losses = [[e["loss"] for e in r.metrics["log_history"] if "loss" in e] for r in (one, two)]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-6)
    ours, theirs = _lora(one.adapter_dir), _lora(two.adapter_dir)
    assert set(ours) == set(theirs)
    assert max(float(v.abs().max()) for k, v in ours.items() if "lora_B" in k) > 1e-3   # it learned something
    for name, weight in ours.items():
        assert torch.allclose(weight, theirs[name], rtol=1e-4, atol=1e-6), name
    # the main process alone reported progress, relayed here, and wrote the run's files
    assert [e.data["loss"] for e in events if "loss" in e.data] == pytest.approx(losses[1])
    assert (tmp_path / "two" / "train_metrics.json").is_file()
    assert not (tmp_path / "two" / "adapter.gathered").exists()


def test_configs_that_cannot_run_are_refused_in_one_line(tmp_path, mipo_home):
    from accelerate.commands.config.config_args import load_config_from_file

    for name in ("ddp.yaml", "zero3.yaml"):                     # the shipped examples are valid Accelerate configs
        assert load_config_from_file(str(CONFIGS / name)).num_processes >= 2
    with pytest.raises(MipoError, match="does not exist"):
        check_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("num_processes: 2\n")
    with pytest.raises(MipoError, match="no distributed_type"):
        check_config(tmp_path / "bad.yaml")
    if not _has_deepspeed():
        assert_one_line_error(run_cli(["train", "--accelerate-config", str(CONFIGS / "zero3.yaml")], mipo_home),
                              "asks for DeepSpeed, which is not installed")


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    from mipo_local.train.distributed import World

    assert World(2, 0, 2).share(SETTINGS).batch_size == 2
    with pytest.raises(MipoError, match="multiple of 3"):
        World(3, 0, 3).share(dataclasses.replace(SETTINGS, batch_size=4))


def _has_deepspeed() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None


def test_the_shipped_gpu_config_trains_on_the_gpus(tmp_path, smol_checkpoint, train_device):
    """`pytest --device cuda` (scripts/gpu_check.sh): the shipped DDP config, with as many processes as
    this machine has GPUs, trains on them what one process on one GPU trains (bf16: to its rounding)."""
    if train_device != "cuda":
        pytest.skip("runs with --device cuda, on a machine with NVIDIA GPUs")
    import torch
    import yaml

    gpus = torch.cuda.device_count()
    settings = dataclasses.replace(SETTINGS, device="cuda", batch_size=4 * gpus)
    config = yaml.safe_load((CONFIGS / "ddp.yaml").read_text())
    config.update(num_processes=gpus, main_process_port=_free_port())
    (tmp_path / "ddp-gpus.yaml").write_text(yaml.safe_dump(config))
    tiny = build_tiny_model("llama", tmp_path / "tiny", smol_checkpoint, seed=5)
    records = RECORDS * gpus
    one = train_lora(tiny, records, tmp_path / "one", settings, max_steps=2)
    launched = launch_training(tmp_path / "ddp-gpus.yaml", tiny, records, tmp_path / "launched", settings, max_steps=2)

    assert launched.metrics["device"] == "cuda" and launched.metrics["processes"] == gpus
    assert launched.steps == 2 and launched.adapter_dir is not None
    losses = [[e["loss"] for e in r.metrics["log_history"] if "loss" in e] for r in (one, launched)]
    assert losses[0] == pytest.approx(losses[1], rel=2e-2), losses
