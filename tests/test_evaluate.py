"""The evaluation's numbers on the bundled model (transformers, real weights)."""

from __future__ import annotations

import pytest

from mipo_local.evaluation.statistics import bootstrap_ci
from mipo_local.inference.scoring import pointwise_mi


@pytest.fixture(scope="module")
def base(smol_checkpoint):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(smol_checkpoint, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(smol_checkpoint))


def test_mi_is_zero_for_identical_prompts(base):
    model, tokenizer = base
    context = ["My sourdough starter is called Bjørn."]
    assert pointwise_mi(model, tokenizer, context, "What is my starter called?", "It is called Bjørn.", without=context) == 0.0


def test_mi_is_positive_when_the_response_copies_a_fact_from_the_context(base):
    model, tokenizer = base
    context = ["My sourdough starter is called Bjørn and I feed him at 20:00 with rye flour."]
    mi = pointwise_mi(model, tokenizer, context, "What is my starter called and when do I feed it?",
                      "Your starter is called Bjørn, and you feed him at 20:00 with rye flour.")
    assert mi > 1.0


def test_bootstrap_ci_brackets_the_mean():
    mean, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert lo < mean < hi and mean == 3.5
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
