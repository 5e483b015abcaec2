"""An OpenAI-compatible HTTP endpoint for the personal model: `/v1/models` and `/v1/chat/completions`
(streamed as server-sent events, or whole), so editors, Open WebUI and scripts can use it.

Every request is answered the way chat answers a message (`chat.ChatModel`): the last user message is
the query, the user's most relevant writing is retrieved for it and put where the model's run put it
in training (the system message or the user's turn), the conversation is rendered in the model's own
chat template and streamed through llama.cpp. The client owns the conversation: the server keeps no
state between requests, beyond llama.cpp's KV cache of the previous prompt (a follow-up that repeats
the earlier turns decodes only what changed). A system message from the client is added after the
app's own system prompt; when the conversation does not fit the model's window, its oldest turns are
left out.

One model, one llama.cpp context: a single worker thread answers the requests one after another, in
the order they came (none is dropped). Built on Starlette (ASGI; the parsing, routing and SSE framing
are the library's) served by uvicorn, the pair llama-cpp-python's own server runs on. Nothing of the
user's data is logged; the only socket is the one the server listens on.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import MipoError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 1 << 20            # a request body larger than this is refused (413)
API_KEY_ENV = "MIPO_API_KEY"
MODEL_ALIAS = "mipo-local"          # always accepted as the model name of a request
SYSTEM_ROLES = ("system", "developer")
DEFAULTS = {"temperature": 0.7, "top_p": 0.95, "repeat_penalty": 1.1}   # chat's sampling (ChatSession)
RESERVE_TOKENS = 256                # room kept for the answer when max_tokens is not given


class ApiError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error object."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: Optional[str]) -> None:
    """Listening beyond loopback needs an API key: anyone who reaches the port could read the user's
    writing through the model's answers."""
    if not is_loopback(host) and not api_key:
        raise MipoError(f"listening on {host} lets other machines ask your model about your writing; give an API "
                        f"key (--api-key KEY or ${API_KEY_ENV}) or listen on {DEFAULT_HOST}")


def model_id(path: Path) -> str:
    """The served model's id: `mipo-local/` and the run that made it (or the GGUF's name)."""
    path = Path(path)
    name = path.parent.name if path.parent.name.startswith("run-") else path.name.removesuffix(".gguf")
    return f"{MODEL_ALIAS}/{name}"


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


def parse_request(data: Any, served: set) -> ChatRequest:
    """Check a request body; ApiError (400, or 404 for a model this server does not serve)."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = data.get("model")
    if model is not None and model not in served:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {', '.join(sorted(served))}",
                       param="model", code="model_not_found")
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
    if data.get("n") not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    stop = data.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "stop must be a string or a list of up to 4 strings", param="stop")
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
    from .prompt_format import as_data, chat_messages

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


# -- the worker: one thread owns the model ---------------------------------------------------------

@dataclass
class _Job:
    request: ChatRequest
    emit: Callable[[tuple], None]    # ("ready", Prompt) | ("piece", str) | ("done", finish_reason) | ("error", exc)
    cancelled: threading.Event = field(default_factory=threading.Event)


class Worker:
    """The one thread that uses the model: jobs are answered one at a time, first come first served."""

    def __init__(self, model, *, use_context: bool = True, on_prompt: Optional[Callable[[Prompt], None]] = None) -> None:
        self.model = model
        self.use_context = use_context
        self.on_prompt = on_prompt
        self.jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="mipo-serve-model", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def stop(self, timeout: float = 30.0) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if job.cancelled.is_set():
                continue
            try:
                self._answer(job)
            except ApiError as exc:
                job.emit(("error", exc))
            except Exception as exc:    # noqa: BLE001 - the server goes on; the client gets a 500
                job.emit(("error", ApiError(500, f"the model failed: {type(exc).__name__}", type="server_error")))

    def _answer(self, job: _Job) -> None:
        req, model = job.request, self.model
        prompt = build_prompt(model, req, self.use_context)
        if self.on_prompt is not None:
            self.on_prompt(prompt)
        job.emit(("ready", prompt))
        room = model.n_ctx - len(prompt.tokens)
        pieces = model.stream(prompt.tokens, max_tokens=min(req.max_tokens or room, room), temperature=req.temperature,
                              top_p=req.top_p, repeat_penalty=DEFAULTS["repeat_penalty"], stop=req.stop, seed=req.seed,
                              presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty)
        try:
            for piece in pieces:
                if job.cancelled.is_set():     # the client went away
                    return
                job.emit(("piece", piece))
        finally:
            pieces.close()
        job.emit(("done", model.finish_reason))


# -- the HTTP application -------------------------------------------------------------------------

def _error_response(exc: ApiError):
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _read_json(request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
    try:
        return json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


def create_app(model, *, api_key: Optional[str] = None, max_body: int = MAX_BODY_BYTES, use_context: bool = True,
               on_prompt: Optional[Callable[[Prompt], None]] = None):
    """The Starlette application serving `model` (a `chat.ChatModel`). `on_prompt` is called (in the
    worker thread) with every prompt built, before the model answers."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    served_id = model_id(model.adapter or model.path)
    served = {served_id, MODEL_ALIAS}
    created = int(Path(model.adapter or model.path).stat().st_mtime)
    card = {"id": served_id, "object": "model", "created": created, "owned_by": MODEL_ALIAS}
    worker: Optional[Worker] = None

    def check_key(request) -> None:
        if not api_key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "a valid API key is needed: send `Authorization: Bearer KEY`",
                           type="authentication_error", code="invalid_api_key")

    async def models(request):
        check_key(request)
        return JSONResponse({"object": "list", "data": [card]})

    async def one_model(request):
        check_key(request)
        if request.path_params["name"] not in served:
            raise ApiError(404, f"the model {request.path_params['name']!r} does not exist", code="model_not_found")
        return JSONResponse(card)

    async def chat_completions(request):
        check_key(request)
        req = parse_request(await _read_json(request, max_body), served)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event: tuple) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:          # the event loop is gone (shutting down)
                job.cancelled.set()

        job = _Job(req, emit)
        worker.submit(job)
        try:
            kind, value = await events.get()
        except BaseException:
            job.cancelled.set()
            raise
        if kind == "error":
            raise value
        prompt: Prompt = value
        cid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        context = [{"title": s.title, "kind": s.kind} for s in prompt.snippets]

        def usage(text: str) -> dict:
            n = model.count(text) if text else 0
            return {"prompt_tokens": len(prompt.tokens), "completion_tokens": n, "total_tokens": len(prompt.tokens) + n}

        if not req.stream:
            pieces = []
            try:
                while True:
                    kind, value = await events.get()
                    if kind == "piece":
                        pieces.append(value)
                    elif kind == "error":
                        raise value
                    else:
                        break
            finally:
                job.cancelled.set()        # a no-op when done; stops the model when the client left
            text = "".join(pieces)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": now, "model": served_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": value}],
                "usage": usage(text), "mipo_context": context,
            })

        def chunk(delta: dict, finish: Optional[str] = None, **extra) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": served_id,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def sse():
            pieces = []
            try:
                yield chunk({"role": "assistant", "content": ""}, mipo_context=context)
                while True:
                    kind, value = await events.get()
                    if kind == "piece":
                        pieces.append(value)
                        yield chunk({"content": value})
                    elif kind == "error":
                        yield f"data: {json.dumps(value.body())}\n\n"
                        break
                    else:
                        yield chunk({}, value)
                        if req.include_usage:
                            body = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": served_id,
                                    "choices": [], "usage": usage("".join(pieces))}
                            yield f"data: {json.dumps(body)}\n\n"
                        break
                yield "data: [DONE]\n\n"
            finally:
                job.cancelled.set()

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def api_error(request, exc: ApiError):
        return _error_response(exc)

    async def http_error(request, exc: HTTPException):
        message = {404: "no such endpoint; this server has /v1/models and /v1/chat/completions",
                   405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return _error_response(ApiError(exc.status_code, message))

    async def server_error(request, exc: Exception):
        return _error_response(ApiError(500, f"internal error: {type(exc).__name__}", type="server_error"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        nonlocal worker
        worker = Worker(model, use_context=use_context, on_prompt=on_prompt)
        try:
            yield
        finally:
            worker.stop()

    routes = [Route("/v1/models", models), Route("/v1/models/{name:path}", one_model),
              Route("/v1/chat/completions", chat_completions, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error})


# -- the server -----------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a clear MipoError when it can't be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise MipoError(f"cannot listen on {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise MipoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Server:
    """`mipo-local serve`: the model opened for chat, a socket bound, then `run()` (blocks until
    Ctrl-C) or `start()` (in a thread, for tests and benchmarks; `stop()` ends it)."""

    def __init__(self, model, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 api_key: Optional[str] = None, n_ctx: int = 4096, max_body: int = MAX_BODY_BYTES,
                 use_context: bool = True, on_prompt: Optional[Callable[[Prompt], None]] = None) -> None:
        """`model`: a GGUF, or a `profiles.ProfileModel` (its base with its LoRA adapter, retrieval
        from its sources)."""
        from .chat import ChatModel
        from .context.store import store_path

        api_key = api_key or os.environ.get(API_KEY_ENV) or None
        check_exposure(host, api_key)
        self.socket = bind(host, port)
        try:
            if isinstance(model, (str, Path)):
                self.model = ChatModel(model, n_ctx=n_ctx, store=store_path())    # this workspace's, for good
            else:
                self.model = ChatModel(model.base, n_ctx=n_ctx, store=store_path(), adapter=model.adapter,
                                       sources=model.sources)
        except BaseException:
            self.socket.close()
            raise
        self.host, self.port = host, self.socket.getsockname()[1]
        self.model_id = model_id(self.model.adapter or self.model.path)
        self.app = create_app(self.model, api_key=api_key, max_body=max_body, use_context=use_context,
                              on_prompt=on_prompt)
        self._uvicorn = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def _server(self):
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        return self._uvicorn

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C), then close the model."""
        try:
            self._server().run(sockets=[self.socket])
        finally:
            self.close()

    def start(self, timeout: float = 30.0) -> "Server":
        server = self._server()     # in a thread other than the main one, uvicorn leaves signals alone
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self.socket]}, daemon=True,
                                        name="mipo-serve-http")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MipoError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.close()

    def close(self) -> None:
        if self.socket.fileno() != -1:
            self.socket.close()
        if self.model is not None:
            self.model.close()
            self.model = None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
