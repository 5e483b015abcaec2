"""Our training speed-ups change nothing of what is learned: on the same batch, trl's DPOTrainer with
its defaults and the same trainer under our changes (the shared prompt computed once, the output
head on completion positions only) give the same loss, the same reference log-probs and the same
LoRA gradients, within fp32 tolerance. A tiny random Llama keeps it fast; the LoRA is moved off
zero first so the policy differs from the reference."""

from __future__ import annotations

import pytest

from mipo_local.inference.prompt_format import chat_messages
from mipo_local.train.shared_prompt import pack_pairs, shared_prompt_forward
from mipo_local.train.trainer import compact_lm_head

from .tiny_models import build_tiny_model

CONTEXT = ("Pixel the cat eats 55 g of wet food at 07:00 and 19:00. The boat Måke has a Sabb 8 hp engine. "
           "Choir rehearsal is on Tuesdays at 19:00 in Nordnes, and the Svalbard trip is in June.")
PAIRS = [  # prompts of different lengths; answers of different lengths, one pair sharing its first words
    (CONTEXT, "How much does Pixel eat?", "Pixel eats 55 g twice a day.", "Cats eat about twice a day, usually."),
    (CONTEXT[:90], "What engine does my boat have?", "Måke has a Sabb 8 hp engine.", "Måke has an engine."),
    (None, "When is choir?", "On Tuesdays.", "Most choirs rehearse once a week in the evening, often on weekdays."),
    (CONTEXT, "Where is my trip?", "Svalbard, in June.", "Somewhere cold."),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, smol_checkpoint):
    """A tiny Llama with transformers' own initialisation (well-conditioned, as trained models are: the
    fp16-exact test models elsewhere have logits in the hundreds, where float rounding alone moves a
    log-prob by tenths)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"), smol_checkpoint, seed=3)
    torch.manual_seed(3)
    config = AutoConfig.from_pretrained(folder)
    config.initializer_range = 0.1
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    return folder


def _trainer(folder, tmp_path, attention: str):
    import warnings

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attention)
    records = [{"prompt": chat_messages([c] if c else None, q), "chosen": [{"role": "assistant", "content": y}],
                "rejected": [{"role": "assistant", "content": n}]} for c, q, y, n in PAIRS]
    args = DPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=len(records), report_to=[],
                     use_cpu=True, beta=0.1, max_length=512, disable_tqdm=True, remove_unused_columns=False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                      "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                             processing_class=tokenizer, peft_config=lora)
    with torch.no_grad():                     # a LoRA that has learned something: policy ≠ reference
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn_like(p))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(records))])
    return trainer, model, batch


def _loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_loss_gradients_and_reference_equal_trl_defaults(tiny, tmp_path, attention):
    import torch

    trainer, model, batch = _trainer(tiny, tmp_path, attention)
    assert pack_pairs(batch["input_ids"], batch["attention_mask"]) is not None   # the fast path is taken
    trl_loss, trl_grads = _loss_and_grads(trainer, batch)
    trl_ref = trainer.compute_ref_log_probs(trainer.model, batch)
    with compact_lm_head(), shared_prompt_forward(model):
        our_loss, our_grads = _loss_and_grads(trainer, batch)
        our_ref = trainer.compute_ref_log_probs(trainer.model, batch)
    assert trl_grads and set(our_grads) == set(trl_grads)
    assert torch.allclose(our_loss, trl_loss, rtol=1e-5, atol=1e-6), (our_loss, trl_loss)
    for a, b in zip(our_ref, trl_ref):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-4), (a, b)
    for name, g in trl_grads.items():
        assert g.norm() > 1e-4, name                       # a real gradient, not a trivially equal zero
        assert (our_grads[name] - g).norm() <= 1e-4 * g.norm(), name
    # and the patch is gone afterwards: the model's own forward again
    assert "forward" not in model.base_model.__dict__


def test_other_batches_fall_back_to_the_models_own_forward():
    import torch

    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 5, 0], [1, 2, 3, 0]])
    assert pack_pairs(ids, torch.ones_like(ids)) is None                        # an odd batch
    left_padded = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    assert pack_pairs(ids[:2], left_padded) is None                             # not right-padded
    packed, position, mask, index = pack_pairs(torch.tensor([[1, 2, 3, 4], [1, 2, 5, 0]]),
                                               torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert packed.tolist() == [[1, 2, 3, 4, 5]]           # prefix [1, 2], chosen's rest [3, 4], rejected's [5]
    assert position.tolist() == [[0, 1, 2, 3, 2]]
    assert mask[0, 0, 4].tolist() == [True, True, False, False, True]     # the rejected token skips the chosen
    assert index.tolist() == [[0, 1, 2, 3], [0, 1, 4, 0]]
