"""Chat on the real bundled model: retrieval into the prompt as in training, KV reuse, saved history; the Modelfile."""

from __future__ import annotations

import re

import pytest

from mipo_local.chat.session import ChatSession, list_conversations, load_conversation
from mipo_local.context import ContextStore, import_paths
from mipo_local.demo import DEMO_ADDRESSES, demo_sources
from mipo_local.inference.prompt_format import PLACEMENTS, ChatTemplate, chat_messages, system_message
from mipo_local.modelio.modelfile import modelfile_text
from mipo_local.settings import UserSettings

from .helpers import assert_one_line_error, run_cli


@pytest.fixture
def demo_store(mipo_home):
    import_paths(demo_sources(), settings=UserSettings().with_addresses(DEMO_ADDRESSES))
    with ContextStore() as store:
        store.set_user_addresses(DEMO_ADDRESSES)


@pytest.mark.parametrize("context_in", PLACEMENTS)
def test_context_goes_where_training_put_it_and_follow_ups_reuse_the_cache(demo_store, bundled_gguf, context_in):
    with ChatSession(bundled_gguf, max_tokens=24, seed=1, context_in=context_in) as chat:
        first = chat.ask("How is Bjørn the sourdough starter doing?")
        assert first and chat.last.context_changed and chat.last_snippets
        assert any("sourdough" in s.text.lower() or "bjørn" in s.text.lower() for s in chat.last_snippets)
        prompt_1 = chat.last.prompt_tokens
        # the prompt is the training format: the excerpts (system message or user turn), then the request
        rendered = chat.template.render(chat_messages([s.text for s in chat.last_snippets],
                                                      "How is Bjørn the sourdough starter doing?", context_in=context_in))
        assert len(chat.llm.tokenize(rendered.encode(), add_bos=False, special=True)) == prompt_1
        chat.ask("And how often should the sourdough starter Bjørn be fed?")
        # same subject: the context stays and the whole earlier conversation comes from the KV cache
        assert not chat.last.context_changed
        assert chat.last.reused_tokens >= prompt_1
        assert chat.last.prompt_tokens - chat.last.reused_tokens < 80


def test_history_survives_a_restart(demo_store, bundled_gguf):
    with ChatSession(bundled_gguf, max_tokens=16) as chat:
        chat.ask("What is on my list for the Svalbard trip?")
        cid = chat.conversation.id
    saved = load_conversation(cid)
    assert [m["role"] for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[0]["snippets"] and saved.context
    assert [c.id for c in list_conversations()] == [cid]
    with ChatSession(bundled_gguf, conversation=saved, max_tokens=16) as chat:
        chat.ask("Thanks! Anything else?")
        # the second turn's prompt holds the first exchange
        assert chat.last.prompt_tokens > len(chat.llm.tokenize(saved.messages[0]["content"].encode())) + 20
    again = load_conversation(cid)
    assert len(again.messages) == 4 and again.messages[0]["content"] == "What is on my list for the Svalbard trip?"


def test_chat_without_a_personal_model_says_what_to_do(mipo_home):
    assert_one_line_error(run_cli(["chat", "-m", "hello"], mipo_home), "no personal model yet")


def _render_go(template: str, messages: list[dict]) -> str:
    """Evaluate the Go-template subset a Modelfile TEMPLATE uses: range over .Messages, if/else if
    eq .Role "...", {{ .Content }}, literal text."""
    m = re.fullmatch(r"\{\{ range \.Messages \}\}(.*)\{\{ end \}\}\{\{ end \}\}(.*)", template, re.S)
    assert m, template
    body, tail = m.groups()
    branches = dict(re.findall(r'\{\{ (?:if|else if) eq \.Role "(\w+)" \}\}(.*?)(?=\{\{ else if|\Z)', body, re.S))
    out = ""
    for msg in messages:
        out += branches[msg["role"]].replace("{{ .Content }}", msg["content"])
    return out + tail


def test_modelfile_template_matches_the_gguf_chat_template(bundled_gguf):
    text = modelfile_text(bundled_gguf)
    assert f"FROM ./{bundled_gguf.name}" in text
    go = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    stops = re.findall(r'PARAMETER stop "(.*?)"', text)
    jinja = ChatTemplate.from_gguf(bundled_gguf)
    conversation = [{"role": "system", "content": system_message(["Bjørn is fed on Sundays."])},
                    {"role": "user", "content": "When do I feed Bjørn?"},
                    {"role": "assistant", "content": "On Sundays."},
                    {"role": "user", "content": "Thanks.\nAnd the rye?"}]
    assert _render_go(go, conversation) == jinja.render(conversation, add_generation_prompt=True)
    assert "<|im_end|>" in stops


def test_slash_words_are_commands_not_messages(mipo_home):
    """In chat, /help and a mistyped command are answered by the app, never sent to the model; a
    message that begins with "/" is written "//"."""
    import os
    import subprocess

    from .helpers import CLI

    env = {**os.environ, "MIPO_HOME": str(mipo_home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(CLI + ["chat", "--base"], input="/help\n/bogus words\n/profile\n/quit\n", capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(unknown command '/bogus')" in proc.stdout and "(the base model)" in proc.stdout
    assert not list_conversations()          # nothing was sent: a sent message saves the conversation
