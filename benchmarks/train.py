"""LoRA DPO training speed on CPU: the project's training against trl's DPOTrainer with its default
settings for a PEFT model, on the same 64 pairs of the bundled SmolLM2 (same LoRA: r=16 on all seven
projections; same batch size 4; bf16=False as the CPU requires). pairs/s counts the reference
precompute; peak RSS is each run's own (each runs in a child process).

Run: .venv/bin/python benchmarks/train.py [--device cuda] [--pairs FILE]

--device picks where both train (on CUDA: bf16 where supported, as trl's default does too; peak GPU
memory is reported beside RSS). --pairs reuses (or, when missing, keeps) the 64 pairs, so a machine
without llama.cpp (a GPU box, scripts/gpu_check.sh) can run it on pairs made elsewhere.
"""

from __future__ import annotations

import argparse
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
    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import demo_dir
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.modelio.catalog import resolve_base
    from mipo_local.pairs import PairSettings, export_jsonl, generate_pairs

    import_paths([demo_dir() / "notes", demo_dir() / "mail"])
    with ContextStore() as store:
        # one candidate per side, unfiltered: the pairs only need realistic lengths here
        settings = PairSettings(examples=90, max_new_tokens=80, heldout_fraction=0.0, heldout_pairs=0, candidates=1,
                                min_context_mi=None)
        generate_pairs(store, sampling_gguf(resolve_base(None)), settings)
        export_jsonl(store, out, split="train")
    lines = out.read_text().splitlines()[:N_PAIRS]
    if len(lines) < N_PAIRS:
        raise SystemExit(f"only {len(lines)} pairs were kept; need {N_PAIRS}")
    out.write_text("\n".join(lines) + "\n")


def child(variant: str, pairs: Path, work: Path, device: str) -> None:
    import torch

    from mipo_local.modelio import base_checkpoint
    from mipo_local.modelio.catalog import resolve_base
    from mipo_local.train.data import load_pairs_jsonl
    from mipo_local.train.device import plan_device

    plan = plan_device(device)
    if plan.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    records = load_pairs_jsonl(pairs)
    checkpoint = base_checkpoint(resolve_base(None))
    start = time.perf_counter()
    if variant == "ours":
        from mipo_local.train import TrainSettings, train_lora

        settings = TrainSettings(batch_size=BATCH, lora_rank=RANK, lora_alpha=2 * RANK, max_length=1024, checkpoint_every=1000,
                                 device=plan.device)
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
        from mipo_local.train import TrainSettings

        sft = TrainSettings().sft_weight             # the same loss as ours: DPO, plus RPO's term where it is on
        args = DPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=BATCH, num_train_epochs=1,
                         bf16=plan.dtype_name == "bfloat16", use_cpu=plan.device == "cpu", report_to=[],
                         save_strategy="no", disable_tqdm=True, loss_type=["sigmoid", "sft"] if sft else ["sigmoid"],
                         loss_weights=[1.0, sft] if sft else None)
        lora = LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                          "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM")
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tokenizer,
                             peft_config=lora)
        trainer.train()
        steps = trainer.state.global_step
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_allocated() if plan.device == "cuda" else None
    print(json.dumps({"variant": variant, "seconds": seconds, "steps": steps, "pairs": len(records), "peak_rss": peak,
                      "peak_gpu_memory": gpu_peak, "device": plan.device, "dtype": plan.dtype_name}))


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    ap.add_argument("--pairs", type=Path, help="a pairs JSONL to reuse (made here and kept when missing)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["MIPO_HOME"] = str(tmp / "home")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        pairs = args.pairs or tmp / "pairs.jsonl"
        if not pairs.is_file():
            t = time.perf_counter()
            make_pairs(pairs)
            print(f"(made {N_PAIRS} pairs from the demo corpus in {time.perf_counter() - t:.0f} s)")
        results = {}
        for variant in ("trl-defaults", "ours"):
            proc = subprocess.run([sys.executable, __file__, "--child", variant, str(pairs), str(tmp), args.device],
                                  capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"{variant} failed")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["pairs_per_second"] = r["pairs"] / r["seconds"]
            results[variant] = r
            gpu = f", peak GPU memory {r['peak_gpu_memory'] / 1e9:.2f} GB" if r.get("peak_gpu_memory") else ""
            print(f"{variant:13s} {r['pairs_per_second']:.3f} pairs/s ({r['steps']} steps in {r['seconds']:.1f} s, "
                  f"reference precompute included, {r['device']} {r['dtype']}), peak RSS {r['peak_rss'] / 1e9:.2f} GB{gpu}")
        print(f"ratio: {results['ours']['pairs_per_second'] / results['trl-defaults']['pairs_per_second']:.2f}")


if __name__ == "__main__":
    main()
