"""The evaluation's scoring, old way and new way, on the same workload in one run.

Workload (as `evaluation.stage.evaluate_models` scores it, demo settings): held-out examples of the demo
corpus, each with its true context and 3 distractors (`heldout_examples`), 4 sampled answers per
example (standing in for the personal model's 2 and the base's 2; sampled once from the sampling
GGUF, not timed), and the user's real reply where the example has one. Timed, for each way:

- the base part: every answer under the true context, each distractor and no context, and the real
  replies under the true context;
- the personal part: the base's answers with and without context (fixed-text MI) and the real
  replies. The benchmark has no trained model, so the base checkpoint stands in for the personal
  one: the work is the same.

Old: the PyTorch `ResponseScorer` as it was before packing (kept below, verbatim but for its name),
the real replies scored by calls of their own. New: `scoring.ResponseScorer` and the evaluation's
own functions (`_score_base`, `_score_personal`), in fp32 (must change nothing beyond fp32 rounding)
and with bfloat16 matrix products (`EvalSettings.scoring` "bf16-matmul", not the default). Agreement
with the old way is printed for every score; `ratio` is old over the evaluation's default (fp32).

Run: flock /tmp/mipo-cpu.lock .venv/bin/python benchmarks/evaluate.py [--examples 12] [--home DIR]
(--home: a workspace to keep, so the base checkpoint and the answers are made only once)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ANSWERS = 4
CONTEXTS = 4


class OldResponseScorer:
    """`mipo_local.inference.scoring.ResponseScorer` before packing (commit dd28412): one padded batch of up to
    8 responses per forward pass, the prompt's cache deep-copied and repeated per batch, the output
    head run over every prompt position."""

    KEEP = 4
    MIN_SHARED = 32

    def __init__(self, model, tokenizer, *, batch_size: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._kept: list[tuple[list[int], object]] = []

    def _prompt_cache(self, prompt: list[int]):
        import torch

        device = next(self.model.parameters()).device
        body = prompt[:-1]
        best, shared, length = None, 0, 0
        for ids, cache in self._kept:
            n = 0
            for a, b in zip(ids, body):
                if a != b:
                    break
                n += 1
            if n > shared:
                best, shared, length = cache, n, len(ids)
        if best is not None and shared >= self.MIN_SHARED:
            cache = copy.deepcopy(best)
            if shared < length:
                cache.crop(shared - length)
        else:
            cache, shared = None, 0
        rest = body[shared:]
        if rest:
            out = self.model(input_ids=torch.tensor([rest], device=device), cache=cache, use_cache=True)
            cache = out.past_key_values
        self._kept = [(body, cache)] + [k for k in self._kept if k[0] != body][: self.KEEP - 1]
        past = copy.deepcopy(cache)
        last = self.model(input_ids=torch.tensor([prompt[-1:]], device=device), cache=past, use_cache=True)
        return past, last.logits[0, -1].float()

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        from mipo_local.inference.scoring import prompt_ids

        return prompt_ids(self.tokenizer, messages)

    def response_ids(self, response: str) -> list[int]:
        return self.tokenizer(response, add_special_tokens=False)["input_ids"]

    def score(self, messages: Sequence[dict], responses: Sequence[str]) -> list[tuple[float, int]]:
        import torch

        if not responses:
            return []
        model = self.model
        device = next(model.parameters()).device
        prompt = self.prompt_ids(messages)
        encoded = [self.response_ids(r) for r in responses]
        out: list[tuple[float, int]] = [(0.0, 0)] * len(responses)
        with torch.no_grad():
            cache, last_logits = self._prompt_cache(prompt)
            first_logp = torch.log_softmax(last_logits, -1)
            order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
            for a in range(0, len(order), self.batch_size):
                batch = order[a:a + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
                ids = torch.tensor([encoded[i] + [pad] * (width - len(encoded[i])) for i in batch], device=device)
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(batch))
                logits = model(input_ids=ids, cache=past, use_cache=True).logits[:, :-1].float()
                picked = (logits.gather(-1, ids[:, 1:, None])[..., 0] - torch.logsumexp(logits, -1)) if width > 1 else None
                for row, i in enumerate(batch):
                    n = len(encoded[i])
                    total = first_logp[encoded[i][0]].item()
                    if n > 1:
                        total += picked[row, :n - 1].sum().item()
                    out[i] = (total, n)
        return out


def old_way(scorer, examples, texts, context_in):
    """The evaluation's scoring before this change (commit dd28412): the answers' jobs, then the
    real replies by calls of their own, under each model."""
    from mipo_local.inference.prompt_format import chat_messages

    jobs = []
    for i, e in enumerate(examples):
        jobs.append((tuple(e["context"]), i, "true"))
        jobs += [(tuple(d), i, j) for j, d in enumerate(e["distractors"])]
        jobs.append(((), i, "none"))
    jobs.sort(key=lambda j: (j[0], j[1]))
    scores = [{"distractors": [None] * len(e["distractors"])} for e in examples]
    for context, i, which in jobs:
        got = scorer.score(chat_messages(list(context) or None, examples[i]["request"], context_in=context_in), texts[i])
        if which in ("true", "none"):
            scores[i][which] = got
        else:
            scores[i]["distractors"][which] = got
    replies = [i for i, e in enumerate(examples) if e.get("reference")]
    for i in replies:
        scores[i]["reference"] = scorer.score(chat_messages(examples[i]["context"], examples[i]["request"],
                                                            context_in=context_in), [examples[i]["reference"]])[0]
    return scores


def old_personal(scorer, examples, texts, context_in, K):
    from mipo_local.inference.prompt_format import chat_messages

    theta_all, replies = [], []
    for e, t in zip(examples, texts):
        with_c = scorer.score(chat_messages(e["context"], e["request"], context_in=context_in), t[K:])
        without = scorer.score(chat_messages(None, e["request"], context_in=context_in), t[K:])
        theta_all.append([(a[0] - b[0]) / max(1, a[1]) for a, b in zip(with_c, without)])
    for e in examples:
        if e.get("reference"):
            replies.append(scorer.score(chat_messages(e["context"], e["request"], context_in=context_in), [e["reference"]])[0])
    return theta_all, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=12, help="held-out examples (the demo evaluates 24)")
    parser.add_argument("--home", type=Path, help="a workspace to keep (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        os.environ["MIPO_HOME"] = str(home)
        run(args.examples, home)


def run(n_examples: int, home: Path) -> None:
    import torch

    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import demo_dir
    from mipo_local.evaluation.settings import EvalSettings
    from mipo_local.evaluation.stage import _sample, _score_base, _score_personal, heldout_examples
    from mipo_local.evaluation.statistics import identification
    from mipo_local.inference.prompt_format import chat_messages
    from mipo_local.inference.scoring import PRECISIONS, ResponseScorer, load_torch_model, matmul_precision
    from mipo_local.modelio import base_checkpoint
    from mipo_local.modelio.bases import sampling_gguf
    from mipo_local.modelio.catalog import resolve_base
    from mipo_local.pipeline.settings import demo_settings

    base = resolve_base(None)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}); base {base.path.name}")
    checkpoint, sampler = base_checkpoint(base), sampling_gguf(base)
    ps = demo_settings().pairs
    imported = home / "bench-evaluate-imported"
    if not imported.is_file():
        import_paths([demo_dir() / "notes", demo_dir() / "mail"])
        imported.write_text("the demo corpus is in this workspace's store\n")
    answers_file = home / f"bench-evaluate-answers-{n_examples}.json"
    with ContextStore() as store:
        examples = heldout_examples(store, ps, n_examples, CONTEXTS)
    if answers_file.is_file():
        texts = json.loads(answers_file.read_text())
    else:
        t = time.perf_counter()
        texts = [[a["text"] for a in g] for g in _sample(sampler, examples, ps, ANSWERS, 1234)]
        answers_file.write_text(json.dumps(texts))
        print(f"(sampled {ANSWERS} answers for each of {len(examples)} examples in {time.perf_counter() - t:.0f} s, not timed)")
    K = ANSWERS // 2
    ci = ps.context_in
    model, tok = load_torch_model(checkpoint)
    replies = sum(1 for e in examples if e.get("reference"))
    prompt_tokens = response_tokens = 0
    probe = ResponseScorer(model, tok)
    for e, t in zip(examples, texts):
        for c in [e["context"], *e["distractors"], None]:
            prompt_tokens += len(probe.prompt_ids(chat_messages(c, e["request"], context_in=ci)))
            response_tokens += sum(len(probe.response_ids(a)) for a in t)
    print(f"{len(examples)} held-out examples × {CONTEXTS} contexts + none × {ANSWERS} answers, {replies} real replies; "
          f"base part: {prompt_tokens} prompt + {response_tokens} answer tokens")

    settings = EvalSettings()
    ways = [("old (fp32, a padded batch per 8 answers)", "old", "fp32", lambda: OldResponseScorer(model, tok))]
    ways += [(f"new, {p} (packed{'; the default' if p == settings.scoring else ''})", "new", p,
              lambda: ResponseScorer(model, tok)) for p in PRECISIONS]
    timings, results = {}, {}
    for label, flow, precision, make in ways:
        with torch.no_grad(), matmul_precision(precision):
            t = time.perf_counter()
            scores = old_way(make(), examples, texts, ci) if flow == "old" else _score_base(make(), examples, texts, ci)
            base_s = time.perf_counter() - t
            t = time.perf_counter()
            if flow == "old":
                theta, reply_p = old_personal(make(), examples, texts, ci, K)
                theta = [sum(t) / len(t) for t in theta]
            else:
                theta, _, _, reply_p = _score_personal(make(), examples, texts, scores, K, ci)
            personal_s = time.perf_counter() - t
        timings[label] = base_s + personal_s
        results[label] = (scores, theta, reply_p)
        tokens = prompt_tokens + response_tokens
        print(f"{label}: base part {base_s:.1f} s ({tokens / base_s:.0f} tok/s), personal part {personal_s:.1f} s, "
              f"total {base_s + personal_s:.1f} s", flush=True)

    old_label = ways[0][0]
    for label, *_ in ways[1:]:
        print(f"agreement of {label} with old: {agreement(results[old_label], results[label], identification)}")
    for label, *_ in ways[1:]:
        print(f"{label}: {timings[old_label] / timings[label]:.2f}x old")
    default = next(label for label, _, p, _ in ways[1:] if p == settings.scoring)
    print(f"ratio: {timings[old_label] / timings[default]:.2f}")


def agreement(old, new, identification) -> str:
    """How far `new`'s scores are from `old`'s: every log-prob, the identification decisions, MI per
    token of the answers, the fixed-text MI per token and the real replies."""
    old_s, new_s = old[0], new[0]
    diffs, per_tok, ident_same, mi_diffs = [], [], [], []
    for o, n in zip(old_s, new_s):
        pairs = list(zip(o["true"], n["true"])) + list(zip(o["none"], n["none"]))
        for do, dn in zip(o["distractors"], n["distractors"]):
            pairs += list(zip(do, dn))
        if o.get("reference") is not None:
            pairs.append((o["reference"], n["reference"]))
        for a, b in pairs:
            assert a[1] == b[1], "token counts differ"
            diffs.append(abs(a[0] - b[0]))
            per_tok.append(abs(a[0] - b[0]) / max(1, a[1]))
        for k in range(len(o["true"])):
            ident_same.append(identification(o["true"][k][0], [d[k][0] for d in o["distractors"]])
                              == identification(n["true"][k][0], [d[k][0] for d in n["distractors"]]))
            nt = max(1, o["true"][k][1])
            mi_diffs.append(abs((o["true"][k][0] - o["none"][k][0]) / nt - (n["true"][k][0] - n["none"][k][0]) / nt))
    fixed = [abs(a - b) for a, b in zip(old[1], new[1])]
    reply = max((abs(a[0] - b[0]) for a, b in zip(old[2], new[2])), default=0.0)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return (f"{len(diffs)} log-probs: |diff| mean {mean(diffs):.2e}, max {max(diffs):.2e} nats; per token mean "
            f"{mean(per_tok):.2e}, max {max(per_tok):.2e}; identification decisions equal {sum(ident_same)}/{len(ident_same)}; "
            f"MI per token |diff| mean {mean(mi_diffs):.2e}, max {max(mi_diffs):.2e}; fixed-text MI per token (per example) "
            f"|diff| max {max(fixed):.2e}; real replies |diff| max {reply:.2e} nats")


if __name__ == "__main__":
    main()
