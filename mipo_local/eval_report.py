"""Did personalization work? The personal model against its base, on the user's held-out examples.

- MI: responses sampled (llama.cpp) from the personal and the base GGUF with the user's context,
  each scored under the base π₀ as log π₀(y|c,q) − log π₀(y|q) — the quantity MIPO maximizes;
- reply log-likelihood: for held-out email threads, log π(real reply | c, q) per token under each model;
- a guard on general ability: perplexity of a neutral text shipped with the project, under each model.
Means come with bootstrap 95% CIs; gains are paired (same example, both models).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from .evaluate import bootstrap_ci, continuation_logp, pointwise_mi_and_length, response_logp
from .progress import ProgressCallback, report
from .workspace import write_text_atomic
from .prompt_format import ChatTemplate, chat_messages

NEUTRAL_TEXT = Path(__file__).resolve().parent / "data" / "neutral.txt"


@dataclass(frozen=True)
class EvalSettings:
    examples: int = 24             # held-out examples at most
    max_new_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 1234
    samples_shown: int = 2         # before/after answers in the summary


def _ci(values: Sequence[float]) -> dict:
    mean, lo, hi = bootstrap_ci(values)
    return {"mean": mean, "ci95": [lo, hi], "n": len(values)}


def _load_torch_model(folder: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)


def perplexity(model, tokenizer, text: str, window: int = 512) -> float:
    """exp(mean negative log-likelihood per token) of `text`, in windows of `window` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        piece = ids[start:start + window + 1]
        if len(piece) < 2:
            break
        total += continuation_logp(model, piece[:1], piece[1:])
        count += len(piece) - 1
    return math.exp(-total / max(1, count))


def heldout_examples(store, pairs_settings, limit: int) -> list[dict]:
    """Held-out examples of the user's data: request, context, and their real reply if any.

    All examples the store supports are split with the same stable rule as the pairs stage (an
    example's id decides), so none of these was trained on; they need no pairs, so the evaluation
    is not limited to the held-out share of the examples that got pairs."""
    from .pairs.examples import build_examples

    examples = build_examples(store, max_examples=10 ** 9, heldout_fraction=pairs_settings.heldout_fraction,
                              context_tokens=pairs_settings.context_tokens)
    return [{"id": e.id, "source": e.source, "request": e.request, "context": list(e.context), "reference": e.reference}
            for e in examples if e.heldout][:limit]


def _sample(gguf: Path, prompts: list[str], settings: EvalSettings) -> list[str]:
    from .generation import BatchedGenerator, Sampling, context_per_sequence

    n_ctx = context_per_sequence(gguf, prompts, settings.max_new_tokens)
    sampling = Sampling(temperature=settings.temperature, top_p=settings.top_p, max_new_tokens=settings.max_new_tokens)
    seeds = [settings.seed + i for i in range(len(prompts))]
    with BatchedGenerator(gguf, n_parallel=min(8, len(prompts)), n_ctx_per_seq=n_ctx) as gen:
        return [c.text.strip() for c in gen.generate(prompts, sampling, seeds=seeds)]


def evaluate_models(personal_gguf: Path, personal_checkpoint: Path, base_gguf: Path, base_checkpoint: Path,
                    examples: Sequence[dict], settings: EvalSettings = EvalSettings(), *,
                    progress: Optional[ProgressCallback] = None) -> dict:
    """The report as a dict (see the module's docstring)."""
    start = time.perf_counter()
    template = ChatTemplate.from_gguf(base_gguf)
    prompts = [template.render(chat_messages(e["context"], e["request"])) for e in examples]
    personal_answers, base_answers = [], []
    if examples:   # a tiny run may hold out none: then only the perplexity guard is measured
        report(progress, "evaluate", "sampling answers from the personal model", done=0, total=4, unit="parts")
        personal_answers = _sample(personal_gguf, prompts, settings)
        report(progress, "evaluate", "sampling answers from the base model", done=1, total=4, unit="parts")
        base_answers = _sample(base_gguf, prompts, settings)
    neutral = NEUTRAL_TEXT.read_text(encoding="utf-8")

    report(progress, "evaluate", "scoring under the base model", done=2, total=4, unit="parts")
    model, tok = _load_torch_model(base_checkpoint)

    def mi(base_model, tokenizer, answers: list[str]) -> tuple[list[float], list[float], list[float]]:
        """Each answer's MI in nats under the base, its MI per token, and its length in tokens."""
        scored = [pointwise_mi_and_length(base_model, tokenizer, e["context"], e["request"], y)
                  for e, y in zip(examples, answers)]
        return [v for v, _ in scored], [v / max(1, n) for v, n in scored], [float(n) for _, n in scored]

    mi_personal, mi_personal_tok, len_personal = mi(model, tok, personal_answers)
    mi_base, mi_base_tok, len_base = mi(model, tok, base_answers)
    replies = [e for e in examples if e.get("reference")]

    def reply_ll(m, t) -> list[float]:
        out = []
        for e in replies:
            logp, n = response_logp(m, t, chat_messages(e["context"], e["request"]), e["reference"])
            out.append(logp / max(1, n))
        return out

    reply_base = reply_ll(model, tok)
    ppl_base = perplexity(model, tok, neutral)
    del model
    report(progress, "evaluate", "scoring under the personal model", done=3, total=4, unit="parts")
    model, tok = _load_torch_model(personal_checkpoint)
    reply_personal = reply_ll(model, tok)
    ppl_personal = perplexity(model, tok, neutral)
    del model

    samples = [{"request": e["request"], "base": b, "personal": p}
               for e, b, p in list(zip(examples, base_answers, personal_answers))[: settings.samples_shown]]
    result = {
        "examples": len(examples),
        "example_ids": [e["id"] for e in examples],
        "settings": asdict(settings),
        "mi": {"personal": _ci(mi_personal), "base": _ci(mi_base),
               "gain": _ci([p - b for p, b in zip(mi_personal, mi_base)])},
        "mi_per_token": {"personal": _ci(mi_personal_tok), "base": _ci(mi_base_tok),
                         "gain": _ci([p - b for p, b in zip(mi_personal_tok, mi_base_tok)])},
        "answer_tokens": {"personal": _ci(len_personal), "base": _ci(len_base)},
        "reply_loglik_per_token": {"personal": _ci(reply_personal), "base": _ci(reply_base),
                                   "gain": _ci([p - b for p, b in zip(reply_personal, reply_base)])},
        "neutral_perplexity": {"base": ppl_base, "personal": ppl_personal,
                               "change": ppl_personal / ppl_base - 1 if ppl_base else None},
        "samples": samples,
        "seconds": time.perf_counter() - start,
    }
    report(progress, "evaluate", "done", done=4, total=4, unit="parts", finished=True)
    return result


def _fmt(stat: dict, digits: int = 2) -> str:
    if not stat["n"]:
        return "n/a (no examples)"
    lo, hi = stat["ci95"]
    return f"{stat['mean']:+.{digits}f} (95% CI {lo:+.{digits}f} to {hi:+.{digits}f}, n={stat['n']})"


def summary_markdown(result: dict, title: str = "Personalization report") -> str:
    mi, rl, ppl = result["mi"], result["reply_loglik_per_token"], result["neutral_perplexity"]
    lines = [
        f"# {title}", "",
        f"On {result['examples']} held-out examples of your own data (never trained on)."
        + (" That is too few to tell: personalize with more examples." if result["examples"] < 5 else ""), "",
        "**Does the model use your context?** Pointwise mutual information between your context and the "
        "answer, log π₀(y|c,q) − log π₀(y|q) in nats under the base model (higher: the answer depends more on "
        "your writing):", "",
        f"- personal model: {_fmt(mi['personal'])}",
        f"- base model: {_fmt(mi['base'])}",
        f"- gain: {_fmt(mi['gain'])}",
        f"- per answer token: personal {_fmt(result['mi_per_token']['personal'], 3)}, base "
        f"{_fmt(result['mi_per_token']['base'], 3)}, gain {_fmt(result['mi_per_token']['gain'], 3)}", "",
        "**Does it sound like you?** Log-likelihood per token of your real replies to held-out emails:", "",
        f"- personal model: {_fmt(rl['personal'], 3)}",
        f"- base model: {_fmt(rl['base'], 3)}",
        f"- gain: {_fmt(rl['gain'], 3)}", "",
        "**General ability** (perplexity of a neutral text, lower is better): "
        f"base {ppl['base']:.2f}, personal {ppl['personal']:.2f}"
        + (f" ({ppl['change']:+.1%})" if ppl.get("change") is not None else ""), "",
    ]
    for n, s in enumerate(result.get("samples", []), 1):
        lines += [f"## Sample {n}", "", "**Request:** " + " ".join(s["request"].split())[:400], "",
                  "**Before (base):** " + s["base"], "", "**After (personal):** " + s["personal"], ""]
    return "\n".join(lines)


def write_report(result: dict, folder: Path) -> tuple[Path, Path]:
    """report.json and report.md in `folder`, each written atomically."""
    folder = Path(folder)
    out = []
    for name, text in (("report.json", json.dumps(result, indent=2, ensure_ascii=False)),
                       ("report.md", summary_markdown(result))):
        out.append(write_text_atomic(folder / name, text))
    return out[0], out[1]
