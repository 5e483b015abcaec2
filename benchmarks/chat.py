"""Chat speed: our ChatSession against bare llama-cpp-python on the same GGUF.

Both answer the same conversations on the demo corpus, greedily (so their answers, and therefore
their next prompts, are the same): ours through ChatSession (retrieval, sticky context, trimmed
history, rendering, streaming), bare with `Llama.create_chat_completion(stream=True)` on the very
messages ours sent, each with llama-cpp-python's own prompt-prefix cache. Measured per turn: time to
first token (TTFT) and tokens/s of the answer. Also TTFT at turn 10 over turn 1 for a conversation
that stays on one subject (the context stays, the KV cache is reused) and one that changes subject
every turn (the context is replaced and the prompt decoded again, with the history trimmed: there
the worst turn over turn 1 is reported).

Run: .venv/bin/python benchmarks/chat.py        last line: ratio (our tokens/s over bare)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FOLLOW_UPS = [
    "How is Bjørn the sourdough starter doing?",
    "How often should I feed the sourdough starter?",
    "What flour does the sourdough starter get?",
    "Where do I keep the sourdough starter when I travel?",
    "Who gave me the sourdough starter?",
    "Can I bake rye bread with the sourdough starter?",
    "What went wrong with the sourdough last time?",
    "Should I share some sourdough starter with a neighbour?",
    "How warm should the kitchen be for the sourdough?",
    "Summarize what I know about my sourdough starter.",
]
SWITCHES = [
    "How is Bjørn the sourdough starter doing?",
    "What is on my packing list for the Svalbard trip?",
    "What are my paper ideas?",
    "What am I bringing to the bake sale?",
    "When is the next choir rehearsal?",
    "What did I decide about the bike repair?",
    "Remind me about the allotment garden.",
    "What do I think about the lab's new microscope?",
    "Who is coming in July?",
    "What should I read next?",
]
MAX_TOKENS = 64


def run_ours(gguf: Path, turns: list[str]) -> tuple[list[float], list[float], list[list[dict]], int]:
    from mipo_local.chat.session import ChatSession

    ttft, tps, prompts, changes = [], [], [], 0
    with ChatSession(gguf, max_tokens=MAX_TOKENS, temperature=0.0, save=False) as chat:
        for n, text in enumerate(turns):
            chat.ask(text)
            ttft.append(chat.last.ttft)
            tps.append(chat.last.tokens_per_second)
            prompts.append(list(chat.last_messages))
            changes += n > 0 and chat.last.context_changed
    return ttft, tps, prompts, changes


def run_bare(gguf: Path, prompts: list[list[dict]]) -> tuple[list[float], list[float]]:
    from llama_cpp import Llama

    from mipo_local.inference.llama_runtime import physical_cores, quiet_llama_logs

    quiet_llama_logs()
    threads = physical_cores()
    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, flash_attn=True,
                verbose=False)
    ttft, tps = [], []
    for messages in prompts:   # the very messages ours sent (greedy: the same answers, the same KV reuse)
        start = time.perf_counter()
        first, n, pieces = None, 0, []
        for chunk in llm.create_chat_completion(messages, max_tokens=MAX_TOKENS, temperature=0.0, top_p=0.95,
                                                repeat_penalty=1.1, stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if not piece:
                continue
            if first is None:
                first = time.perf_counter() - start
            n += 1
            pieces.append(piece)
        total = time.perf_counter() - start
        ttft.append(first or total)
        tps.append((n - 1) / (total - first) if first and n > 1 and total > first else 0.0)
    llm.close()
    return ttft, tps


def main() -> None:
    home = tempfile.mkdtemp(prefix="mipo-bench-chat-")
    os.environ["MIPO_HOME"] = home
    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources
    from mipo_local.modelio.catalog import default_card
    from mipo_local.settings import UserSettings

    import_paths(demo_sources(), settings=UserSettings().with_addresses(DEMO_ADDRESSES))
    with ContextStore() as store:
        store.set_user_addresses(DEMO_ADDRESSES)
    gguf = default_card().local_path()
    print(f"model: {gguf.name}; {len(FOLLOW_UPS)} turns, up to {MAX_TOKENS} new tokens each, threads: default")

    ours_tps, bare_tps, ours_ttft, bare_ttft = [], [], [], []
    ratios_follow, ratios_switch = [], []
    for rep in range(2):
        t, s, prompts, changes = run_ours(gguf, FOLLOW_UPS)
        bt, bs = run_bare(gguf, prompts)
        ours_tps += s
        bare_tps += bs
        ours_ttft += t
        bare_ttft += bt
        ratios_follow.append(t[-1] / t[0])
        print(f"rep {rep} one subject: ours TTFT turn 1 {t[0] * 1000:.0f} ms, turn 10 {t[-1] * 1000:.0f} ms "
              f"(context changed {changes}x); bare turn 1 {bt[0] * 1000:.0f} ms, turn 10 {bt[-1] * 1000:.0f} ms")
        t2, s2, prompts2, changes2 = run_ours(gguf, SWITCHES)
        bt2, bs2 = run_bare(gguf, prompts2)
        ours_tps += s2
        bare_tps += bs2
        ratios_switch.append(max(t2) / t2[0])
        print(f"rep {rep} new subject every turn: ours TTFT turn 1 {t2[0] * 1000:.0f} ms, worst {max(t2) * 1000:.0f} ms "
              f"(turn {t2.index(max(t2)) + 1}), turn 10 {t2[-1] * 1000:.0f} ms (context changed {changes2}x); "
              f"bare worst {max(bt2) * 1000:.0f} ms")
    ours = statistics.median(x for x in ours_tps if x)
    bare = statistics.median(x for x in bare_tps if x)
    print(f"median TTFT: ours {statistics.median(ours_ttft) * 1000:.0f} ms, bare {statistics.median(bare_ttft) * 1000:.0f} ms")
    print(f"median tokens/s: ours {ours:.1f}, bare {bare:.1f}")
    print(f"TTFT turn 10 / turn 1, one subject: {statistics.median(ratios_follow):.2f}x (goal <= 1.5x)")
    print(f"worst TTFT / turn 1, new subject every turn: {statistics.median(ratios_switch):.2f}x "
          "(bounded by the context budget + ~512 tokens of history)")
    print(f"ratio: {ours / bare:.3f}")


if __name__ == "__main__":
    main()
