"""`mipo-local serve`: the OpenAI-compatible endpoint on the bundled model, through the official
`openai` client: answers whole and streamed, the user's writing in every prompt as chat puts it,
bad requests refused with a JSON error while the server goes on, an API key, concurrent clients."""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

import openai
import pytest

from mipo_local.chat.openai_protocol import MODEL_ALIAS, model_id
from mipo_local.chat.server import Server, check_exposure, is_loopback
from mipo_local.chat.session import ChatSession
from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import DEMO_ADDRESSES, demo_sources
from mipo_local.settings import UserSettings

from .helpers import assert_one_line_error, run_cli

STARTER = "How is Bjørn the sourdough starter doing?"
PLAIN = ["Name a colour.", "Name a fruit.", "Name an animal.", "Name a city."]   # no writing of the user's matches


@pytest.fixture(scope="module")
def served(module_home, bundled_gguf):
    """The bundled model served over the demo corpus's workspace; every prompt built is kept."""
    import_paths(demo_sources(), settings=UserSettings().with_addresses(DEMO_ADDRESSES))
    with ContextStore() as store:
        store.set_user_addresses(DEMO_ADDRESSES)
    prompts = []
    server = Server(bundled_gguf, port=0, on_prompt=prompts.append).start()
    server.prompts = prompts
    yield server
    server.stop()


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0, timeout=120)


def raw(server, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    """One request by hand (what the openai client would never send)."""
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        conn.request(method, url.path + path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ask(client, text: str, **kwargs) -> str:
    settings = {"temperature": 0, "seed": 1, "max_tokens": 12, **kwargs}
    out = client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": text}], **settings)
    return out.choices[0].message.content


def test_models_lists_the_served_model(client, served, bundled_gguf):
    assert [m.id for m in client.models.list()] == [model_id(bundled_gguf)] == [served.model_id]
    assert served.model_id.startswith("mipo-local/")
    assert client.models.retrieve(served.model_id).id == served.model_id


def test_a_streamed_answer_equals_the_whole_one(client, served):
    messages = [{"role": "user", "content": STARTER}]
    whole = client.chat.completions.create(model=served.model_id, messages=messages, temperature=0, seed=7, max_tokens=16)
    text = whole.choices[0].message.content
    assert text and whole.object == "chat.completion" and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.prompt_tokens > 100 and 0 < whole.usage.completion_tokens <= 16
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    chunks = list(client.chat.completions.create(model=served.model_id, messages=messages, temperature=0, seed=7,
                                                 max_tokens=16, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_the_stream_is_server_sent_events_ending_with_done(served):
    body = json.dumps({"model": MODEL_ALIAS, "messages": [{"role": "user", "content": PLAIN[0]}], "max_tokens": 4,
                       "temperature": 0, "stream": True}).encode()
    status, data = raw(served, "POST", "/chat/completions", body)
    assert status == 200
    events = [e for e in data.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_the_users_writing_reaches_the_prompt_as_in_chat(client, served, bundled_gguf, module_home, monkeypatch):
    answer = client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": STARTER}],
                                            temperature=0, max_tokens=4)
    prompt = served.prompts[-1]
    assert any("Bjørn" in s.title for s in prompt.snippets)
    assert [c["title"] for c in answer.model_extra["mipo_context"]] == [s.title for s in prompt.snippets]
    # chat, on the same workspace, gives the model the very same prompt for the same message
    monkeypatch.setenv("MIPO_HOME", str(module_home))
    with ChatSession(bundled_gguf, max_tokens=1, temperature=0, save=False) as chat:
        chat.ask(STARTER)
        assert chat.last_snippets == prompt.snippets
        assert chat.last_messages == prompt.messages
        assert chat.last.prompt_tokens == len(prompt.tokens)


def test_the_conversation_and_a_system_message_come_from_the_client(client, served):
    client.chat.completions.create(model=MODEL_ALIAS, max_tokens=2, messages=[
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": [{"type": "text", "text": PLAIN[1]}]}])
    messages = served.prompts[-1].messages
    assert messages[0]["role"] == "system" and messages[0]["content"].endswith("\n\nAnswer in French.")
    assert [m["content"] for m in messages[1:]] == ["Hi!", "Hello, how can I help?", PLAIN[1]]


def test_nulls_mean_the_defaults(served):
    body = {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": PLAIN[0]}], "n": None, "temperature": None,
            "top_p": None, "stop": None, "seed": None, "max_completion_tokens": None, "max_tokens": 2}
    status, data = raw(served, "POST", "/chat/completions", json.dumps(body).encode())
    assert status == 200 and json.loads(data)["usage"]["completion_tokens"] <= 2


def test_sampling_settings_are_honoured(client):
    text = ask(client, STARTER, max_tokens=40, stop=["."])
    assert "." not in text
    assert ask(client, PLAIN[2], max_tokens=3, temperature=1.0, seed=5) == ask(client, PLAIN[2], max_tokens=3, temperature=1.0, seed=5)
    out = client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": STARTER}], max_tokens=2)
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens <= 2


@pytest.mark.parametrize("body,status,says", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"model": MODEL_ALIAS}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400, "last message"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(), 404, "does not exist"),
    (json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode(), 413, "larger than"),
], ids=["invalid-json", "not-an-object", "no-messages", "last-not-user", "bad-temperature", "unknown-model", "oversized"])
def test_a_bad_request_is_a_json_error_and_the_server_goes_on(served, client, body, status, says):
    got, data = raw(served, "POST", "/chat/completions", body)
    assert got == status
    error = json.loads(data)["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert ask(client, PLAIN[0], max_tokens=2)


def test_unknown_model_through_the_client_and_unknown_paths(client, served):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"
    status, data = raw(served, "GET", "/nowhere")
    assert status == 404 and "error" in json.loads(data)


def test_a_client_that_leaves_mid_stream_does_not_block_the_next(client):
    stream = client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": STARTER}],
                                            max_tokens=400, temperature=0, stream=True)
    next(iter(stream))
    stream.close()
    assert ask(client, PLAIN[3], max_tokens=2)


def test_four_concurrent_clients_queue_and_all_get_their_whole_answer(client, served):
    alone = {q: ask(client, q) for q in PLAIN}
    answers, errors = {}, []

    def one(i: int, q: str) -> None:
        try:
            c = openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0, timeout=120)
            if i % 2:
                chunks = c.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": q}],
                                                   temperature=0, seed=1, max_tokens=12, stream=True)
                answers[q] = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            else:
                answers[q] = ask(c, q)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, q)) for i, q in enumerate(PLAIN)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert answers == alone     # none dropped, none mixed with another's


def test_an_api_key_is_required_when_given(bundled_gguf):
    with Server(bundled_gguf, port=0, api_key="s3cret").start() as server:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0).models.list()
        status, data = raw(server, "POST", "/chat/completions", b"{}")
        assert status == 401 and json.loads(data)["error"]["type"] == "authentication_error"
        assert [m.id for m in openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0).models.list()]


def test_listening_beyond_loopback_needs_a_key(mipo_home, monkeypatch):
    monkeypatch.delenv("MIPO_API_KEY", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    check_exposure("0.0.0.0", "a-key")
    assert_one_line_error(run_cli(["serve", "--base", "--host", "0.0.0.0"], mipo_home), "API key", "--api-key")
