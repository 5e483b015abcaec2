"""The OpenAI chat-completions protocol as this server speaks it: a request body checked and parsed
(`parse_request`, or an `ApiError` carrying OpenAI's error object and its HTTP status), the prompt
chat would build for the conversation the client sends (`build_prompt`: the last user message is the
query, the user's most relevant writing is retrieved for it and put where the model's run put it in
training, a system message from the client is added after the app's own system prompt, the oldest
turns are left out when the conversation does not fit the model's window), and the shapes of what
goes back: the model card, the whole completion and the server-sent-event chunks of a streamed one.
No HTTP and no threads here: the server (`chat.server`) moves these shapes over the wire.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MODEL_ALIAS = "mipo-local"          # always accepted as the model name of a request
SYSTEM_ROLES = ("system", "developer")
DEFAULTS = {"temperature": 0.7, "top_p": 0.95, "repeat_penalty": 1.1}   # chat's sampling (ChatSession)
RESERVE_TOKENS = 256                # room kept for the answer when max_tokens is not given
SSE_DONE = "data: [DONE]\n\n"       # the last event of a stream
HTTP_MESSAGES = {404: "no such endpoint; this server has /v1/models and /v1/chat/completions",
                 405: "method not allowed"}


class ApiError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error object."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def http_error(status: int, detail: str) -> ApiError:
    """The error object for an HTTP error the router raised (no such path, a wrong method)."""
    return ApiError(status, HTTP_MESSAGES.get(status, detail))


def internal_error(exc: BaseException) -> ApiError:
    return ApiError(500, f"internal error: {type(exc).__name__}", type="server_error")


def model_failed(exc: BaseException) -> ApiError:
    return ApiError(500, f"the model failed: {type(exc).__name__}", type="server_error")


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")


def not_json() -> ApiError:
    return ApiError(400, "the request body is not valid JSON")


# -- models ---------------------------------------------------------------------------------------

def model_id(path: Path) -> str:
    """The served model's id: `mipo-local/` and the run that made it (or the GGUF's name)."""
    path = Path(path)
    name = path.parent.name if path.parent.name.startswith("run-") else path.name.removesuffix(".gguf")
    return f"{MODEL_ALIAS}/{name}"


def model_card(served_id: str, created: int) -> dict:
    return {"id": served_id, "object": "model", "created": created, "owned_by": MODEL_ALIAS}


def model_list(card: dict) -> dict:
    return {"object": "list", "data": [card]}


def unknown_model(name: str) -> ApiError:
    return ApiError(404, f"the model {name!r} does not exist", code="model_not_found")


# -- requests -------------------------------------------------------------------------------------

@dataclass
class ChatRequest:
    """A parsed `/v1/chat/completions` request."""
    system: str                      # the client's system message(s), joined
    history: list                    # earlier turns: {"role": "user"|"assistant", "content"}
    query: str                       # the last user message: what the user's writing is retrieved for
    stream: bool = False
    include_usage: bool = False
    max_tokens: Optional[int] = None
    temperature: float = DEFAULTS["temperature"]
    top_p: float = DEFAULTS["top_p"]
    stop: list = field(default_factory=list)
    seed: Optional[int] = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, "only text content is supported", param=f"messages[{i}].content")
            parts.append(part["text"])
        return "\n".join(parts)
    raise ApiError(400, "a message's content must be a string or a list of text parts", param=f"messages[{i}].content")


def _number(data: dict, name: str, low: float, high: float, default, kind=float):
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ApiError(400, f"{name} must be {'an integer' if kind is int else 'a number'}", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}", param=name)
    return kind(value)


def _model(data: dict, served: set) -> None:
    model = data.get("model")
    if model is not None and model not in served:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {', '.join(sorted(served))}",
                       param="model", code="model_not_found")


def _messages(data: dict) -> tuple[list, list]:
    """The client's system messages and its turns (user and assistant), the last one the user's."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    system, turns = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, "every message needs a role", param=f"messages[{i}]")
        role, text = m["role"], _content(m, i)
        if role in SYSTEM_ROLES:
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": text})
        else:
            raise ApiError(400, f"unsupported role {role!r}: use system, user or assistant", param=f"messages[{i}].role")
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ApiError(400, "the last message must be the user's, with text", param="messages")
    return system, turns


def _stop(data: dict) -> list:
    stop = data.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "stop must be a string or a list of up to 4 strings", param="stop")
    return stop


def parse_request(data: Any, served: set) -> ChatRequest:
    """Check a request body; ApiError (400, or 404 for a model this server does not serve)."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    _model(data, served)
    system, turns = _messages(data)
    if data.get("n") not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    stop = _stop(data)
    max_tokens = data.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = data.get("max_tokens")
    options = data.get("stream_options") or {}
    return ChatRequest(
        system="\n\n".join(s for s in system if s.strip()), history=turns[:-1], query=turns[-1]["content"].strip(),
        stream=bool(data.get("stream", False)),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        max_tokens=None if max_tokens is None else _number({"max_tokens": max_tokens}, "max_tokens", 1, 1 << 20, None, int),
        temperature=_number(data, "temperature", 0, 2, DEFAULTS["temperature"]),
        top_p=_number(data, "top_p", 0, 1, DEFAULTS["top_p"]),
        stop=stop,
        seed=_number(data, "seed", -(1 << 63), (1 << 63) - 1, None, int),
        presence_penalty=_number(data, "presence_penalty", -2, 2, 0.0),
        frequency_penalty=_number(data, "frequency_penalty", -2, 2, 0.0),
    )


# -- the prompt: chat's, for a conversation the client sends --------------------------------------

@dataclass
class Prompt:
    tokens: list
    messages: list                   # what the model sees (before its chat template)
    snippets: list                   # chat.Snippet: the user's writing given to the model


def build_prompt(model, req: ChatRequest, use_context: bool = True) -> Prompt:
    """The prompt chat would build for `req.query` after `req.history`: the user's writing retrieved
    for the query (`ChatModel.retrieve`), placed by `prompt_format.chat_messages` as the model's run
    placed it. The oldest turns are left out until the answer fits the window."""
    from ..inference.prompt_format import as_data, chat_messages

    snippets = model.retrieve(req.query)[1] if use_context else []
    context = [s.text for s in snippets] or None
    history = list(req.history)
    reserve = min(req.max_tokens or RESERVE_TOKENS, model.n_ctx // 2)
    while True:
        messages = chat_messages(context, req.query, history, context_in=model.context_in)
        if req.system:
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{as_data(req.system)}"}
        tokens = model.prompt_tokens(messages)
        if len(tokens) + reserve <= model.n_ctx or not history:
            break
        history = history[1:]
        while history and history[0]["role"] != "user":   # the history starts with the user's turn
            history = history[1:]
    if len(tokens) + 16 > model.n_ctx:
        raise ApiError(400, f"the conversation is too long for the model's window ({len(tokens)} tokens of "
                            f"{model.n_ctx}); shorten it", param="messages", code="context_length_exceeded")
    return Prompt(tokens, messages, snippets)


# -- responses ------------------------------------------------------------------------------------

def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


@dataclass
class Completion:
    """One answer's identity (its id, when it was made, the model that made it) and the bodies that
    carry it: whole (`body`), or streamed as server-sent events (`chunk`, `usage_chunk`)."""
    model: str
    context: list                    # the user's writing given to the model: {"title", "kind"}, for the client
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def of(cls, model: str, prompt: Prompt) -> "Completion":
        return cls(model, [{"title": s.title, "kind": s.kind} for s in prompt.snippets])

    def body(self, text: str, finish_reason: Optional[str], usage: dict) -> dict:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": usage, "mipo_context": self.context,
        }

    def first_chunk(self) -> str:
        return self.chunk({"role": "assistant", "content": ""}, mipo_context=self.context)

    def chunk(self, delta: dict, finish: Optional[str] = None, **extra) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def usage_chunk(self, usage: dict) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage}
        return f"data: {json.dumps(body)}\n\n"


def error_chunk(exc: ApiError) -> str:
    """An error met mid-stream, after the 200 went out: the error object as the stream's last event."""
    return f"data: {json.dumps(exc.body())}\n\n"
