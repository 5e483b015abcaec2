"""An Ollama Modelfile for a personal GGUF: FROM the file, TEMPLATE from its chat template, its stops.

Ollama templates are Go templates, chat templates in GGUF files are Jinja. The prompt format
(`prompt_format.role_wrappers`) finds what the Jinja template writes around each role's content and
checks it on several conversations; the Go template writes the same. A template that cannot be
expressed this way is left out (Ollama then guesses it from the GGUF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import MipoError
from ..inference.prompt_format import SYSTEM_BASE, ChatTemplate, RoleWrappers, role_wrappers, stop_strings
from ..workspace import write_text_atomic


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
