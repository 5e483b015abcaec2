"""An Ollama Modelfile for a personal GGUF: FROM the file, TEMPLATE from its chat template, its stops.

Ollama templates are Go templates, chat templates in GGUF files are Jinja. The Jinja template is
rendered with marker messages to find what it writes around each role's content; the Go template
writes the same. The result is checked on several conversations against the Jinja rendering, and a
template that cannot be expressed this way is left out (Ollama then guesses it from the GGUF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .errors import MipoError
from .workspace import write_text_atomic
from .prompt_format import SYSTEM_BASE, ChatTemplate

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


def _go_literal(text: str) -> str:
    if '"""' in text or "{{" in text:
        raise MipoError("the chat template holds text a Modelfile cannot quote")
    return text


def ollama_template(wrappers: RoleWrappers) -> str:
    parts = ["{{ range .Messages }}"]
    for n, role in enumerate(("system", "user", "assistant")):
        parts.append(f'{{{{ {"if" if n == 0 else "else if"} eq .Role "{role}" }}}}')
        parts.append(_go_literal(wrappers.prefix[role]) + "{{ .Content }}" + _go_literal(wrappers.suffix[role]))
    parts.append("{{ end }}{{ end }}")
    parts.append(_go_literal(wrappers.generation))
    return "".join(parts)


def stop_strings(template: ChatTemplate, wrappers: Optional[RoleWrappers]) -> list[str]:
    stops = []
    if wrappers:
        end = wrappers.suffix["assistant"].strip()
        if end:
            stops.append(end)
    if template.eos_token and template.eos_token not in stops:
        stops.append(template.eos_token)
    return stops


def modelfile_text(gguf: Path, *, system: str = SYSTEM_BASE) -> str:
    template = ChatTemplate.from_gguf(gguf)
    try:
        wrappers: Optional[RoleWrappers] = role_wrappers(template)
    except MipoError as exc:
        wrappers, why = None, str(exc)
    lines = [f"# Ollama: ollama create my-model -f {gguf.parent / 'Modelfile'}",
             f"FROM ./{gguf.name}"]
    if wrappers:
        lines.append(f'TEMPLATE """{ollama_template(wrappers)}"""')
    else:
        lines.append(f"# no TEMPLATE: {why}; Ollama picks one from the GGUF")
    for stop in stop_strings(template, wrappers):
        lines.append(f'PARAMETER stop "{stop}"')
    lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def write_modelfile(gguf: Path, out: Path) -> Path:
    """Write the Modelfile next to the GGUF (FROM is relative to the Modelfile), atomically."""
    gguf, out = Path(gguf), Path(out)
    return write_text_atomic(out, modelfile_text(gguf))
