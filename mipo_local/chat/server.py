"""An OpenAI-compatible HTTP endpoint for the personal model: `/v1/models` and `/v1/chat/completions`
(streamed as server-sent events, or whole), so editors, Open WebUI and scripts can use it.

Every request is answered the way chat answers a message (`chat.ChatModel`); what a request may say,
the prompt built for it and the bodies sent back are the protocol's (`chat.openai_protocol`). The
client owns the conversation: the server keeps no state between requests, beyond llama.cpp's KV cache
of the previous prompt (a follow-up that repeats the earlier turns decodes only what changed).

One model, one llama.cpp context: a single worker thread answers the requests one after another, in
the order they came (none is dropped). Built on Starlette (ASGI; the parsing, routing and SSE framing
are the library's) served by uvicorn, the pair llama-cpp-python's own server runs on. Nothing of the
user's data is logged; the only socket is the one the server listens on. Beyond loopback it listens
only with an API key.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import MipoError
from .openai_protocol import (
    DEFAULTS,
    MODEL_ALIAS,
    SSE_DONE,
    ApiError,
    ChatRequest,
    Completion,
    Prompt,
    build_prompt,
    error_chunk,
    http_error,
    internal_error,
    model_card,
    model_failed,
    model_id,
    model_list,
    not_json,
    parse_request,
    too_large,
    unknown_model,
    usage,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 1 << 20            # a request body larger than this is refused (413)
API_KEY_ENV = "MIPO_API_KEY"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- security -------------------------------------------------------------------------------------

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


def check_key(request, api_key: Optional[str]) -> None:
    """A request's `Authorization: Bearer KEY`, when the server has a key (compared in constant time)."""
    if not api_key:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "a valid API key is needed: send `Authorization: Bearer KEY`",
                       type="authentication_error", code="invalid_api_key")


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
                job.emit(("error", model_failed(exc)))

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


class _Reply:
    """One request's job, given to the worker, and the events the worker sends back for it, handed
    from the worker's thread to the event loop's queue."""

    def __init__(self, req: ChatRequest, worker: Worker) -> None:
        import asyncio

        self.loop = asyncio.get_running_loop()
        self.events: "asyncio.Queue[tuple]" = asyncio.Queue()
        self.job = _Job(req, self.emit)
        worker.submit(self.job)

    def emit(self, event: tuple) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:          # the event loop is gone (shutting down)
            self.job.cancelled.set()

    async def prompt(self) -> Prompt:
        """The prompt the worker built, once it comes to this job; its ApiError when it could not."""
        try:
            kind, value = await self.events.get()
        except BaseException:
            self.job.cancelled.set()
            raise
        if kind == "error":
            raise value
        return value

    async def next(self) -> tuple:
        return await self.events.get()

    def cancel(self) -> None:
        self.job.cancelled.set()


# -- the HTTP application -------------------------------------------------------------------------

def _error_response(exc: ApiError):
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _read_json(request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    try:
        return json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise not_json() from None


class Handlers:
    """The endpoints of one served model: its card, its API key, the body limit and the worker that
    answers (started and stopped with the application, `lifespan`)."""

    def __init__(self, model, *, api_key: Optional[str], max_body: int, use_context: bool,
                 on_prompt: Optional[Callable[[Prompt], None]]) -> None:
        self.model, self.api_key, self.max_body = model, api_key, max_body
        self.use_context, self.on_prompt = use_context, on_prompt
        self.served_id = model_id(model.adapter or model.path)
        self.served = {self.served_id, MODEL_ALIAS}
        self.card = model_card(self.served_id, int(Path(model.adapter or model.path).stat().st_mtime))
        self.worker: Optional[Worker] = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.worker = Worker(self.model, use_context=self.use_context, on_prompt=self.on_prompt)
        try:
            yield
        finally:
            self.worker.stop()

    async def models(self, request):
        from starlette.responses import JSONResponse

        check_key(request, self.api_key)
        return JSONResponse(model_list(self.card))

    async def one_model(self, request):
        from starlette.responses import JSONResponse

        check_key(request, self.api_key)
        if request.path_params["name"] not in self.served:
            raise unknown_model(request.path_params["name"])
        return JSONResponse(self.card)

    async def chat_completions(self, request):
        check_key(request, self.api_key)
        req = parse_request(await _read_json(request, self.max_body), self.served)
        reply = _Reply(req, self.worker)
        prompt = await reply.prompt()
        completion = Completion.of(self.served_id, prompt)
        if req.stream:
            return self._streamed(req, reply, prompt, completion)
        return await self._whole(reply, prompt, completion)

    def _usage(self, prompt: Prompt, text: str) -> dict:
        return usage(len(prompt.tokens), self.model.count(text) if text else 0)

    async def _whole(self, reply: _Reply, prompt: Prompt, completion: Completion):
        """The answer in one JSON body, once the model is done."""
        from starlette.responses import JSONResponse

        pieces = []
        try:
            while True:
                kind, value = await reply.next()
                if kind == "piece":
                    pieces.append(value)
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            reply.cancel()        # a no-op when done; stops the model when the client left
        text = "".join(pieces)
        return JSONResponse(completion.body(text, value, self._usage(prompt, text)))

    def _streamed(self, req: ChatRequest, reply: _Reply, prompt: Prompt, completion: Completion):
        """The answer as server-sent events, a chunk per piece as the model makes it."""
        from starlette.responses import StreamingResponse

        return StreamingResponse(self._events(req, reply, prompt, completion), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    async def _events(self, req: ChatRequest, reply: _Reply, prompt: Prompt, completion: Completion):
        pieces = []
        try:
            yield completion.first_chunk()
            while True:
                kind, value = await reply.next()
                if kind == "piece":
                    pieces.append(value)
                    yield completion.chunk({"content": value})
                elif kind == "error":
                    yield error_chunk(value)
                    break
                else:
                    yield completion.chunk({}, value)
                    if req.include_usage:
                        yield completion.usage_chunk(self._usage(prompt, "".join(pieces)))
                    break
            yield SSE_DONE
        finally:
            reply.cancel()


async def _api_error(request, exc: ApiError):
    return _error_response(exc)


async def _http_error(request, exc):
    return _error_response(http_error(exc.status_code, str(exc.detail)))


async def _server_error(request, exc: Exception):
    return _error_response(internal_error(exc))


def create_app(model, *, api_key: Optional[str] = None, max_body: int = MAX_BODY_BYTES, use_context: bool = True,
               on_prompt: Optional[Callable[[Prompt], None]] = None):
    """The Starlette application serving `model` (a `chat.ChatModel`). `on_prompt` is called (in the
    worker thread) with every prompt built, before the model answers."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    handlers = Handlers(model, api_key=api_key, max_body=max_body, use_context=use_context, on_prompt=on_prompt)
    routes = [Route("/v1/models", handlers.models), Route("/v1/models/{name:path}", handlers.one_model),
              Route("/v1/chat/completions", handlers.chat_completions, methods=["POST"])]
    return Starlette(routes=routes, lifespan=handlers.lifespan,
                     exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error})


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
        from ..context.store import store_path
        from .session import ChatModel

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
