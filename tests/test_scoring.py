"""The packed scorer (`scoring.ResponseScorer`) gives the scores of one full forward pass per response
(`evaluate.response_logp`), on the bundled model: responses of different lengths packed after one
prompt, an empty one, a one-token one, packs split by the token budget, and prompts started from a
kept prompt's cache."""

from __future__ import annotations

import pytest

from mipo_local.inference.prompt_format import chat_messages
from mipo_local.inference.scoring import response_logp

TOLERANCE = 1e-3     # nats per response: fp32 rounding of a different order of the same sums

CONTEXT = ["My sourdough starter is called Bjørn and I feed him rye flour at eight every evening.",
           "My violin teacher Ingrid Halvorsen lives above the bakery on Strandgaten, and I see her on Mondays."]
RESPONSES = ["Your starter Bjørn gets rye flour at eight in the evening, so feed him before your Monday lesson.",
             "",
             "Yes",
             "Ingrid lives above the bakery.",
             "Here is a longer answer: émoji 🐝, digits 12345, a line break\nand text that names <|im_end|> as text."]


@pytest.fixture(scope="module")
def model_and_tokenizer(smol_checkpoint):
    from mipo_local.inference.scoring import load_torch_model

    return load_torch_model(smol_checkpoint)


def _one_by_one(model, tokenizer, messages, responses):
    return [response_logp(model, tokenizer, messages, r) if r else (0.0, 0) for r in responses]


def _assert_close(got, expected):
    assert [n for _, n in got] == [n for _, n in expected]
    for (a, _), (b, _) in zip(got, expected):
        assert abs(a - b) < TOLERANCE, (got, expected)


def test_responses_packed_after_one_prompt_score_as_if_alone(model_and_tokenizer):
    from mipo_local.inference.scoring import ResponseScorer

    model, tokenizer = model_and_tokenizer
    messages = chat_messages(CONTEXT, "What do I do on Monday evening?")
    got = ResponseScorer(model, tokenizer).score(messages, RESPONSES)
    assert got[1] == (0.0, 0)
    _assert_close(got, _one_by_one(model, tokenizer, messages, RESPONSES))


def test_packs_split_by_the_token_budget_score_alike(model_and_tokenizer):
    from mipo_local.inference.scoring import ResponseScorer

    model, tokenizer = model_and_tokenizer
    messages = chat_messages(CONTEXT, "Who is Ingrid?")
    whole = ResponseScorer(model, tokenizer).score(messages, RESPONSES)
    _assert_close(ResponseScorer(model, tokenizer, batch_tokens=8).score(messages, RESPONSES), whole)
    _assert_close(ResponseScorer(model, tokenizer, batch_size=1).score(messages, RESPONSES), whole)


def test_a_prompt_started_from_a_kept_cache_scores_alike(model_and_tokenizer):
    from mipo_local.inference.scoring import ResponseScorer

    model, tokenizer = model_and_tokenizer
    scorer = ResponseScorer(model, tokenizer)
    first = chat_messages(CONTEXT, "What do I do on Monday evening?")
    second = chat_messages(CONTEXT, "When do I feed Bjørn?")     # the same context: a long shared prefix
    scorer.score(first, RESPONSES)
    _assert_close(scorer.score(second, RESPONSES), _one_by_one(model, tokenizer, second, RESPONSES))
    # the kept prompt's cache came back to the prompt alone: scoring it again gives the same numbers
    _assert_close(scorer.score(first, RESPONSES[::-1])[::-1], _one_by_one(model, tokenizer, first, RESPONSES))


def test_bf16_matmuls_stay_close_to_fp32_and_leave_the_precision_as_it_was(model_and_tokenizer):
    import torch

    from mipo_local.inference.scoring import ResponseScorer, matmul_precision

    model, tokenizer = model_and_tokenizer
    messages = chat_messages(CONTEXT, "What do I do on Monday evening?")
    exact = ResponseScorer(model, tokenizer).score(messages, RESPONSES)
    before = torch.get_float32_matmul_precision()
    with matmul_precision("bf16-matmul"):
        fast = ResponseScorer(model, tokenizer).score(messages, RESPONSES)
    assert torch.get_float32_matmul_precision() == before      # training after scoring keeps full fp32
    assert [n for _, n in fast] == [n for _, n in exact]
    for (a, n), (b, _) in zip(fast, exact):                    # measured: ≤ 0.01 nats per token on the demo
        assert abs(a - b) <= 0.03 * max(1, n), (fast, exact)
