"""How the user's context is put in front of the model — one format for pairs, training and chat.

The context goes into the system message. A prompt without context has the same system message
minus the context block, so the only difference between a MIPO positive and its `drop` negative
is the user's context.
"""

from __future__ import annotations

from typing import Optional, Sequence

SYSTEM_BASE = "You are a helpful personal assistant."
CONTEXT_HEADER = ("Below are excerpts from the user's own notes and emails. Use what is relevant in them "
                  "to answer the way this user would want.")
CHUNK_SEPARATOR = "\n---\n"


def system_message(context: Optional[Sequence[str]]) -> str:
    """The system message for a context (a list of excerpts), or the bare one for no context."""
    if not context:
        return SYSTEM_BASE
    return f"{SYSTEM_BASE}\n\n{CONTEXT_HEADER}\n\n" + CHUNK_SEPARATOR.join(c.strip() for c in context)


def chat_messages(context: Optional[Sequence[str]], request: str, history: Sequence[dict] = ()) -> list[dict]:
    """Messages in the conversational format (trl's `prompt`): system (+context), history, user."""
    return [{"role": "system", "content": system_message(context)}, *history, {"role": "user", "content": request}]


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
        from .errors import MipoError
        from .modelio.gguf_file import read_metadata

        meta = read_metadata(path)
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise MipoError(f"{path} has no chat template (tokenizer.chat_template); pick an instruct model")
        tokens = meta.get("tokenizer.ggml.tokens") or []

        def token(key: str) -> str:
            i = meta.get(key)
            return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else ""

        return cls(template, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))
