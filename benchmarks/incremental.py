"""Incremental personalization against a run from scratch, on the demo corpus with the demo settings.

    flock /tmp/mipo-cpu.lock .venv/bin/python benchmarks/incremental.py [--held-back 4] [--skip-scratch]

1. a fresh workspace, the demo with `--held-back` of its 40 notes left out: a full run;
2. the held-back notes added (10% more notes with 4): `run` again — an incremental run;
3. another fresh workspace with every note: a full run from scratch on the same grown data.
Prints the seconds per stage of each and the reports' main measures (the incremental run's report also
has the previous model's). The base's checkpoint and sampling copy come from the usual cache, made
once before the timings. Your own workspace is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("import", "pairs", "train", "export", "activate", "evaluate")


def corpus(root: Path, held_back: int) -> tuple[Path, list[tuple[Path, Path]]]:
    """A copy of the demo notes without `held_back` of them; (aside, where it goes) for each."""
    from mipo_local.demo import demo_dir

    notes = root / "notes"
    shutil.copytree(demo_dir() / "notes", notes)
    aside = root / "later"
    moves = []
    for path in sorted(notes.rglob("*.md"), key=lambda p: p.name)[-held_back:] if held_back else []:
        target = aside / path.relative_to(notes)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        moves.append((target, path))
    return notes, moves


def one_run(home: Path, sources, settings, **kw):
    from mipo_local.pipeline import load_state, run_pipeline

    os.environ["MIPO_HOME"] = str(home)
    start = time.perf_counter()
    result = run_pipeline(sources, settings, **kw)
    wall = time.perf_counter() - start
    state = load_state(result.run_dir)
    print(f"  {result.mode} run in {wall:.1f} s: " + json.dumps({k: round(v, 1) for k, v in result.seconds.items()}),
          flush=True)
    return {"mode": result.mode, "reason": result.mode_reason, "wall": wall, "seconds": dict(result.seconds),
            "stages": {k: {x: v.get(x) for x in ("made", "new_documents", "new_examples", "new_train_pairs",
                                                  "new_pairs", "replayed_pairs", "steps") if x in v}
                       for k, v in state["stages"].items()},
            "report": result.report}


def measures(report: dict) -> dict:
    ident, fixed, ppl = report["identification"], report["fixed_text_mi_per_token"], report["neutral_perplexity"]
    prev = report.get("previous")
    out = {"identification base": ident["base"]}
    if prev:
        out["identification previous"] = prev["identification"]
    out["identification new"] = ident["personal"]
    out["fixed-text MI/token base"] = fixed["base"]
    if prev:
        out["fixed-text MI/token previous"] = prev["fixed_text_mi_per_token"]
    out["fixed-text MI/token new"] = fixed["personal"]
    out["fixed-text MI gain new - base"] = fixed["gain"]
    if prev:
        out["fixed-text MI gain new - previous"] = prev["gain"]["fixed_text_mi_per_token"]
        out["neutral perplexity previous"] = prev["neutral_perplexity"]
    out["neutral perplexity base"] = ppl["base"]
    out["neutral perplexity new"] = ppl["personal"]
    return out


def show(name: str, stat) -> str:
    from mipo_local.evaluation.report import format_estimate

    return f"  {name:48} " + (f"{stat:.3f}" if isinstance(stat, float) else format_estimate(stat, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-back", type=int, default=4, help="demo notes left out of the first run (of 40)")
    parser.add_argument("--skip-scratch", action="store_true", help="leave out the run from scratch on the grown data")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here too")
    args = parser.parse_args()
    from mipo_local.demo import DEMO_ADDRESSES, demo_dir
    from mipo_local.pipeline import demo_settings

    settings = demo_settings()
    root = Path(tempfile.mkdtemp(prefix="mipo-incremental-"))
    try:
        notes, moves = corpus(root, args.held_back)
        mail = demo_dir() / "mail"
        os.environ["MIPO_HOME"] = str(root / "warm")
        from mipo_local.modelio import base_checkpoint
        from mipo_local.modelio.bases import sampling_gguf
        from mipo_local.modelio.catalog import resolve_base

        base = resolve_base(None)
        sampling_gguf(base), base_checkpoint(base)      # cached: no run below pays for them
        runs = {}
        print(f"first run: {40 - args.held_back} notes + the mail (full)", flush=True)
        runs["full (before)"] = one_run(root / "home", [notes, mail], settings, addresses=DEMO_ADDRESSES)
        for aside, back in moves:
            shutil.copy2(aside, back)
        print(f"second run: {args.held_back} notes added ({100 * args.held_back / (40 - args.held_back):.0f}% more)",
              flush=True)
        runs["incremental"] = one_run(root / "home", [notes], settings)
        if not args.skip_scratch:
            print("third run: the same grown data from scratch, in a fresh workspace", flush=True)
            runs["from scratch"] = one_run(root / "scratch", [notes, mail], settings, addresses=DEMO_ADDRESSES)
        print(f"\n{'stage (s)':10}" + "".join(f"{k:>16}" for k in runs))
        for stage in STAGES:
            print(f"{stage:10}" + "".join(f"{r['seconds'].get(stage, 0.0):16.1f}" for r in runs.values()))
        print(f"{'wall':10}" + "".join(f"{r['wall']:16.1f}" for r in runs.values()))
        for name, r in runs.items():
            print(f"\n{name}: {r['mode']} ({r['reason']}); {json.dumps(r['stages'].get('pairs'))}, "
                  f"train {json.dumps(r['stages'].get('train'))}")
            for key, stat in measures(r["report"]).items():
                print(show(key, stat))
        if args.out:
            args.out.write_text(json.dumps(runs, indent=2, default=str))
        inc, scratch = runs["incremental"]["wall"], runs.get("from scratch", {}).get("wall")
        if scratch:
            print(f"\nincremental / from scratch, wall clock: {inc / scratch:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
