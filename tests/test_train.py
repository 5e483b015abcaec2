"""LoRA DPO on the bundled model: a short real run, resume, merge, and the GGUF LoRA adapter."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mipo_local.errors import MipoError
from mipo_local.inference.prompt_format import chat_messages
from mipo_local.inference.scoring import native_bf16
from mipo_local.train import TrainSettings, train_lora
from mipo_local.train.data import load_pairs_jsonl
from mipo_local.train.heldout import _ids, completion_logps

from .helpers import LOGIT_TOLERANCE, MARGIN, assert_one_line_error, run_cli

FACTS = [
    ("My sourdough starter is called Bjørn and I feed him 1:5:5 at 20:00.", "What is my starter called?",
     "Your starter is Bjørn; feed him 1:5:5 at 20:00.", "Sourdough starters often have fun names."),
    ("The urchin density at Rognaskjær was 38.4 per square metre in April.", "How dense were the urchins?",
     "At Rognaskjær it was 38.4 urchins per square metre in April.", "Urchin density varies a lot between sites."),
    ("Choir rehearsal is on Tuesdays at 19:00 in Nordnes.", "When is choir?",
     "Choir is on Tuesday at 19:00 in Nordnes.", "Most choirs rehearse once a week in the evening."),
    ("My bike is called Grønnsak and it is green.", "What is my bike called?",
     "Your bike is Grønnsak, the green one.", "Many people give their bikes names."),
    ("Pixel the cat eats 55 g of wet food at 07:00 and 19:00.", "How much does Pixel eat?",
     "Pixel eats 55 g of wet food twice a day, at 07:00 and 19:00.", "Cats usually eat two meals a day."),
    ("The Svalbard trip is from 8 to 22 June 2026 in Kongsfjorden.", "When is my Svalbard trip?",
     "From 8 to 22 June 2026, in Kongsfjorden.", "Svalbard trips are best in summer."),
    ("Karin and Elis visit from 11 to 19 July.", "When does Karin visit?",
     "Karin and Elis come from 11 to 19 July.", "Summer is a good time for family visits."),
    ("The boat Måke has a Sabb 8 hp engine.", "What engine does my boat have?",
     "Måke has a Sabb 8 hp engine.", "Small wooden boats often have simple inboard engines."),
]
RECORDS = [{"prompt": chat_messages([c], q), "chosen": [{"role": "assistant", "content": y}],
            "rejected": [{"role": "assistant", "content": n}]} for c, q, y, n in FACTS]
FAST = TrainSettings(batch_size=2, learning_rate=2e-3, warmup_steps=0, checkpoint_every=2, lora_rank=8, lora_alpha=16,
                     max_length=256, gradient_checkpointing="off")


def dpo_loss(policy, reference, beta):
    import math

    losses = [math.log1p(math.exp(-beta * ((pc - rc) - (pr - rr)))) for (pc, pr), (rc, rr) in zip(policy, reference)]
    return sum(losses) / len(losses)


@pytest.fixture(scope="session")
def fast(train_device) -> TrainSettings:
    """FAST on the device the run asked for (`pytest --device cuda`, scripts/gpu_check.sh)."""
    return dataclasses.replace(FAST, device=train_device)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smol_checkpoint, fast):
    run = tmp_path_factory.mktemp("train-run")
    events = []
    result = train_lora(smol_checkpoint, RECORDS, run, fast, max_steps=4, heldout=RECORDS[:2], progress=events.append)
    result.events = events
    return result


def test_no_stretch_before_the_first_step_is_silent(trained):
    """The reference log-probs and the held-out scoring report each batch or pair with its count and
    an ETA (issue 28: 8 silent minutes before the first step of a real run)."""
    events = [e for e in trained.events if e.stage == "train"]
    first_step = next(i for i, e in enumerate(events) if e.unit == "steps")
    before = events[:first_step]
    reference = [e for e in before if e.message.startswith("computing reference log-probs") and e.unit == "batches"]
    heldout = [e for e in before if e.message.startswith("scoring the held-out pairs before training")]
    assert reference and reference[-1].done == reference[-1].total >= 1
    assert [e.done for e in heldout] == [1, 2] and all(e.total == 2 for e in heldout)
    assert all("eta_seconds" in e.data for e in reference + heldout)
    after = [e for e in events[first_step:] if e.message.startswith("scoring the held-out pairs after training")]
    assert [e.done for e in after] == [1, 2]


def test_short_run_changes_lora_and_lowers_the_loss(trained, smol_checkpoint):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert trained.steps == 4 and not trained.stopped and trained.adapter_dir.is_dir()
    weights = load_file(str(trained.adapter_dir / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all("embed" not in k and "lm_head" not in k for k in weights)
    assert max(float(v.abs().max()) for v in lora_b) > 0  # lora_B starts at zero: training moved it
    tokenizer = AutoTokenizer.from_pretrained(smol_checkpoint)
    base = AutoModelForCausalLM.from_pretrained(smol_checkpoint, dtype=torch.float32)
    reference = completion_logps(base, tokenizer, RECORDS)
    model = PeftModel.from_pretrained(base, str(trained.adapter_dir))
    policy = completion_logps(model, tokenizer, RECORDS)
    assert dpo_loss(policy, reference, FAST.beta) < dpo_loss(reference, reference, FAST.beta) - 0.01
    settings = json.loads((trained.adapter_dir / "train_settings.json").read_text())
    assert settings["beta"] == FAST.beta and settings["lora_rank"] == 8


def test_precomputed_reference_equals_base_logps(trained, smol_checkpoint):
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data_dir = trained.run_dir / "data" / "dataset"
    from datasets import Dataset

    cached = [Dataset.from_file(str(p)) for p in data_dir.glob("cache-*.arrow")]
    cached = [d for d in cached if "ref_chosen_logps" in d.column_names]
    assert cached, "the reference log-probs are cached with the run"
    ref = cached[0]
    dataset = load_from_disk(str(data_dir))
    tokenizer = AutoTokenizer.from_pretrained(smol_checkpoint)
    base = AutoModelForCausalLM.from_pretrained(smol_checkpoint, dtype=torch.float32)
    ours = completion_logps(base, tokenizer, [dataset[i] for i in range(len(dataset))])
    # fp32 matches to rounding; a bf16 reference (CUDA) carries ~3 significant digits per token
    exact = trained.metrics["dtype"] == "float32"
    for (c, r), row in zip(ours, ref):
        for mine, theirs in ((c, row["ref_chosen_logps"]), (r, row["ref_rejected_logps"])):
            tolerance = 1e-2 if exact else 0.02 * abs(mine) + 0.1
            assert abs(mine - theirs) < tolerance, (mine, theirs, trained.metrics["dtype"])


def test_sft_weight_adds_the_chosen_answers_likelihood_to_the_loss(tmp_path, smol_checkpoint, fast):
    """RPO's term: the first step (policy = reference, so the DPO part is exactly ln 2) logs
    ln 2 + w × the base's mean negative log-likelihood per token of the chosen answers."""
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weight = 0.5
    settings = dataclasses.replace(fast, sft_weight=weight, batch_size=len(RECORDS))
    result = train_lora(smol_checkpoint, RECORDS, tmp_path / "run", settings, max_steps=1)
    first = next(e for e in result.metrics["log_history"] if "loss" in e)
    tokenizer = AutoTokenizer.from_pretrained(smol_checkpoint)
    base = AutoModelForCausalLM.from_pretrained(smol_checkpoint, dtype=torch.float32)
    chosen_logp = sum(c for c, _ in completion_logps(base, tokenizer, RECORDS))
    tokens = 0
    for r in RECORDS:
        prompt = _ids(tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True))
        tokens += len(_ids(tokenizer.apply_chat_template(r["prompt"] + r["chosen"], tokenize=True))) - len(prompt)
    expected = math.log(2) + weight * (-chosen_logp / tokens)
    exact = result.metrics["dtype"] == "float32"        # bf16 weights (CUDA) carry ~3 significant digits
    assert first["loss"] == pytest.approx(expected, abs=2e-3 if exact else 0.02 * expected), (first, expected)
    assert json.loads((result.adapter_dir / "train_settings.json").read_text())["sft_weight"] == weight


@pytest.mark.skipif(not native_bf16(), reason="bfloat16 compute needs a CPU with it in hardware")
def test_bf16_precision_trains_in_bfloat16_from_a_reference_computed_alike(tmp_path, smol_checkpoint, fast):
    """--precision bf16 on a CPU: fp32 weights, bfloat16 autocast; the reference log-probs are computed
    under the same autocast, so the first step sees policy = reference: margins ~0, loss ~ln 2 (within
    bfloat16's rounding, which differs between the reference's batches and the training's: 0.003 here)."""
    import math

    from mipo_local.train.device import plan_device

    if plan_device(fast.device).device != "cpu":
        pytest.skip("--precision bf16 on a CPU; on a GPU bf16 is the default (the other tests)")
    settings = dataclasses.replace(fast, precision="bf16", batch_size=len(RECORDS), sft_weight=0.0)   # DPO's ln 2 alone
    result = train_lora(smol_checkpoint, RECORDS, tmp_path / "run", settings, max_steps=2)
    assert (result.metrics["dtype"], result.metrics["mixed_precision"]) == ("float32", "bf16")
    first = next(e for e in result.metrics["log_history"] if "loss" in e)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-2), first
    assert abs(first["rewards/margins"]) < 0.05, first
    assert result.steps == 2 and result.adapter_dir is not None


def test_stop_and_resume_ends_with_the_same_steps(tmp_path, smol_checkpoint, fast):
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return calls["n"] >= 2

    first = train_lora(smol_checkpoint, RECORDS, tmp_path / "run", fast, max_steps=4, should_stop=stop_after_two)
    assert first.stopped and first.steps == 2 and first.adapter_dir is None
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    second = train_lora(smol_checkpoint, RECORDS, tmp_path / "run", fast, max_steps=4, resume=True)
    assert not second.stopped and second.steps == 4
    logged = [e["step"] for e in second.metrics["log_history"] if "loss" in e]
    assert logged == [1, 2, 3, 4]


def test_merge_equals_peft_and_lora_gguf_equals_merged_gguf(trained, smol_checkpoint, smol_f16, bundled_gguf, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from mipo_local.inference.llama_runtime import llama_model
    from mipo_local.modelio import checkpoint_to_gguf
    from mipo_local.train.merge import lora_to_gguf, merge_adapter

    merged_dir = merge_adapter(smol_checkpoint, trained.adapter_dir, tmp_path / "merged")
    ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 30, 2, 198, 1, 4093, 198]])
    base = AutoModelForCausalLM.from_pretrained(smol_checkpoint, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(trained.adapter_dir)).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        diff = (peft_model(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4

    merged_gguf = checkpoint_to_gguf(merged_dir, tmp_path / "merged.f16.gguf", base_gguf=bundled_gguf)
    lora = lora_to_gguf(trained.adapter_dir, smol_f16, tmp_path / "adapter.gguf")
    assert lora.stat().st_size < 10 * 1024 * 1024
    # Two computations that round differently (the LoRA merged into F16 weights, or applied at run time
    # beside them) are compared by their logits with stated tolerances, never as identical greedy text:
    # greedy text parts at the first near-tie, which falls elsewhere on every CPU's kernels.
    prompts = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for _, q, _, _ in FACTS[:4]]
    worst = adapter_effect = 0.0
    for p in prompts:
        with llama_model(merged_gguf, n_ctx=256, logits_all=True) as m:
            tokens = m.tokenize(p.encode(), add_bos=False, special=True)
            tokens += m.tokenize(m.create_completion(p, max_tokens=16, temperature=0.0)["choices"][0]["text"].encode(),
                                 add_bos=False, special=False)
            merged_logits = _logits(m, tokens)
        with llama_model(smol_f16, n_ctx=256, lora_path=str(lora), logits_all=True) as b:
            lora_logits = _logits(b, tokens)
        with llama_model(smol_f16, n_ctx=256, logits_all=True) as plain:
            plain_logits = _logits(plain, tokens)
        worst = max(worst, float(abs(merged_logits - lora_logits).max()))
        adapter_effect = max(adapter_effect, float(abs(merged_logits - plain_logits).max()))
        top2 = merged_logits.argsort(axis=1)[:, -2:]
        rows = range(len(tokens))
        margin = merged_logits[rows, top2[:, 1]] - merged_logits[rows, top2[:, 0]]
        clear = margin > MARGIN
        assert (merged_logits.argmax(1)[clear] == lora_logits.argmax(1)[clear]).all(), p
    print(f"merged vs base+LoRA at run time: max |Δlogit| {worst:.4f}; the adapter moves logits by {adapter_effect:.3f}")
    assert worst <= LOGIT_TOLERANCE, worst
    # and the test would notice a LoRA that is ignored: the adapter moves logits far more than rounding does
    assert adapter_effect > 4 * worst, (adapter_effect, worst)


# F16 weights merged vs F16 weights + the LoRA at run time: logits within helpers.LOGIT_TOLERANCE
# (measured 0.076 on an AVX-512 build, against 13.7 that the adapter moves them), and the same top
# token wherever the top two differ by more than helpers.MARGIN


def _logits(llm, tokens):
    """The model's logits at every position of `tokens` (a fresh evaluation)."""
    import numpy as np

    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[:len(tokens)], dtype=np.float64)


def test_bad_pairs_file_and_missing_base(tmp_path, smol_checkpoint):
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}]}\n')
    with pytest.raises(MipoError, match="missing field"):
        load_pairs_jsonl(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(MipoError, match="no pairs"):
        load_pairs_jsonl(empty)
    with pytest.raises(MipoError, match="does not exist"):
        train_lora(tmp_path / "no-base", RECORDS, tmp_path / "run")


def test_bad_input_is_refused_before_torch_is_imported(tmp_path):
    """A wrong pairs file or base is reported at once, without the seconds torch takes to import."""
    code = (
        "import sys\n"
        "from mipo_local.errors import MipoError\n"
        "from mipo_local.train import train_lora\n"
        "from mipo_local.train.data import load_pairs_jsonl\n"
        f"open({str(tmp_path / 'bad.jsonl')!r}, 'w').write('not json\\n')\n"
        "for call in (lambda: load_pairs_jsonl(sys.argv[1]), lambda: train_lora(sys.argv[2], [{}], sys.argv[3])):\n"
        "    try:\n"
        "        call()\n"
        "    except MipoError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bad.jsonl"), str(tmp_path / "no-base"),
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_train_cli_refuses_without_pairs(tmp_path, mipo_home):
    assert_one_line_error(run_cli(["train"], mipo_home), "no pairs yet")


def test_train_command_trains_on_the_pairs_made_before_and_activates(mipo_home, sampling_model, smol_checkpoint):
    """`train` is a run on the latest pairs that ends once its model is exported and active;
    `train --resume` with nothing stopped says so."""
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources

    me = [a for address in DEMO_ADDRESSES for a in ("--me", address)]
    assert run_cli(["import", *map(str, demo_sources()), *me], mipo_home).returncode == 0
    made = run_cli(["pairs", "--examples", "8", "--heldout-pairs", "0", "--candidates", "1", "--max-new-tokens", "24",
                    "--context-tokens", "128"],
                   mipo_home)
    assert made.returncode == 0, made.stderr[-2000:]
    trained = run_cli(["train", "--max-steps", "2", "--batch-size", "2", "--quant", "Q8_0", "--rank", "4"], mipo_home)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "personal model: " in trained.stdout and "LoRA for llama.cpp" in trained.stdout
    from mipo_local.chat.active_model import active_model
    from mipo_local.pipeline import list_runs, load_state

    (run,) = list_runs()
    state = load_state(run)
    assert state["finished"] and state["until"] == "activate" and "evaluate" not in state["stages"]
    assert state["stages"]["pairs"]["adopted"] and state["settings"]["train"]["lora_alpha"] == 8
    assert active_model() == Path(state["outputs"]["model"]).resolve()
    assert_one_line_error(run_cli(["train", "--resume"], mipo_home), "no stopped run")
