"""LoRA DPO training speed on CPU: the project's training against trl's DPOTrainer with its default
settings for a PEFT model, on the same 64 pairs of the bundled SmolLM2 (same LoRA: r=16 on all seven
projections; same batch size 4; bf16=False as the CPU requires). pairs/s counts the reference
precompute; peak RSS is each run's own (each runs in a child process).

Run: .venv/bin/python benchmarks/train.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
N_PAIRS, BATCH, RANK = 64, 4, 16


def make_pairs(out: Path) -> None:
    from mipo_local.catalog import resolve_base
    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import demo_dir
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.pairs import PairSettings, export_jsonl, generate_pairs

    import_paths([demo_dir() / "notes", demo_dir() / "mail"])
    with ContextStore() as store:
        settings = PairSettings(examples=90, max_new_tokens=80, heldout_fraction=0.0)
        generate_pairs(store, sampling_gguf(resolve_base(None)), settings)
        export_jsonl(store, out, split="train")
    lines = out.read_text().splitlines()[:N_PAIRS]
    if len(lines) < N_PAIRS:
        raise SystemExit(f"only {len(lines)} pairs were kept; need {N_PAIRS}")
    out.write_text("\n".join(lines) + "\n")


def child(variant: str, pairs: Path, work: Path) -> None:
    import torch

    from mipo_local.modelio import base_checkpoint
    from mipo_local.catalog import resolve_base
    from mipo_local.train.data import load_pairs_jsonl

    torch.set_num_threads(os.cpu_count() or 1)
    records = load_pairs_jsonl(pairs)
    checkpoint = base_checkpoint(resolve_base(None))
    start = time.perf_counter()
    if variant == "ours":
        from mipo_local.train import TrainSettings, train_lora

        settings = TrainSettings(batch_size=BATCH, lora_rank=RANK, lora_alpha=2 * RANK, max_length=1024, checkpoint_every=1000)
        result = train_lora(checkpoint, records, work / "ours", settings)
        steps = result.steps
    else:
        import warnings

        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import DPOConfig, DPOTrainer

        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        args = DPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=BATCH, num_train_epochs=1,
                         bf16=False, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True)
        lora = LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                          "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM")
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tokenizer,
                             peft_config=lora)
        trainer.train()
        steps = trainer.state.global_step
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": variant, "seconds": seconds, "steps": steps, "pairs": len(records), "peak_rss": peak}))


def main() -> None:
    if len(sys.argv) == 4:
        child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MIPO_HOME"] = str(tmp / "home")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        pairs = tmp / "pairs.jsonl"
        t = time.perf_counter()
        make_pairs(pairs)
        print(f"(made {N_PAIRS} pairs from the demo corpus in {time.perf_counter() - t:.0f} s)")
        results = {}
        for variant in ("trl-defaults", "ours"):
            proc = subprocess.run([sys.executable, __file__, variant, str(pairs), str(tmp)], capture_output=True, text=True,
                                  env={**os.environ, "TQDM_DISABLE": "1"})
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"{variant} failed")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["pairs_per_second"] = r["pairs"] / r["seconds"]
            results[variant] = r
            print(f"{variant:13s} {r['pairs_per_second']:.3f} pairs/s ({r['steps']} steps in {r['seconds']:.0f} s, "
                  f"reference precompute included), peak RSS {r['peak_rss'] / 1e9:.2f} GB")
        print(f"ratio: {results['ours']['pairs_per_second'] / results['trl-defaults']['pairs_per_second']:.2f}")


if __name__ == "__main__":
    main()
