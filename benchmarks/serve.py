"""Serving speed: `mipo-local serve` over HTTP against bare llama-cpp-python on the same GGUF.

Ours: `mipo-local serve --base` in its own process on the demo corpus's workspace, asked over HTTP
with streaming (server-sent events read as they come): the whole path a client sees, retrieval of
the user's writing, the prompt in the model's template, the worker thread, Starlette and uvicorn.
Bare: `Llama.create_chat_completion(stream=True)` in this process, with the same llama.cpp settings
(n_ctx 4096, flash attention, one thread per physical core), on the very messages ours built for the
same question (the same retrieval and prompt code). The two alternate, question by question, the
same questions, the same number of new tokens at most, greedy. Measured per request: time to first
token (TTFT) and tokens/s of the answer; then requests/s with one client and with 4 concurrent
clients (the server answers one at a time: none is dropped, the throughput should not drop).

Run: .venv/bin/python benchmarks/serve.py      last line: ratio (our tokens/s over bare)
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTIONS = [
    "How is Bjørn the sourdough starter doing?",
    "What is on my packing list for the Svalbard trip?",
    "What are my paper ideas?",
    "What am I bringing to the bake sale?",
    "When is the next choir rehearsal?",
    "Remind me about the allotment garden.",
    "Write a short note to a friend about the weekend.",
    "What should I read next?",
]
MAX_TOKENS = 64
REPS = 2
CONCURRENT = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask_stream(port: int, question: str, max_tokens: int = MAX_TOKENS) -> tuple[float, float, int, str]:
    """One streamed request: (TTFT, total seconds, content chunks, text)."""
    body = json.dumps({"model": "mipo-local", "messages": [{"role": "user", "content": question}], "stream": True,
                       "max_tokens": max_tokens, "temperature": 0, "seed": 1}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    first, n, pieces = None, 0, []
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        choices = json.loads(line[6:])["choices"]
        piece = choices[0]["delta"].get("content") if choices else None
        if piece:
            if first is None:
                first = time.perf_counter() - start
            n += 1
            pieces.append(piece)
    total = time.perf_counter() - start
    conn.close()
    return first or total, total, n, "".join(pieces)


def start_server(home: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "MIPO_HOME": home}
    proc = subprocess.Popen([sys.executable, "-m", "mipo_local", "serve", "--base", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start: {proc.stdout.read()}")


def messages_for(question: str) -> list[dict]:
    """The messages ours builds for a question (retrieval and placement as in chat)."""
    from mipo_local.chat.session import prompt_settings, retrieve
    from mipo_local.inference.prompt_format import chat_messages
    from mipo_local.modelio.catalog import default_card

    settings = prompt_settings(default_card().local_path())
    snippets = retrieve(question, settings.context_tokens)[1]
    return chat_messages([s.text for s in snippets] or None, question, context_in=settings.context_in)


def bare_stream(llm, messages: list[dict]) -> tuple[float, float, int, str]:
    start = time.perf_counter()
    first, n, pieces = None, 0, []
    for chunk in llm.create_chat_completion(messages, max_tokens=MAX_TOKENS, temperature=0.0, top_p=0.95,
                                            repeat_penalty=1.1, seed=1, stream=True):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - start
            n += 1
            pieces.append(piece)
    total = time.perf_counter() - start
    return first or total, total, n, "".join(pieces)


def tps(first: float, total: float, n: int) -> float:
    return (n - 1) / (total - first) if n > 1 and total > first else 0.0


def main() -> None:
    home = tempfile.mkdtemp(prefix="mipo-bench-serve-")
    os.environ["MIPO_HOME"] = home
    from mipo_local.context import ContextStore, import_paths
    from mipo_local.demo import DEMO_ADDRESSES, demo_sources
    from mipo_local.inference.llama_runtime import open_llama
    from mipo_local.modelio.catalog import default_card
    from mipo_local.settings import UserSettings

    import_paths(demo_sources(), settings=UserSettings().with_addresses(DEMO_ADDRESSES))
    with ContextStore() as store:
        store.set_user_addresses(DEMO_ADDRESSES)
    gguf = default_card().local_path()
    port = free_port()
    server = start_server(home, port)
    llm = open_llama(gguf, n_ctx=4096, flash_attn=True)
    print(f"model: {gguf.name}; {len(QUESTIONS)} questions x {REPS}, up to {MAX_TOKENS} new tokens, greedy")
    try:
        ask_stream(port, "Hello!", 4)                   # warm both up
        bare_stream(llm, messages_for("Hello!"))
        ours, bare, same = [], [], 0
        for rep in range(REPS):
            for q in QUESTIONS:
                o = ask_stream(port, q)
                b = bare_stream(llm, messages_for(q))
                ours.append(o)
                bare.append(b)
                same += o[3] == b[3]
        o_tps = statistics.median(tps(*r[:3]) for r in ours)
        b_tps = statistics.median(tps(*r[:3]) for r in bare)
        o_ttft = statistics.median(r[0] for r in ours)
        b_ttft = statistics.median(r[0] for r in bare)
        print(f"median TTFT: ours {o_ttft * 1000:.0f} ms, bare {b_ttft * 1000:.0f} ms (+{(o_ttft - b_ttft) * 1000:.0f} ms)")
        print(f"median tokens/s: ours {o_tps:.1f}, bare {b_tps:.1f}; same answer text {same}/{len(ours)}")
        llm.close()
        llm = None

        def run_clients(clients: int) -> float:
            jobs = [q for _ in range(REPS) for q in QUESTIONS]
            done, lock = [], threading.Lock()

            def client() -> None:
                while True:
                    with lock:
                        if not jobs:
                            return
                        q = jobs.pop()
                    r = ask_stream(port, q)
                    with lock:
                        done.append(r)

            start = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            assert len(done) == REPS * len(QUESTIONS) and all(r[2] > 0 for r in done), "a request was dropped"
            return len(done) / wall

        one = run_clients(1)
        four = run_clients(CONCURRENT)
        print(f"requests/s: 1 client {one:.3f}, {CONCURRENT} concurrent clients {four:.3f} "
              f"({REPS * len(QUESTIONS)} requests each, all answered)")
        print(f"ratio: {o_tps / b_tps:.3f}")
    finally:
        if llm is not None:
            llm.close()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
