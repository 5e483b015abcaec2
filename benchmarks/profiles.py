"""Profile switch time in chat: a LoRA adapter switched on the loaded base, against loading the other
profile's merged model.

Two profiles over the demo corpus ("notes" = Ada's notes, "mail" = her mail), each with a LoRA
adapter of the shape `run` trains (rank 16, alpha 32, all seven projections; random weights: the
timing does not depend on what they learned), exported as `run` exports them: the adapter alone as
GGUF LoRA (`lora_to_gguf`) and merged + quantized as the personal model (`export_model`, Q8_0, what
`run` picks for this model).

Adapter switch: one `ChatSession` on the bundled base GGUF with the "notes" adapter; every switch is
`session.use_profile(other)` (the base stays loaded; the first use of an adapter reads its file).
Merged switch: the session's model closed and a `ChatSession` opened on the other profile's merged
GGUF (the same conversation). After each switch the same question is asked: the time to its first
token (TTFT) is counted too, since after either switch the prompt is decoded from its start.
Greedy, 32 new tokens at most, alternating profiles, REPS switches each way.

Run: .venv/bin/python benchmarks/profiles.py     last line: ratio (merged switch+TTFT over adapter switch+TTFT)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTION = "What is on my packing list for the Svalbard trip?"
REPS = 4
OPTIONS = dict(temperature=0.0, max_tokens=32, save=False)


def random_adapter(checkpoint: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mipo_local.train.settings import LORA_TARGETS

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS),
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.01)
    peft_model.save_pretrained(out)
    return out


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="mipo-bench-profiles-"))
    os.environ["MIPO_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import json

    from mipo_local.chat.active_model import activate
    from mipo_local.chat.profiles import create_profile, profile_model
    from mipo_local.chat.session import ChatSession
    from mipo_local.context import import_paths
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources
    from mipo_local.modelio import base_checkpoint, base_gguf, export_model
    from mipo_local.modelio.catalog import resolve_base
    from mipo_local.settings import UserSettings
    from mipo_local.train.merge import lora_to_gguf, merge_adapter

    notes, mail = demo_sources()
    import_paths([notes, mail], settings=UserSettings().with_addresses(DEMO_ADDRESSES))
    base = resolve_base(None)
    gguf, checkpoint = base_gguf(base), base_checkpoint(base)
    t0 = time.perf_counter()
    for i, (name, source) in enumerate((("notes", notes), ("mail", mail))):
        run_dir = home / "runs" / f"run-{name}"
        run_dir.mkdir(parents=True)
        peft_dir = random_adapter(checkpoint, run_dir / "adapter", seed=i)
        lora_to_gguf(peft_dir, gguf, run_dir / "adapter.gguf")
        merged = merge_adapter(checkpoint, peft_dir, run_dir / "merged")
        model = export_model(base, merged, run_dir / "personal.Q8_0.gguf", quant="Q8_0", verify=False).path
        (run_dir / "state.json").write_text(json.dumps({"base": str(base.path), "finished": True}))
        create_profile(name, [str(source)])
        activate(model, smoke=False, profile=name)
    print(f"setup (2 adapters, 2 merged Q8_0 exports): {time.perf_counter() - t0:.0f} s")
    targets = {n: profile_model(n) for n in ("notes", "mail")}
    sizes = {n: (t.adapter.stat().st_size, t.model.stat().st_size) for n, t in targets.items()}
    print(f"per profile on disk: adapter.gguf {sizes['notes'][0] / 1e6:.1f} MB, merged personal.Q8_0.gguf "
          f"{sizes['notes'][1] / 1e6:.1f} MB; base {gguf.stat().st_size / 1e6:.1f} MB")

    def ttft(session) -> float:
        start = time.perf_counter()
        for _ in session.send(QUESTION):
            return time.perf_counter() - start
        return time.perf_counter() - start

    order = ["mail", "notes"] * REPS
    # adapter switching on one loaded base
    adapter_switch, adapter_ttft, first_use = [], [], []
    t = time.perf_counter()
    session = ChatSession(targets["notes"], **OPTIONS)
    print(f"open the base with the first adapter: {(time.perf_counter() - t) * 1000:.0f} ms")
    session.ask(QUESTION)
    for i, name in enumerate(order):
        seconds = session.use_profile(targets[name])
        (first_use if i == 0 else adapter_switch).append(seconds)
        adapter_ttft.append(ttft(session))
        for _ in session.send("And what else?"):
            pass
    session.close()
    # loading the other merged model
    merged_switch, merged_ttft = [], []
    session = ChatSession(targets["notes"].model, **OPTIONS)
    session.ask(QUESTION)
    for name in order:
        start = time.perf_counter()
        conversation = session.conversation
        session.close()
        session = ChatSession(targets[name].model, conversation=conversation, **OPTIONS)
        merged_switch.append(time.perf_counter() - start)
        merged_ttft.append(ttft(session))
        for _ in session.send("And what else?"):
            pass
    session.close()
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"adapter switch: first use of an adapter {first_use[0] * 1000:.1f} ms (reads the file), then median "
          f"{ms(adapter_switch):.2f} ms (min {min(adapter_switch) * 1000:.2f}, max {max(adapter_switch) * 1000:.2f}); "
          f"TTFT after it {ms(adapter_ttft):.0f} ms")
    print(f"merged switch: close + open the other merged GGUF median {ms(merged_switch):.0f} ms "
          f"(min {min(merged_switch) * 1000:.0f}, max {max(merged_switch) * 1000:.0f}); TTFT after it {ms(merged_ttft):.0f} ms")
    a = statistics.median([s + f for s, f in zip(adapter_switch, adapter_ttft[1:])])
    m = statistics.median([s + f for s, f in zip(merged_switch, merged_ttft)])
    print(f"switch + first token: adapter {a * 1000:.0f} ms, merged {m * 1000:.0f} ms")
    print(f"ratio: {m / a:.2f}")


if __name__ == "__main__":
    main()
