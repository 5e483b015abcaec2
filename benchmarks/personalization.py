"""Does personalization work? The whole pipeline, trained with several seeds, measured on held-out data.

    .venv/bin/python benchmarks/personalization.py                      # the demo corpus, demo settings
    .venv/bin/python benchmarks/personalization.py --corpus ~/notes --me me@example.org --seeds 2

Imports the corpus into a fresh temporary workspace (your own workspace is not touched), makes the
pairs once, then for each training seed trains, exports and evaluates (`mipo-local run` with the
demo settings, or the defaults with --full). Prints per seed the headline — the person's own held-out
writing scored in place (`own_writing`: writing PMI gain, likelihood gain, placebo) — and the guards
(copy share, loops, length, coherence, neutral perplexity; identification, judged by the base), each
with a 95% CI, the targets of issue 27 met or not, then two last lines:
`copy gain: C` — the larger over seeds of the verbatim-copy share's gain, in points — and
`gain: X` — the lower over seeds of the lower end of the writing PMI gain's 95% CI, nats per token.
Options override single settings (for the sweep in scripts/sweep_recipe.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measures(report: dict) -> list[tuple[str, dict, float, int]]:
    r = report
    return [
        ("context identification, points", r["identification"], 100.0, 1),
        ("fixed-text MI per token", r["fixed_text_mi_per_token"], 1.0, 3),
        ("MI per token of answers", r["mi_per_token"], 1.0, 3),
        ("answer tokens", r["answer_tokens"], 1.0, 1),
        ("loop rate, %", r["loop_rate"], 100.0, 1),
        ("verbatim-copy share, %", r["copy_share"], 100.0, 1),
        ("coherence (base log-lik/token)", r["coherence"], 1.0, 3),
        ("real-reply log-lik/token", r["replies"]["loglik_per_token"], 1.0, 3),
        ("real-reply ROUGE-L, %", r["replies"]["rouge_l"], 100.0, 1),
    ]


def print_writing(w: dict) -> None:
    from mipo_local.evaluation.own_writing import KIND_NAMES
    from mipo_local.evaluation.report import format_estimate

    print(f"own writing: {w['documents']} held-out texts ({w['notes']} notes, {w['replies']} replies, "
          f"{w.get('emails', 0)} other emails), "
          f"{w['tokens']} tokens; improved on {100 * (w['improved'] or 0):.0f}%")
    for name, key in (("writing PMI gain / token", "pmi_gain"), ("placebo gain / token", "placebo_gain"),
                      ("true minus placebo", "true_minus_placebo"), ("likelihood gain / token", "likelihood_gain")):
        print(f"  {name:32} {format_estimate(w[key], 3)}")
    for kind, stat in w["by_kind"].items():
        if stat.get("n"):
            print(f"  {'writing PMI gain, ' + KIND_NAMES.get(kind, kind):32} {format_estimate(stat, 3)}")


def targets(report: dict) -> dict[str, bool]:
    """Issue 27's targets for one seed."""
    w, ppl = report["writing"], report["neutral_perplexity"]
    ratio = report["answer_tokens"]["ratio"]
    return {
        "writing gain CI > 0": bool(w["pmi_gain"]["n"]) and w["pmi_gain"]["ci95"][0] > 0,
        "copy gain <= 5 pts": 100 * report["copy_share"]["gain"]["mean"] <= 5,
        "likelihood CI not below 0": bool(w["likelihood_gain"]["n"]) and w["likelihood_gain"]["ci95"][1] >= 0,
        "placebo below true": bool(w["placebo_gain"]["n"]) and w["placebo_gain"]["mean"] < w["pmi_gain"]["mean"],
        "neutral ppl <= +5%": (ppl.get("change") or 0) <= 0.05,
        "loops <= base": report["loop_rate"]["personal"]["mean"] <= report["loop_rate"]["base"]["mean"],
        "length 0.8-1.25x": ratio is not None and 0.8 <= ratio <= 1.25,
    }


def print_report(report: dict, seed: int) -> None:
    from mipo_local.evaluation.report import format_estimate

    print_writing(report["writing"])

    print(f"\n== training seed {seed}: {report['examples']} held-out examples, "
          f"M={report['identification']['contexts']} contexts (chance {report['identification']['chance']:.2f}), "
          f"K={report['identification']['answers']} answers, {report['replies']['threads']} reply threads")
    print(f"{'measure':34} {'base':>28} {'personal':>28} {'gain':>28}")
    for name, stat, scale, digits in measures(report):
        if not stat["gain"]["n"]:
            print(f"{name:34} n/a")
            continue
        cells = (format_estimate(stat[k], digits, scale, compact=True) for k in ("base", "personal", "gain"))
        print(f"{name:34} " + " ".join(f"{c:>28}" for c in cells))
    ppl = report["neutral_perplexity"]
    print(f"{'neutral perplexity':34} {ppl['base']:>28.2f} {ppl['personal']:>28.2f} {100 * ppl['change']:>+27.1f}%")
    print(f"answer length ratio personal/base: {report['answer_tokens']['ratio']:.2f}; answers cut at the token limit: "
          f"personal {report['truncated_answers']['personal']}, base {report['truncated_answers']['base']} "
          f"of {report['truncated_answers']['of']}")
    met = targets(report)
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items()))
    print(report["headline"])


def run_seeds(settings, sources, addresses, seeds, *, verbose: bool = True) -> list[dict]:
    """Train, export and evaluate once per training seed in the current workspace (importing the
    sources first when given); each run's report, stage times and training metrics."""
    from mipo_local.pipeline import run_pipeline

    results = []
    for n, seed in enumerate(seeds):
        run = dataclasses.replace(settings, train=dataclasses.replace(settings.train, seed=seed))
        t = time.perf_counter()
        result = run_pipeline(sources if n == 0 else (), run, addresses=addresses, new=True)
        state = json.loads((result.run_dir / "state.json").read_text())
        stage_s = {k: round(v.get("seconds") or 0, 1) for k, v in state["stages"].items()}
        pairs_stage = state["stages"].get("pairs", {})
        train_metrics = state["stages"].get("train", {}).get("metrics", {})
        results.append({"seed": seed, "report": result.report, "stages": stage_s, "train": train_metrics,
                        "pairs": pairs_stage, "seconds": time.perf_counter() - t})
        if not verbose:
            continue
        print(f"\nrun {seed}: {time.perf_counter() - t:.0f} s; stages {stage_s}")
        print(f"pairs kept {pairs_stage.get('made')}, dropped {pairs_stage.get('dropped')}, "
              f"hit the token limit {pairs_stage.get('truncated')}; trained on {train_metrics.get('pairs')} "
              f"({train_metrics.get('pairs_too_long')} too long), steps {train_metrics.get('steps')}")
        before, after = train_metrics.get("heldout_before") or {}, train_metrics.get("heldout_after") or {}
        if after:
            print(f"held-out DPO reward accuracy (ties ½) {before.get('reward_accuracy', 0):.2f} → "
                  f"{after['reward_accuracy']:.2f} on {after['pairs']} pairs")
        print_report(result.report, seed)
    return results


def build_settings(base, **overrides):
    """`base` RunSettings with single pairs/train/evaluation fields replaced (None: keep)."""
    train = {k: v for k, v in {"epochs": overrides.get("epochs"), "learning_rate": overrides.get("lr"),
                               "beta": overrides.get("beta"), "sft_weight": overrides.get("rpo")}.items()
             if v is not None}
    pairs = {k: overrides.get(k) for k in ("examples", "strategy", "context_in", "candidates", "context_tokens",
                                           "max_new_tokens", "min_context_mi", "own_document", "samples",
                                           "heldout_fraction") if overrides.get(k) is not None}
    if overrides.get("copy_ceiling") is not None:
        pairs["copy_ceiling"] = None if overrides["copy_ceiling"] < 0 else overrides["copy_ceiling"]
    if overrides.get("real_text") is not None:
        pairs["real_text"] = overrides["real_text"]
    if overrides.get("no_mirror"):
        train["mirror"] = False
    if overrides.get("rank") is not None:
        train.update(lora_rank=overrides["rank"], lora_alpha=2 * overrides["rank"])
    evaluation = {k: v for k, v in {"examples": overrides.get("eval_examples"), "answers": overrides.get("eval_answers"),
                                    "writing": overrides.get("eval_writing")}.items() if v is not None}
    return dataclasses.replace(base, pairs=dataclasses.replace(base.pairs, **pairs),
                               train=dataclasses.replace(base.train, **train),
                               evaluation=dataclasses.replace(base.evaluation, **evaluation))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="+", type=Path, help="notes folders / mail files instead of the demo corpus")
    ap.add_argument("--me", action="append", default=[], help="your email address (repeatable)")
    ap.add_argument("--seeds", type=int, default=2, help="training seeds")
    ap.add_argument("--first-seed", type=int, default=0, help="the first training seed (seeds run from it on)")
    ap.add_argument("--full", action="store_true", help="the library defaults instead of the demo settings")
    ap.add_argument("--json", type=Path, help="write every seed's report and settings here")
    for name, kind in (("examples", int), ("strategy", str), ("context-in", str), ("candidates", int),
                       ("context-tokens", int), ("max-new-tokens", int), ("epochs", float), ("lr", float),
                       ("beta", float), ("rank", int), ("eval-examples", int), ("eval-answers", int),
                       ("eval-writing", int), ("own-document", str), ("samples", int), ("heldout-fraction", float),
                       ("rpo", float)):
        ap.add_argument(f"--{name}", type=kind, default=None)
    ap.add_argument("--copy-ceiling", type=float, default=None, help="a negative value: no ceiling")
    ap.add_argument("--real-text", action=argparse.BooleanOptionalAction, default=None,
                    help="the person's own text as chosen answers too (--no-real-text: MIPO pairs only)")
    ap.add_argument("--no-mirror", action="store_true", help="train each pair from its positive's prompt only")
    args = ap.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mipo-personalization-"))
    os.environ["MIPO_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources
    from mipo_local.pipeline import RunSettings, demo_settings

    settings = build_settings(RunSettings() if args.full else demo_settings(),
                              **{k.replace("-", "_"): v for k, v in vars(args).items()})
    sources = args.corpus or demo_sources()
    addresses = args.me or ([] if args.corpus else list(DEMO_ADDRESSES))
    print(f"corpus: {', '.join(map(str, sources))}; workspace {home}")
    print(f"settings: pairs {json.dumps(dataclasses.asdict(settings.pairs))}")
    print(f"          train {json.dumps(dataclasses.asdict(settings.train))}")
    print(f"          evaluation {json.dumps(dataclasses.asdict(settings.evaluation))}")
    results = run_seeds(settings, sources, addresses, range(args.first_seed, args.first_seed + args.seeds))
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.to_dict(), "runs": results}, indent=2, default=str))
    writing = [r["report"]["writing"]["pmi_gain"] for r in results]
    copies = [100 * r["report"]["copy_share"]["gain"]["mean"] for r in results]
    print("\nwriting PMI gain per seed (nats/token, 95% CI): " + "; ".join(
        f"{w['mean']:+.3f} ({w['ci95'][0]:+.3f} … {w['ci95'][1]:+.3f})" for w in writing))
    print(f"identification gain per seed (points, judged by the base): " + ", ".join(
        f"{100 * r['report']['identification']['gain']['mean']:+.1f}" for r in results))
    print(f"copy gain: {max(copies):.1f}")
    print(f"gain: {min(w['ci95'][0] if w['n'] else float('nan') for w in writing):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
