"""The evaluation's report: the first sentence in plain words, the labels and estimates with their
CIs, and the Markdown and JSON written beside the model (both from the same result)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..workspace import write_text_atomic
from .own_writing import KIND_NAMES

CEILING = 0.95      # identification of the base's answers at or above this leaves a gain no room to show


def headline(result: dict) -> str:
    """The report's opening, made from its own numbers: first whether the personal model writes more
    like the person on their own held-out writing (`own_writing.writing_sentence`), then the sampled
    answers' context identification, judged by the base (a second sentence when that test is at its
    ceiling)."""
    from .own_writing import writing_sentence

    return writing_sentence(result.get("writing")) + " " + identification_sentence(result)


def identification_sentence(result: dict) -> str:
    """Whether the personal model's sampled answers use the user's writing more than its base's, as
    the base judges them."""
    ident = result.get("identification") or {}
    gain = ident.get("gain") or {}
    if not gain.get("n"):
        return "There were no held-out requests to sample answers for, so the answers' use of your writing was not tested."
    lo, hi = gain["ci95"]
    p, b = ident["personal"]["mean"], ident["base"]["mean"]
    said = (f"Shown one of its answers, the base model could tell which of {ident['contexts']} pieces of your writing "
            f"it was written for {p:.0%} of the time for your personal model and {b:.0%} for the original model "
            f"(chance: {ident['chance']:.0%}; {gain['n']} held-out requests, {ident['answers']} answers each)")
    if lo > 0:
        said += ": your personal model uses your writing more than the original does."
    elif hi < 0:
        said += ": your personal model uses your writing less than the original does."
    else:
        said += ": the difference is within the measurement's noise."
    fixed = (result.get("fixed_text_mi_per_token") or {}).get("gain") or {}
    if b >= CEILING and fixed.get("n"):
        flo, fhi = fixed["ci95"]
        verdict = ("relies on your writing more than the original does" if flo > 0 else
                   "relies on your writing less than the original does" if fhi < 0 else
                   "relies on your writing as much as the original does, within the noise")
        said += (f" The original's answers are already told apart {b:.0%} of the time, so that test has no room to show "
                 f"more; scoring the same answers under both models, your personal model {verdict} "
                 f"({signed(fixed['mean'], 3)} nats per token, 95% CI {signed(flo, 3)} to {signed(fhi, 3)}).")
    return said


def gain_label(result: Optional[dict]) -> str:
    """A few characters for a list of runs: the writing PMI gain on the user's own held-out text (or,
    in a report from before it, the context-identification gain in points)."""
    writing = ((result or {}).get("writing") or {}).get("pmi_gain") or {}
    if writing.get("n"):
        return f"your writing {writing['mean']:+.3f} nats/token"
    gain = ((result or {}).get("identification") or {}).get("gain") or {}
    if not gain.get("n"):
        return ""
    return f"identification {100 * gain['mean']:+.0f} pts"


def signed(value: float, digits: int = 2, scale: float = 1.0) -> str:
    """`value` × `scale` with its sign, as the reports write every measure and gain: `+0.123`."""
    return f"{scale * value:+.{digits}f}"


def format_estimate(stat: dict, digits: int = 2, scale: float = 1.0, *, compact: bool = False) -> str:
    """A report's mean with its 95% CI (a model's measure or a gain), the one way it is written:
    `+20.0 (95% CI +10.0 to +30.0, n=20)`, or for a narrow table cell (`compact`) `+20.0 (+10.0 … +30.0)`;
    `n/a (no examples)` when it was measured on none. `scale` 100 writes a share as points."""
    if not stat.get("n"):
        return "n/a (no examples)"
    mean = signed(stat["mean"], digits, scale)
    lo, hi = (signed(v, digits, scale) for v in stat["ci95"])
    if compact:
        return f"{mean} ({lo} … {hi})"
    return f"{mean} (95% CI {lo} to {hi}, n={stat['n']})"


def _row(name: str, stat: dict, digits: int = 2, scale: float = 1.0) -> str:
    cells = [format_estimate(stat[k], digits, scale) for k in ("base", "personal", "gain")]
    return f"| {name} | " + " | ".join(cells) + " |"


def summary_markdown(result: dict, title: str = "Personalization report") -> str:
    ident, ppl, replies = result["identification"], result["neutral_perplexity"], result["replies"]
    lines = [
        f"# {title}", "", result["headline"], "", *_writing_markdown(result.get("writing")),
        f"On {result['examples']} held-out examples of your own data (never trained on); "
        f"{ident['answers']} answers per example from each model, sampled as the training pairs were "
        f"(temperature {result['sampling']['temperature']}, at most {result['sampling']['max_new_tokens']} tokens)."
        + (" That is too few to tell: personalize with more of your writing." if result["examples"] < 5 else ""), "",
        "| measure | original (base) | personal | gain |", "|---|---|---|---|",
        _row(f"context identified among {ident['contexts']} (chance {100 * (ident['chance'] or 0):.0f}%), %", ident, 1, 100),
        _row("fixed-text MI per token (nats)", result["fixed_text_mi_per_token"], 3),
        _row("MI per token of the answers (nats)", result["mi_per_token"], 3),
        _row("answer length (tokens)", result["answer_tokens"], 1),
        _row("repetition loops, %", result["loop_rate"], 1, 100),
        _row("copied verbatim from your writing (8-grams), %", result["copy_share"], 1, 100),
        _row("coherence: log-likelihood per token under the base", result["coherence"], 3),
        _row(f"your real replies: log-likelihood per token ({replies['threads']} threads)", replies["loglik_per_token"], 3),
        _row(f"your real replies: ROUGE-L, % ({replies['threads']} threads)", replies["rouge_l"], 1, 100),
        "",
        *([f"Answers that reached the {result['sampling']['max_new_tokens']}-token limit (cut back to their last whole "
           f"sentence): personal {result['truncated_answers']['personal']}, original "
           f"{result['truncated_answers']['base']} of {result['truncated_answers']['of']} each.", ""]
          if result.get("truncated_answers") else []),
        "**General ability** (perplexity of a neutral text, lower is better): "
        f"base {ppl['base']:.2f}, personal {ppl['personal']:.2f}"
        + (f" ({ppl['change']:+.1%})" if ppl.get("change") is not None else ""), "",
        "How to read it: an answer that uses *your* writing lets the base model tell your context from "
        "others'; MI is how much more likely the answer is with your context than without; copying and "
        "coherence show whether that comes from parroting your text or from derailing.", "",
    ]
    lines += _previous_markdown(result)
    for n, s in enumerate(result.get("samples", []), 1):
        lines += [f"## Sample {n}", "", "**Request:** " + " ".join(s["request"].split())[:400], "",
                  "**Before (base):** " + s["base"], "", "**After (personal):** " + s["personal"], ""]
    return "\n".join(lines)


def _writing_markdown(w: Optional[dict]) -> list[str]:
    """The headline's table: the person's own held-out writing scored in place under both models."""
    if not w or not w.get("documents"):
        return []
    row = lambda name, stat, d=3: f"| {name} | {format_estimate(stat, d)} |"  # noqa: E731
    return [
        f"## Your own writing ({w['documents']} held-out texts: {w['notes']} notes, {w['replies']} replies, "
        f"{w.get('emails', 0)} other emails; "
        f"each scored up to {w.get('text_tokens', '?')} tokens)", "",
        "| measure, nats per token | personal − original |", "|---|---|",
        row("writing PMI gain: how much more your other writing makes your real text likely", w["pmi_gain"]),
        row("placebo: the same with someone else's context (must gain less)", w["placebo_gain"]),
        row("true minus placebo", w["true_minus_placebo"]),
        row("likelihood of your real text with your context", w["likelihood_gain"]),
        *(row(f"writing PMI gain on {KIND_NAMES.get(kind, kind + 's')}", stat) for kind, stat in w["by_kind"].items()
          if stat.get("n")), "",
        f"Improved on {w['improved']:.0%} of the texts. PMI of your text under the original: "
        f"{format_estimate(w['pmi']['base'], 3)}; under the personal model: {format_estimate(w['pmi']['personal'], 3)}.",
        "", "## Sampled answers (judged by the base model)", "",
    ]


def _previous_markdown(result: dict) -> list[str]:
    """New vs previous vs base, for an incremental run's report (nothing otherwise)."""
    prev = result.get("previous")
    if not prev:
        return []
    ident, fixed, ppl = result["identification"], result["fixed_text_mi_per_token"], result["neutral_perplexity"]
    row = lambda name, b, q, p, g, d=2, sc=1.0: (f"| {name} | {format_estimate(b, d, sc, compact=True)} | "  # noqa: E731
                                                f"{format_estimate(q, d, sc, compact=True)} | "
                                                f"{format_estimate(p, d, sc, compact=True)} | "
                                                f"{format_estimate(g, d, sc, compact=True)} |")
    return [
        "## New vs previous vs base", "",
        f"This run continued the previous model ({Path(prev['model']).name}) on what is new; all three are measured "
        "on the same held-out examples.", "",
        "| measure | base | previous | new | new − previous |", "|---|---|---|---|---|",
        row("context identified, %", ident["base"], prev["identification"], ident["personal"],
            prev["gain"]["identification"], 1, 100),
        row("fixed-text MI per token (nats)", fixed["base"], prev["fixed_text_mi_per_token"], fixed["personal"],
            prev["gain"]["fixed_text_mi_per_token"], 3),
        f"| neutral perplexity | {ppl['base']:.2f} | {prev['neutral_perplexity']:.2f} | {ppl['personal']:.2f} | "
        f"{ppl['personal'] - prev['neutral_perplexity']:+.2f} |", "",
    ]


def write_report(result: dict, folder: Path) -> tuple[Path, Path]:
    """report.json and report.md in `folder`, each written atomically."""
    folder = Path(folder)
    out = []
    for name, text in (("report.json", json.dumps(result, indent=2, ensure_ascii=False)),
                       ("report.md", summary_markdown(result))):
        out.append(write_text_atomic(folder / name, text))
    return out[0], out[1]
