"""Chat: streamed Markdown replies, personal or base model, the snippets given to the model, past conversations.
With profiles (`mipo_local.chat.profiles`), a picker switches the personal model's profile mid-conversation."""

from __future__ import annotations

import threading
import time
from typing import Optional

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Markdown, OptionList, Select, Static
from textual.widgets.option_list import Option

from ..bridge import notify_error
from ..widgets.profile_choice import refresh_profile_choice

MODEL_CHOICES = [("personal model", "personal"), ("original model", "base")]
NO_PERSONAL_CHOICES = [("original model", "base")]
NO_PERSONAL_HINT = ("You have no personal model yet, so you are chatting with the original one. "
                    "Make yours in the Personalize tab (F2).")


class ChatPane(Horizontal):
    class Answer(Message):
        """The model's answer so far (streamed from the chat worker), for its bubble."""

        def __init__(self, bubble: Markdown, text: str) -> None:
            super().__init__()
            self.bubble = bubble
            self.text = text

    class TurnDone(Message):
        """A turn is answered: the titles of the user's snippets the model was given."""

        def __init__(self, snippets: str) -> None:
            super().__init__()
            self.snippets = snippets

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sessions: dict[str, object] = {}      # "personal" | "base" → ChatSession (made in a worker)
        self.lock = threading.Lock()
        self.conversation = None                     # a saved conversation to continue
        self.has_personal: Optional[bool] = None     # whether a personal model is offered (refresh_models)

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-main"):
            yield VerticalScroll(id="messages")
            yield Input(placeholder="message (Enter sends)", id="chat-input")
        with Vertical(id="chat-side"):
            yield Select(MODEL_CHOICES, value="personal", allow_blank=False, id="chat-model")
            yield Static("", id="chat-hint")
            yield Select([("all sources", "default")], value="default", allow_blank=False, id="chat-profile")
            yield Button("New conversation", id="new-chat")
            yield Label("your snippets in this turn", classes="side-title")
            yield Static("—", id="snippets")
            yield Label("past conversations", classes="side-title")
            yield OptionList(id="conversations")

    def on_mount(self) -> None:
        self.refresh_conversations()

    def refresh_models(self) -> None:
        """Offer the personal model once there is one; until then chat with the original model,
        labelled so, and say how to make the personal one."""
        from mipo_local.chat.active_model import active_model
        from mipo_local.chat.profiles import list_profiles

        try:
            profiles = [p.name for p in list_profiles()]
        except Exception:  # noqa: BLE001 - a store another process is writing: as if none
            profiles = []
        has_personal = any(active_model(name) is not None for name in (None, *profiles))   # a profile's model too
        if has_personal == self.has_personal:
            return
        self.has_personal = has_personal
        select = self.query_one("#chat-model", Select)
        talking = bool(self.query(".msg-user"))          # a conversation under way goes on with its model
        current = select.value
        with select.prevent(Select.Changed):
            select.set_options(MODEL_CHOICES if has_personal else NO_PERSONAL_CHOICES)
            select.value = current if talking and current == "base" else ("personal" if has_personal else "base")
        if select.value != current:
            self.new_conversation()
        self.query_one("#chat-hint", Static).update("" if has_personal else NO_PERSONAL_HINT)

    def refresh_profiles(self) -> None:
        refresh_profile_choice(self.query_one("#chat-profile", Select))

    def refresh_conversations(self) -> None:
        from mipo_local.chat.session import list_conversations

        self.refresh_profiles()
        self.refresh_models()

        options = self.query_one("#conversations", OptionList)
        options.clear_options()
        for c in list_conversations()[:30]:
            options.add_option(Option(Text(c.title or c.id), id=c.id))

    @property
    def kind(self) -> str:
        return self.query_one("#chat-model", Select).value

    def use_model(self, kind: str) -> None:
        self.query_one("#chat-model", Select).value = kind

    @on(Button.Pressed, "#new-chat")
    @on(Select.Changed, "#chat-model")
    def new_conversation(self) -> None:
        with self.lock:
            for s in self.sessions.values():
                s.close()
            self.sessions.clear()
        self.conversation = None
        self.query_one("#messages", VerticalScroll).remove_children()
        self.query_one("#snippets", Static).update("—")

    @on(Select.Changed, "#chat-profile")
    def _profile_changed(self, event: Select.Changed) -> None:
        self.switch_profile(str(event.value))

    @work(thread=True, exit_on_error=False, group="chat")
    def switch_profile(self, name: str) -> None:
        """The personal session goes on with the profile's adapter (no reload) and sources."""
        from mipo_local.chat.profile_names import DEFAULT
        from mipo_local.chat.profiles import profile_model

        try:
            with self.lock:
                session = self.sessions.get("personal")
                current = session.profile.label if session is not None and session.profile else DEFAULT
                if session is None or name == current:     # none open: the next message opens it with this profile
                    return
                target = profile_model(name)
                seconds = session.use_profile(target)
            self.app.notify(f"profile {target.label}: switched in {seconds * 1000:.0f} ms", title="Chat")
        except Exception as exc:  # noqa: BLE001 - e.g. the profile has no model yet
            notify_error(self.app, exc, "Chat")

    @on(OptionList.OptionSelected, "#conversations")
    def open_conversation(self, event: OptionList.OptionSelected) -> None:
        from mipo_local.chat.session import load_conversation

        try:
            conversation = load_conversation(event.option.id)
        except Exception as exc:  # noqa: BLE001
            notify_error(self.app, exc)
            return
        self.new_conversation()
        self.conversation = conversation
        box = self.query_one("#messages", VerticalScroll)
        for m in conversation.messages:
            box.mount(self._bubble(m["role"], m["content"]))
        box.scroll_end(animate=False)

    def _bubble(self, role: str, text: str):
        if role == "user":
            return Static(Text(text), classes="msg-user")
        return Markdown(text or "…", classes="msg-model")

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        box = self.query_one("#messages", VerticalScroll)
        box.mount(self._bubble("user", text))
        answer = self._bubble("assistant", "")
        box.mount(answer)
        box.scroll_end(animate=False)
        self.send(text, self.kind, answer, str(self.query_one("#chat-profile", Select).value))

    def _session(self, kind: str, profile: str):
        from mipo_local.chat.profile_names import DEFAULT
        from mipo_local.chat.profiles import profile_model
        from mipo_local.chat.session import ChatSession, chat_model

        with self.lock:
            if kind not in self.sessions:
                target = profile_model(profile) if kind == "personal" and profile != DEFAULT else \
                    chat_model(base=kind == "base")
                self.sessions[kind] = ChatSession(target, conversation=self.conversation)
            return self.sessions[kind]

    @work(thread=True, exit_on_error=False, group="chat")
    def send(self, text: str, kind: str, answer: Markdown, profile: str = "default") -> None:
        try:
            session = self._session(kind, profile)
            shown, last = "", 0.0
            for piece in session.send(text):
                shown += piece
                if time.monotonic() - last > 0.15:
                    last = time.monotonic()
                    self.post_message(self.Answer(answer, shown))
            self.post_message(self.Answer(answer, shown.strip() or "(no answer)"))
            snippets = "\n".join(f"• {s.title}" for s in session.last_snippets) or "none matched"
            self.post_message(self.TurnDone(snippets))
        except Exception as exc:  # noqa: BLE001 - e.g. no personal model yet
            notify_error(self.app, exc, "Chat")
            self.post_message(self.Answer(answer, "*(no answer)*"))

    @on(Answer)
    async def _answer(self, message: Answer) -> None:
        if message.bubble.is_attached:      # not when a new conversation removed it meanwhile
            await message.bubble.update(message.text)

    @on(TurnDone)
    def _turn_done(self, message: TurnDone) -> None:
        self.query_one("#snippets", Static).update(Text(message.snippets))
        self.query_one("#messages", VerticalScroll).scroll_end(animate=False)
        self.refresh_conversations()

    def on_unmount(self) -> None:
        with self.lock:
            for s in self.sessions.values():
                s.close()
            self.sessions.clear()
