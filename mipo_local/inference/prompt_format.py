"""How the user's context is put in front of the model — one format for pairs, training, evaluation
and chat.

The context goes either into the system message or, before the request, into the user's turn (as the
MIPO authors' code does; `CONTEXT_IN` is the default, chosen by the sweep in BENCHMARKS.md). A prompt
without context is the same prompt minus the context block, so the only difference between a MIPO
positive and its `drop` negative is the user's context.

The model's own chat template (`ChatTemplate`) is analysed here too: the role wrappers it writes
around each turn and the strings that end a turn, which chat stops on and the Ollama Modelfile repeats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from ..errors import MipoError

SYSTEM_BASE = "You are a helpful personal assistant."
CONTEXT_HEADER = ("Below are excerpts from the user's own notes and emails. Use what is relevant in them "
                  "to answer the way this user would want.")
USER_CONTEXT_HEADER = "Excerpts from my own notes and emails, for context:"
CHUNK_SEPARATOR = "\n---\n"
PLACEMENTS = ("system", "user")
CONTEXT_IN = "user"             # where the context goes unless a run says otherwise


# Chat-template control tokens of the families in the catalog and beyond: ChatML/Qwen/Llama 3/Phi
# `<|…|>`, Llama 2/Mistral `[INST]` and `<s>`, Gemma `<start_of_turn>`. The user's text is data:
# such a string in a note or an email must never become a turn of the conversation.
_CONTROL = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>|<\|?(?:eot_id|eos|bos)\|?>")
_BREAK = "\u200b"    # a zero-width space after the first character: the same text to a reader, no token


def as_data(text: str) -> str:
    """`text` with every control-token string broken up, so no tokenizer (llama.cpp's with special
    tokens parsed, or transformers') can read it as one; everything else unchanged."""
    return _CONTROL.sub(lambda m: m.group(0)[0] + _BREAK + m.group(0)[1:], text)


def _excerpts(context: Sequence[str]) -> str:
    return CHUNK_SEPARATOR.join(as_data(c.strip()) for c in context)


def system_message(context: Optional[Sequence[str]]) -> str:
    """The system message holding a context (a list of excerpts), or the bare one for no context."""
    if not context:
        return SYSTEM_BASE
    return f"{SYSTEM_BASE}\n\n{CONTEXT_HEADER}\n\n" + _excerpts(context)


def user_message(context: Optional[Sequence[str]], request: str) -> str:
    """The user's turn holding a context before the request, or the bare request for no context."""
    if not context:
        return as_data(request)
    return f"{USER_CONTEXT_HEADER}\n\n{_excerpts(context)}\n\n---\n\n{as_data(request)}"


def chat_messages(context: Optional[Sequence[str]], request: str, history: Sequence[dict] = (), *,
                  context_in: str = CONTEXT_IN) -> list[dict]:
    """Messages in the conversational format (trl's `prompt`): system, history, user; the context in
    the system message or in the (last) user turn, as `context_in` says."""
    if context_in not in PLACEMENTS:
        raise MipoError(f"unknown context placement {context_in!r}; choose one of {', '.join(PLACEMENTS)}")
    history = [{**m, "content": as_data(m["content"])} for m in history]
    if context_in == "system":
        return [{"role": "system", "content": system_message(context)}, *history,
                {"role": "user", "content": as_data(request)}]
    return [{"role": "system", "content": SYSTEM_BASE}, *history,
            {"role": "user", "content": user_message(context, request)}]


def placement_of(messages: Sequence[dict]) -> str:
    """Where a prompt made by `chat_messages` holds its context: "system" when the system message
    carries more than the bare one, else "user"."""
    return "system" if messages and messages[0].get("content") != SYSTEM_BASE else "user"


class ChatTemplate:
    """The model's own chat template (Jinja, from the GGUF's `tokenizer.chat_template`), rendered
    the way llama.cpp and transformers render it."""

    def __init__(self, template: str, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loader=jinja2.BaseLoader())

        def raise_exception(message: str):
            raise jinja2.exceptions.TemplateError(message)

        env.globals["raise_exception"] = raise_exception
        self.source = template
        self.template = env.from_string(template)
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        return self.template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                    bos_token=self.bos_token, eos_token=self.eos_token)

    @classmethod
    def from_gguf(cls, path) -> "ChatTemplate":
        from .gguf_scan import scan_gguf

        meta = scan_gguf(path).metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise MipoError(f"{path} has no chat template (tokenizer.chat_template); pick an instruct model")
        tokens = meta.get("tokenizer.ggml.tokens") or []

        def token(key: str) -> str:
            i = meta.get(key)
            return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else ""

        return cls(template, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))


# role wrappers: what a chat template writes around each turn, found by rendering marker messages
_MARK = {"system": "MIPOMARKSYSTEM", "user": "MIPOMARKUSER", "assistant": "MIPOMARKASSISTANT"}


@dataclass(frozen=True)
class RoleWrappers:
    """What the chat template writes before and after each role's content, and the generation prompt."""
    prefix: dict
    suffix: dict
    generation: str

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        text = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return text + (self.generation if add_generation_prompt else "")


def _between(text: str, a: str, b: str) -> str:
    i, j = text.index(a) + len(a), text.index(b)
    return text[i:j]


def role_wrappers(template: ChatTemplate) -> RoleWrappers:
    """Role prefixes/suffixes of `template`, assuming (as ChatML and Llama 3 do) that every turn ends
    the same way; raises MipoError when the result does not reproduce the template."""
    S, U, A = _MARK["system"], _MARK["user"], _MARK["assistant"]
    msgs = [{"role": "system", "content": S}, {"role": "user", "content": U}, {"role": "assistant", "content": A}]
    # a template that writes bos_token itself: llama.cpp and Ollama add BOS when tokenizing
    bos = template.bos_token if template.bos_token and "bos_token" in template.source else ""

    def render(messages, gen):
        text = template.render(messages, add_generation_prompt=gen)
        return text[len(bos):] if bos and text.startswith(bos) else text

    try:
        full = render(msgs, False)
        asked, plain = render(msgs[:2], True), render(msgs[:2], False)
        if not asked.startswith(plain):
            raise MipoError("the generation prompt is not appended at the end")
        generation = asked[len(plain):]
        end_of_turn = _between(full, U, A)
        if not end_of_turn.endswith(generation):
            raise MipoError("the assistant turn does not start with the generation prompt")
        end_of_turn = end_of_turn[: len(end_of_turn) - len(generation)]
        after_system = _between(full, S, U)
        if not after_system.startswith(end_of_turn):
            raise MipoError("turns do not all end the same way")
        wrappers = RoleWrappers(
            prefix={"system": full[: full.index(S)], "user": after_system[len(end_of_turn):], "assistant": generation},
            suffix={"system": end_of_turn, "user": end_of_turn, "assistant": full[full.index(A) + len(A):]},
            generation=generation,
        )
    except MipoError:
        raise
    except Exception as exc:  # noqa: BLE001 - a marker missing (ValueError), or an error in the template
        raise MipoError(f"the chat template could not be analysed ({exc})") from None
    for conversation in _checks():
        for gen in (True, False):
            if conversation[-1]["role"] == "assistant" and gen:
                continue
            if wrappers.render(conversation, gen) != render(conversation, gen):
                raise MipoError("the chat template does not wrap every turn the same way")
    return wrappers


def _checks() -> list[list[dict]]:
    sys_ = {"role": "system", "content": "You are kind.\nBe brief."}
    u1, a1 = {"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi! How can I help?"}
    u2 = {"role": "user", "content": "Plan my week,\nplease."}
    return [[sys_, u1], [sys_, u1, a1, u2], [sys_, u1, a1], [sys_, u1, a1, u2, {"role": "assistant", "content": "Sure."}]]


def stop_strings(template: ChatTemplate, wrappers: Optional[RoleWrappers]) -> list[str]:
    """Where generation stops: the end of an assistant turn (when the wrappers are known) and the EOS token."""
    stops = []
    if wrappers:
        end = wrappers.suffix["assistant"].strip()
        if end:
            stops.append(end)
    if template.eos_token and template.eos_token not in stops:
        stops.append(template.eos_token)
    return stops
