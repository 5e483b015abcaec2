"""Chat with the personal model through llama.cpp, the user's relevant writing in each turn.

Every turn retrieves the user's most relevant excerpts for the new message and puts them in the
prompt exactly as in training (`prompt_format.chat_messages`, with the placement and budget of the
run that made the model: in the system message, or before the request in the user's turn). The
conversation is rendered in the model's own chat template and streamed. llama.cpp keeps the KV
cache of the previous prompt and decodes only what changed, so a turn costs its new tokens — as
long as the earlier part of the prompt stays the same: the context stays where it was first given
(the system message, or the user turn that brought it). The context is therefore *sticky*: when any of the 12 best matches for the new
message is already in the context (a follow-up on the same subject), or nothing matches (a
"thanks!"), the context stays; when the subject changes, the context is replaced by the new
excerpts and the conversation is decoded again — then only the most recent exchanges (up to
`history_tokens`) are kept in the prompt, so the time to the first token stays bounded.

Conversations are saved after every turn in the workspace's `conversations/` folder and can be
continued later.

Profiles (`mipo_local.chat.profiles`): a session opened on the base GGUF with a profile's LoRA adapter
switches to another profile's adapter at run time (`ChatSession.use_profile`, llama.cpp's
`llama_set_adapters_lora`: no reload), and retrieves from that profile's sources only.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .. import workspace
from ..errors import MipoError
from ..inference.prompt_format import ChatTemplate, chat_messages, role_wrappers, stop_strings, user_message


@dataclass(frozen=True)
class Snippet:
    """One excerpt of the user's writing given to the model."""
    chunk_id: int
    title: str
    kind: str
    text: str


@dataclass
class TurnStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0          # prompt tokens whose KV cache was kept from the previous turn
    new_tokens: int = 0
    ttft: float = 0.0               # seconds to the first streamed piece
    seconds: float = 0.0
    context_changed: bool = False

    @property
    def tokens_per_second(self) -> float:
        gen = self.seconds - self.ttft
        return (self.new_tokens - 1) / gen if self.new_tokens > 1 and gen > 0 else 0.0


@dataclass
class Conversation:
    id: str
    model: str
    created: str
    title: str = ""
    messages: list = field(default_factory=list)     # {"role", "content", "at", ["snippets"]}
    context: list = field(default_factory=list)      # the snippets in the prompt now (as dicts)
    context_turn: Optional[int] = None                # the user message they came with (context in the user turn)

    @property
    def path(self) -> Path:
        return conversations_dir() / f"{self.id}.json"

    def save(self) -> Path:
        return workspace.write_text_atomic(self.path, json.dumps(asdict(self), indent=2, ensure_ascii=False))


def conversations_dir() -> Path:
    return workspace.subdir("conversations")


def list_conversations() -> list[Conversation]:
    """Saved conversations, the most recent first."""
    out = []
    for path in conversations_dir().glob("*.json"):
        try:
            out.append(load_conversation(path.stem))
        except MipoError:
            continue
    return sorted(out, key=lambda c: _when(c.messages[-1]["at"] if c.messages else c.created), reverse=True)


def _when(stamp: str) -> float:
    """A conversation's time stamp as seconds: UTC now, local time in ones saved by older versions."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(stamp).timestamp()   # naive stamps are taken as local time
    except (TypeError, ValueError):
        return 0.0


def load_conversation(conversation_id: str) -> Conversation:
    path = conversations_dir() / f"{conversation_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Conversation(**{k: data[k] for k in ("id", "model", "created", "title", "messages", "context",
                                                     "context_turn") if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        raise MipoError(f"no saved conversation {conversation_id!r}; `mipo-local chat --list` shows them") from None


def chat_model(base: bool = False, base_spec: Optional[str] = None) -> Path:
    """The GGUF to chat with: the active personal model, or (`base`) the base model."""
    if base:
        from ..modelio import base_gguf
        from ..modelio.catalog import resolve_base
        from ..settings import load_settings

        return base_gguf(resolve_base(base_spec or load_settings().base_model or None))
    from .active_model import active_model

    model = active_model()
    if model is None:
        raise MipoError("there is no personal model yet; personalize first with `mipo-local run` "
                        "(or chat with the base model: `mipo-local chat --base`)")
    return model


_now = workspace.now_utc


def prompt_settings(model: Path):
    """The pairs settings a model was trained with (its run's settings.json beside it), so chat puts
    the context where training did; the defaults for a base model or a model from elsewhere."""
    from ..pairs.settings import PairSettings

    try:
        data = json.loads((Path(model).parent / "settings.json").read_text()).get("pairs") or {}
        known = {f for f in PairSettings.__dataclass_fields__}
        return PairSettings(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return PairSettings()


def retrieve(text: str, context_tokens: int, store: Optional[Path] = None, sources: Optional[Sequence[int]] = None):
    """The user's writing for a message, as chat gives it to the model: the 12 best matches that are
    relevant to `text` (hits), and those of them that fit the budget of `context_tokens` (snippets).
    From the context store at `store` (default: the workspace's); only from `sources` (a profile's
    source ids) when given."""
    from ..context import ContextStore
    from ..context.retrieval import fit_context, relevant_hits

    with ContextStore(store, sources=sources) as store:
        hits = relevant_hits(text, store.search(text, 12))
    return hits, [Snippet(h.chunk_id, h.title, h.kind, h.text) for h in fit_context(hits, context_tokens)]


class ChatModel:
    """One GGUF opened for chat through llama.cpp: its own chat template, the strings that end a turn,
    and where (and how much of) the user's context its run put in the prompt. ChatSession and the
    server (`mipo_local.chat.server`) both talk through it, so they build and stream prompts the same way.
    Not thread-safe: one generation at a time."""

    def __init__(self, model: Path, *, n_ctx: int = 4096, seed: int = 0, context_tokens: Optional[int] = None,
                 context_in: Optional[str] = None, store: Optional[Path] = None, adapter: Optional[Path] = None,
                 sources: Optional[Sequence[int]] = None) -> None:
        from ..inference.llama_runtime import open_llama

        self.path = Path(model)
        self.template = ChatTemplate.from_gguf(self.path)
        self.llm = open_llama(self.path, n_ctx=n_ctx, flash_attn=True, seed=seed)
        self._asked = (context_tokens, context_in)
        self._adapters: dict[Path, object] = {}     # loaded LoRA adapters (freed with the model)
        self.adapter: Optional[Path] = None
        self.sources = sources       # the source ids retrieval searches (a profile's); None: every source
        self._prompt_settings(self.path)
        self.n_ctx = n_ctx
        self.store = store           # the context store retrieved from (None: the workspace's at each message)
        if adapter is not None:
            try:
                self.use_adapter(adapter, sources=sources)
            except BaseException:
                self.llm.close()
                raise
        try:
            wrappers = role_wrappers(self.template)
        except MipoError:
            wrappers = None
        self.stops = stop_strings(self.template, wrappers)
        self.finish_reason = ""      # of the last `stream`: "stop" (the model ended its turn or a stop string) or "length"

    def _prompt_settings(self, model: Path) -> None:
        trained = prompt_settings(model)
        self.context_tokens = self._asked[0] or trained.context_tokens
        self.context_in = self._asked[1] or trained.context_in

    def use_adapter(self, adapter: Optional[Path], *, sources: Optional[Sequence[int]] = None) -> None:
        """Apply a GGUF LoRA adapter made for this base (None: the base alone) in place of the current
        one, without reloading the base; retrieval then searches `sources`. The KV cache is dropped
        (it was computed under the other adapter); the context's placement and budget become those
        of the adapter's run. An adapter is read once and kept until the model is closed."""
        import ctypes

        import llama_cpp

        ctx = self.llm._ctx.ctx
        if adapter is None:
            failed = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            adapter = Path(adapter).resolve()
            if adapter not in self._adapters:
                if not adapter.is_file():
                    raise MipoError(f"the LoRA adapter {adapter} does not exist; personalize again (`mipo-local run`)")
                handle = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(adapter).encode("utf-8"))
                if not handle:
                    raise MipoError(f"{adapter} is not a LoRA adapter for {self.path.name} (llama.cpp refused it); "
                                    "it must come from a run on this base")
                self._adapters[adapter] = handle
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[adapter])
            failed = llama_cpp.llama_set_adapters_lora(ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if failed:
            raise MipoError(f"llama.cpp could not apply the LoRA adapter {adapter}")
        self.llm.reset()             # the next prompt is decoded from its start, under the new adapter
        self.adapter = adapter
        self.sources = sources
        self._prompt_settings(adapter or self.path)

    def close(self) -> None:
        self.llm.close()

    def count(self, text: str) -> int:
        """Tokens of plain text (special-token strings count as text)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def retrieve(self, text: str):
        """(hits, snippets) for a message: see `retrieve`."""
        return retrieve(text, self.context_tokens, self.store, self.sources)

    def prompt_tokens(self, messages) -> list[int]:
        """`messages` rendered in the model's chat template (with the generation prompt), as tokens."""
        return self.llm.tokenize(self.template.render(messages).encode("utf-8"), add_bos=False, special=True)

    def _decode_all_but_last(self, tokens: list[int]) -> None:
        """Decode the prompt but its last token, keeping the KV cache of the common prefix, so that
        llama.cpp always decodes the last one alone: a token decoded in a batch rounds differently,
        and the same prompt would otherwise get another answer at temperature 0 once it is cached."""
        llm, head = self.llm, tokens[:-1]
        cached = llm.input_ids[:llm.n_tokens].tolist()
        keep = 0
        for a, b in zip(cached, head):
            if a != b:
                break
            keep += 1
        llm.n_tokens = keep
        if keep < len(head):
            llm.eval(head[keep:])

    def stream(self, tokens: list[int], *, max_tokens: Optional[int], temperature: float, top_p: float,
               repeat_penalty: float, stop: Optional[list] = None, seed: Optional[int] = None,
               **sampling) -> Iterator[str]:
        """Stream the answer to a prompt of `tokens`, piece by piece. llama.cpp keeps the KV cache of
        the previous prompt and decodes only what changed. `stop` is added to the model's own stops."""
        stops = list(self.stops) + [s for s in (stop or []) if s and s not in self.stops]
        self._decode_all_but_last(tokens)
        self.finish_reason = "length"
        for chunk in self.llm.create_completion(tokens, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                                repeat_penalty=repeat_penalty, stop=stops or None, seed=seed,
                                                stream=True, **sampling):
            choice = chunk["choices"][0]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if choice["text"]:
                yield choice["text"]


class ChatSession:
    """A conversation with one GGUF model. `send` streams the answer; close when done."""

    def __init__(self, model: Path, *, conversation: Optional[Conversation] = None, use_context: bool = True,
                 context_tokens: Optional[int] = None, context_in: Optional[str] = None, n_ctx: int = 4096, max_tokens: int = 256, temperature: float = 0.7,
                 top_p: float = 0.95, repeat_penalty: float = 1.1, seed: int = 0, save: bool = True,
                 history_tokens: int = 512) -> None:
        """`model`: a GGUF, or a `profiles.ProfileModel` (its base with its adapter; `use_profile`
        switches to another at run time)."""
        self._open = dict(n_ctx=n_ctx, seed=seed, context_tokens=context_tokens, context_in=context_in)
        self.profile = None          # the profiles.ProfileModel in use, if any
        if not isinstance(model, (str, Path)):
            self.model = ChatModel(model.base, adapter=model.adapter, sources=model.sources, **self._open)
            self.profile = model
        else:
            self.model = ChatModel(model, **self._open)
        self._model_changed()
        self.conversation = conversation or Conversation(uuid.uuid4().hex[:12], str(self.model_path), _now())
        self.use_context = use_context
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.repeat_penalty = repeat_penalty
        self.history_tokens = history_tokens
        self.history_start: Optional[int] = None    # the first message of the history in the prompt
        self.attached_now = True                     # this turn brought the context (user-turn placement)
        self.save = save
        self.last = TurnStats()
        self.last_snippets: list[Snippet] = []
        self.last_messages: list[dict] = []          # what the model saw in the last turn

    def _model_changed(self) -> None:
        self.model_path = self.model.adapter or self.model.path
        self.template = self.model.template
        self.llm = self.model.llm
        self.stops = self.model.stops
        self.context_tokens = self.model.context_tokens
        self.context_in = self.model.context_in

    def use_profile(self, target) -> float:
        """Go on with another profile's model (a `profiles.ProfileModel`) in this conversation: its
        adapter on the base already loaded (no reload; the base is loaded once when the session
        was opened on another model), its sources for retrieval. The conversation's context is
        retrieved again for the next message. Returns the seconds the switch took."""
        start = time.perf_counter()
        if self.model.path.resolve() == Path(target.base).resolve():     # the base is loaded: swap the adapter
            self.model.use_adapter(target.adapter, sources=target.sources)
        else:
            model = ChatModel(target.base, adapter=target.adapter, sources=target.sources, **self._open)
            self.model.close()
            self.model = model
        self.profile = target
        self._model_changed()
        self.conversation.model = str(self.model_path)
        self.conversation.context, self.conversation.context_turn = [], None
        self.history_start = None
        self.last_snippets = []
        return time.perf_counter() - start

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> "ChatSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _count(self, text: str) -> int:
        return self.model.count(text)

    def _choose_context(self, text: str) -> bool:
        """Update the conversation's context for the new message; True when it changed."""
        if not self.use_context:
            return False
        hits, found = retrieve(text, self.context_tokens, self.model.store, self.model.sources)
        current = {s["chunk_id"] for s in self.conversation.context}
        if not found or any(h.chunk_id in current for h in hits):
            self.last_snippets = [Snippet(**s) for s in self.conversation.context]
            return False
        self.conversation.context = [asdict(s) for s in found]
        self.last_snippets = found
        return True

    def _fit_history(self) -> None:
        """Start the prompt's history at the oldest exchange that keeps it within `history_tokens`."""
        messages = self.conversation.messages
        used, start = 0, len(messages)
        for i in range(len(messages) - 2, -1, -2):      # whole exchanges, newest first
            used += sum(self._count(m["content"]) for m in messages[i:i + 2])
            if used > self.history_tokens:
                break
            start = i
        self.history_start = start

    def _prompt_tokens(self, text: str, changed: bool) -> list[int]:
        context = [s["text"] for s in self.conversation.context] or None
        while True:
            history = [{"role": m["role"], "content": m["content"]} for m in self.conversation.messages[self.history_start:]]
            self.attached_now = True
            turn = self.conversation.context_turn
            if self.context_in == "user" and context and not changed and turn is not None and turn >= self.history_start:
                # the context stays in the user turn that brought it: the prompt's start is unchanged
                history[turn - self.history_start] = {"role": "user", "content": user_message(
                    context, history[turn - self.history_start]["content"])}
                self.attached_now = False
            self.last_messages = chat_messages(context if self.attached_now else None, text, history,
                                               context_in=self.context_in)
            tokens = self.model.prompt_tokens(self.last_messages)
            if len(tokens) + self.max_tokens <= self.n_ctx or not history:
                break
            self.history_start += 2        # drop the oldest exchange
        if len(tokens) + 16 > self.n_ctx:
            raise MipoError(f"the message is too long for the model's window ({len(tokens)} tokens of {self.n_ctx}); shorten it")
        return tokens

    def send(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`, piece by piece; the turn is saved when the answer is complete."""
        text = text.strip()
        if not text:
            raise MipoError("empty message")
        start = time.perf_counter()
        changed = self._choose_context(text)
        if changed or self.history_start is None:
            # the prompt is decoded from the context on anyway: keep only the recent history, so
            # the time to the first token stays bounded however long the conversation gets
            self._fit_history()
        tokens = self._prompt_tokens(text, changed)
        reused = 0
        for a, b in zip(self.llm._input_ids, tokens):
            if a != b:
                break
            reused += 1
        stats = TurnStats(prompt_tokens=len(tokens), reused_tokens=reused, context_changed=changed)
        pieces: list[str] = []
        for piece in self.model.stream(tokens, max_tokens=self.max_tokens, temperature=self.temperature,
                                       top_p=self.top_p, repeat_penalty=self.repeat_penalty):
            if not pieces:
                stats.ttft = time.perf_counter() - start
            stats.new_tokens += 1
            pieces.append(piece)
            yield piece
        stats.seconds = time.perf_counter() - start
        self.last = stats
        answer = "".join(pieces).strip()
        at = _now()
        if self.attached_now and self.conversation.context:
            self.conversation.context_turn = len(self.conversation.messages)
        self.conversation.messages.append({"role": "user", "content": text, "at": at,
                                           "snippets": [asdict(s) for s in self.last_snippets]})
        self.conversation.messages.append({"role": "assistant", "content": answer, "at": at})
        if not self.conversation.title:
            self.conversation.title = " ".join(text.split())[:60]
        if self.save:
            self.conversation.save()

    def ask(self, text: str) -> str:
        return "".join(self.send(text))
