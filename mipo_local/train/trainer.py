"""LoRA DPO with trl's DPOTrainer and peft, made fast on CPUs, resumable and observable.

What differs from trl's defaults, and why (measured in BENCHMARKS.md):
- each pair's prompt is computed once for both answers (`shared_prompt.py`: one packed row per pair
  instead of trl's two), in training and in the reference pass: same loss and gradients, tested;
- the output head scores only completion positions. trl does this only where Triton runs (CUDA,
  XPU); on CPU it projects every prompt and padding position onto the whole vocabulary, which is
  most of the cost. Scoring only the `label != -100` positions gives the identical loss.
- reference log-probs are computed once, with the adapter switched off, and cached with the run;
- no gradient checkpointing unless memory requires it;
- batches grouped by length, so little compute goes to padding.

Under `accelerate launch` (several GPUs or machines: `distributed.py`) every process runs this same
function: `batch_size` stays the pairs per optimizer step over all processes, each process takes its
share, and only the main process writes the run's files and reports progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import MipoError
from ..progress import ProgressCallback, counting, report
from ..workspace import atomic_path, write_text_atomic
from .device import DevicePlan, plan_device
from .result import TrainResult
from .settings import LORA_TARGETS, TrainSettings
from .world import World

__all__ = ["TrainResult", "compact_lm_head", "plan_memory", "split_too_long", "train_lora"]


@contextlib.contextmanager
def compact_lm_head():
    """Score only completion positions in trl's fused output head on every device."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True if device.type in ("cpu", "mps") else original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


@contextlib.contextmanager
def reporting_reference_logps(progress: Optional[ProgressCallback]):
    """trl computes the reference log-probs of every pair inside `DPOTrainer(...)`, behind a tqdm bar
    of its own: while it does, each batch is reported as progress instead."""
    from trl.trainer import dpo_trainer

    original = dpo_trainer.tqdm
    on_batch = counting(progress, "train", "computing reference log-probs (once)", "batches")

    def counted(*args, iterable=None, **kwargs):
        items = iterable if iterable is not None else (args[0] if args else ())
        total = len(items) if hasattr(items, "__len__") else 0
        for done, item in enumerate(items, 1):
            yield item
            on_batch(done, total)

    dpo_trainer.tqdm = counted
    try:
        yield
    finally:
        dpo_trainer.tqdm = original


def _last_checkpoint(folder: Path) -> Optional[Path]:
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1])) if done else None


def plan_memory(settings: TrainSettings, plan: DevicePlan, config, n_params: int, longest: int) -> tuple[int, int, bool]:
    """(micro-batch, gradient accumulation, gradient checkpointing) that fit this machine's memory.

    `longest` is the longest pair in tokens, prompt + chosen + rejected: the row the model sees when
    the prompt is shared (`shared_prompt.py`). The effective batch stays `batch_size × grad_accum`. A micro-batch that would not fit is halved
    (more accumulation steps cost little on a CPU, whose throughput hardly depends on batch size);
    gradient checkpointing comes on only when even one pair at a time would not fit.
    """
    batch, accum = settings.batch_size, settings.grad_accum
    if settings.gradient_checkpointing in ("on", "off"):
        return batch, accum, settings.gradient_checkpointing == "on"
    bytes_per = 2 if plan.dtype_name != "float32" else 4
    # kept for backward, per token and layer: ~20 hidden-sized and ~6 MLP-sized activations, and
    # the attention probabilities (heads × length); measured on SmolLM2 with ~700-token pairs
    per_sequence = longest * config.num_hidden_layers * bytes_per * (
        20 * config.hidden_size + 6 * config.intermediate_size + config.num_attention_heads * longest)
    weights = n_params * (bytes_per + 4)
    try:
        if plan.device == "cuda":
            import torch

            free = torch.cuda.mem_get_info()[0]
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return batch, accum, False
    budget = free * 0.6 - weights
    while batch > 1 and batch * per_sequence > budget:
        batch //= 2
        accum *= 2
    return batch, accum, batch * per_sequence > budget


def _dataset(records: Sequence[dict], tokenizer, cache_dir: Path):
    """A file-backed dataset (so trl caches the reference log-probs beside it) with a `length` column."""
    from datasets import Dataset, load_from_disk

    data_dir = cache_dir / "dataset"
    digest_file = cache_dir / "dataset.sha256"
    import hashlib

    digest = hashlib.sha256(json.dumps(list(records), sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    if data_dir.is_dir() and digest_file.is_file() and digest_file.read_text() == digest:
        return load_from_disk(str(data_dir))
    rows = []
    for r in records:
        prompt = tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        n = len(tokenizer(prompt + r["chosen"][0]["content"] + r["rejected"][0]["content"], add_special_tokens=False)["input_ids"])
        rows.append({**r, "length": n})
    import shutil

    shutil.rmtree(data_dir, ignore_errors=True)
    Dataset.from_list(rows).save_to_disk(str(data_dir))
    write_text_atomic(digest_file, digest)
    return load_from_disk(str(data_dir))


def split_too_long(records: Sequence[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """(the pairs whose prompt + longer answer fit `max_length` tokens, how many did not). trl would
    cut the others' completions silently; they are left out and counted instead."""
    kept, too_long = [], 0
    for r in records:
        prompt = tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        longest = max(len(tokenizer(r[side][0]["content"], add_special_tokens=False)["input_ids"])
                      for side in ("chosen", "rejected"))
        if n_prompt + longest + 2 > max_length:     # + the end-of-turn tokens
            too_long += 1
        else:
            kept.append(r)
    return kept, too_long


def _check_inputs(checkpoint: Path, records: Sequence[dict]) -> None:
    if not (checkpoint / "config.json").is_file():
        raise MipoError(f"base checkpoint {checkpoint} does not exist; prepare it with `mipo-local checkpoint`")
    if not records:
        raise MipoError("no training pairs; run `mipo-local pairs` first")


def _resume_state(run_dir: Path, settings: TrainSettings, resume: bool) -> tuple[TrainSettings, Optional[Path]]:
    """(the settings, the checkpoint to continue from): a resumed run keeps the settings it started with."""
    if resume:
        settings_file = run_dir / "train_settings.json"
        if not settings_file.is_file():
            raise MipoError(f"nothing to resume in {run_dir}; start a new run without --resume")
        saved = json.loads(settings_file.read_text())
        settings = TrainSettings(**{k: v for k, v in saved.items() if k in {f.name for f in dataclasses.fields(TrainSettings)}})
    last = _last_checkpoint(run_dir / "checkpoints") if resume else None
    if resume and last is None and (run_dir / "adapter").is_dir():
        raise MipoError(f"the run in {run_dir} already finished; start a new run to train again")
    return settings, last


def _prepare_process(settings: TrainSettings,
                     progress: Optional[ProgressCallback]) -> tuple[World, DevicePlan, Optional[ProgressCallback]]:
    """(the processes training together, this one's device, its progress callback: only the main
    process reports), with torch's threads and seed set."""
    world = World.current()
    world.pin_gpu()                      # before plan_device touches CUDA: every process on its own GPU
    plan = plan_device(settings.device, settings.precision)
    if world.size > 1:
        world.start(cpu=plan.device == "cpu")
        progress = progress if world.is_main else None
    import torch

    if plan.device == "cpu":
        torch.set_num_threads(max(1, plan.threads // world.local_size))   # the cores shared by this machine's processes
    torch.manual_seed(settings.seed)
    return world, plan, progress


def _quiet_libraries() -> None:
    """transformers', datasets' and trl's own logs and progress bars off: our progress events replace them."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TQDM_DISABLE", "1")
    import datasets

    datasets.disable_progress_bars()


def _load_model(checkpoint: Path, plan: DevicePlan):
    """(tokenizer, model) of the base checkpoint; the tokenizer pads with end-of-sequence if it has no pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=plan.dtype)
    return tokenizer, model


def _settings_json(settings: TrainSettings) -> str:
    return json.dumps(dataclasses.asdict(settings), indent=2)


def _training_dataset(records: Sequence[dict], tokenizer, max_length: int, run_dir: Path, world: World,
                      progress: Optional[ProgressCallback]):
    """(the dataset of the pairs that fit `max_length`, how many did not): the main process writes its
    cache first, the others read it."""
    records, too_long = split_too_long(records, tokenizer, max_length)
    if not records:
        raise MipoError(f"every pair is longer than max_length={max_length} tokens; raise it or lower the "
                        "context budget")
    if too_long:
        report(progress, "train", f"left out {too_long} pairs longer than {max_length} tokens (not truncated)")
    with world.main_first():
        return _dataset(records, tokenizer, run_dir / "data"), too_long


def dpo_config(settings: TrainSettings, plan: DevicePlan, ckpt_dir: Path, micro_batch: int, accum: int,
               checkpointing: bool, max_steps: Optional[int]):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accum,
        num_train_epochs=settings.epochs,
        max_steps=max_steps or -1,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_steps,
        beta=settings.beta,
        loss_type=["sigmoid", "sft"] if settings.sft_weight else ["sigmoid"],
        loss_weights=[1.0, settings.sft_weight] if settings.sft_weight else None,
        max_length=settings.max_length,
        truncation_mode="keep_start",
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=4,
        activation_checkpointing=checkpointing,
        bf16=plan.mixed_precision == "bf16",
        fp16=False,
        use_cpu=plan.device == "cpu",
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.checkpoint_every,
        save_total_limit=2,
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,   # several processes (DDP): every LoRA weight has a gradient each step
        disable_tqdm=True,
    )


def lora_config(settings: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM", bias="none")


def _dpo_trainer(model, tokenizer, dataset, args, lora, events, progress: Optional[ProgressCallback]):
    """trl's DPOTrainer, which computes the reference log-probs as it is built (reported as progress),
    with transformers' printing callbacks replaced by `events`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback as HFProgress
    from trl import DPOTrainer

    with warnings.catch_warnings(), reporting_reference_logps(progress):
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora, callbacks=[events])
    trainer.remove_callback(PrinterCallback)   # our events replace its prints
    trainer.remove_callback(HFProgress)
    return trainer


def _heldout_before(model, tokenizer, heldout: Sequence[dict], beta: float, continued: bool,
                    progress: Optional[ProgressCallback]) -> tuple[list, dict]:
    """(the reference's log-probs of the held-out pairs, their metrics before training)."""
    from .heldout import completion_logps, reference_logps, summarize

    # a new adapter starts at zero (LoRA B = 0): the policy is the reference, scored once
    before = counting(progress, "train", "scoring the held-out pairs before training", "pairs")
    reference = reference_logps(model, tokenizer, heldout, before)
    earlier = counting(progress, "train", "scoring the held-out pairs with the earlier adapter", "pairs")
    policy = completion_logps(model, tokenizer, heldout, earlier) if continued else reference
    return reference, summarize(policy, reference, beta)


def _heldout_after(model, tokenizer, heldout: Sequence[dict], beta: float, reference,
                   progress: Optional[ProgressCallback]) -> dict:
    from .heldout import heldout_metrics

    after = counting(progress, "train", "scoring the held-out pairs after training", "pairs")
    return heldout_metrics(model, tokenizer, heldout, beta, reference=reference, on_pair=after)


def _train(trainer, events, last: Optional[Path]):
    """trl's training loop, resumed from `last` if given, timed from now by `events`."""
    events.restart_clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trainer.train(resume_from_checkpoint=str(last) if last else None)


def _save_adapter(trainer, tokenizer, adapter_dir: Path, settings: TrainSettings, world: World) -> Path:
    """The adapter with its tokenizer and settings, written atomically (by the main process only)."""
    if world.size > 1:
        world.save_adapter(trainer, tokenizer, adapter_dir, settings)
    else:
        with atomic_path(adapter_dir, overwrite=True) as tmp:
            trainer.model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            write_text_atomic(tmp / "train_settings.json", _settings_json(settings))
    return adapter_dir


def train_lora(
    checkpoint: Path,
    records: Sequence[dict],
    run_dir: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    resume: bool = False,
    progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    max_steps: Optional[int] = None,
    heldout: Sequence[dict] = (),
    init_adapter: Optional[Path] = None,
) -> TrainResult:
    """Train a LoRA adapter with DPO on `records` (trl conversational pairs) from `checkpoint`.

    Checkpoints every `settings.checkpoint_every` steps in `run_dir/checkpoints`; `resume=True`
    continues from the last one. `should_stop()` (a `stop.StopFlag`: Ctrl-C or the app's Cancel)
    stops at a step boundary and saves a checkpoint. `max_steps` ends the run early (tests). Held-out pairs are scored before and after.
    `init_adapter` (an incremental run) starts from that saved adapter's weights instead of zero; the
    reference stays the base, the adapter switched off (`continued.py`).
    """
    checkpoint, run_dir = Path(checkpoint), Path(run_dir)
    _check_inputs(checkpoint, records)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings, last = _resume_state(run_dir, settings, resume)
    world, plan, progress = _prepare_process(settings, progress)
    _quiet_libraries()
    report(progress, "train", "loading the base model")
    tokenizer, model = _load_model(checkpoint, plan)
    n_params = sum(p.numel() for p in model.parameters())
    if world.is_main:
        write_text_atomic(run_dir / "train_settings.json", _settings_json(settings))
    dataset, too_long = _training_dataset(records, tokenizer, settings.max_length, run_dir, world, progress)
    micro_batch, accum, checkpointing = plan_memory(world.share(settings), plan, model.config, n_params,
                                                    max(dataset["length"]))
    args = dpo_config(settings, plan, run_dir / "checkpoints", micro_batch, accum, checkpointing, max_steps)
    lora = lora_config(settings)
    from .events import TrainingEvents
    from .shared_prompt import shared_prompt_forward

    events = TrainingEvents(world, settings, progress, should_stop)
    metrics: dict = {"device": plan.device, "dtype": plan.dtype_name, "mixed_precision": plan.mixed_precision,
                     "gradient_checkpointing": checkpointing,
                     "micro_batch": micro_batch, "grad_accum": accum, "processes": world.size,
                     "pairs": len(dataset), "pairs_too_long": too_long, "heldout_pairs": len(heldout)}
    with compact_lm_head(), shared_prompt_forward(model):
        report(progress, "train", "computing reference log-probs (once)")
        t = time.perf_counter()
        trainer = _dpo_trainer(model, tokenizer, dataset, args, lora, events, progress)
        if init_adapter is not None:
            from .continued import load_into

            metrics["initial_adapter"] = {"path": str(init_adapter), "digest": load_into(trainer.model, init_adapter)}
        metrics["precompute_seconds"] = round(time.perf_counter() - t, 2)
        heldout_reference = None
        heldout = heldout if world.is_main and not trainer.is_deepspeed_enabled else ()   # ZeRO-3 shards the weights
        if heldout and last is None:
            heldout_reference, metrics["heldout_before"] = _heldout_before(
                trainer.model, tokenizer, heldout, settings.beta, init_adapter is not None, progress)
        output = _train(trainer, events, last)
        seconds = time.perf_counter() - events.start
        steps = trainer.state.global_step
        stopped = events.stopped and steps < trainer.state.max_steps
        adapter_dir = None
        if not stopped:
            adapter_dir = _save_adapter(trainer, tokenizer, run_dir / "adapter", settings, world)
            if heldout:
                metrics["heldout_after"] = _heldout_after(trainer.model, tokenizer, heldout, settings.beta,
                                                          heldout_reference, progress)
        done_steps = steps - (events.first_step.get("step", 0) or 0)
        metrics.update({"train_loss": output.training_loss, "steps": steps,
                        "log_history": trainer.state.log_history})
    pairs_per_second = done_steps * settings.batch_size * settings.grad_accum / seconds if seconds else 0.0
    metrics["pairs_per_second"] = pairs_per_second
    if world.is_main:
        write_text_atomic(run_dir / "train_metrics.json", json.dumps(metrics, indent=2, default=str))
    report(progress, "train", "stopped at a checkpoint; running again continues" if stopped else "done", done=steps,
           total=trainer.state.max_steps, unit="steps", finished=True, data={"stopped": stopped})
    return TrainResult(run_dir, adapter_dir, steps, trainer.state.max_steps, stopped, seconds, pairs_per_second, metrics)
