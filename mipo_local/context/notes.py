"""Notes: Markdown, text and Org files, and Obsidian vaults (front matter, wikilinks, embeds)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from .documents import ParsedDocument
from .text import Unreadable, decode_text, fs_text, strip_controls

NOTE_EXTENSIONS = {".md", ".markdown", ".txt", ".org"}
ATTACHMENT_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf", ".mp3", ".mp4", ".wav", ".mov", ".excalidraw"}

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_EMBED = re.compile(r"!\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|([^\]]*))?\]\]")
_WIKILINK = re.compile(r"\[\[([^\]|#]+)(?:#([^\]|]*))?(?:\|([^\]]*))?\]\]")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter and the text after it; ({}, text) when there is none or it cannot be read
    (then it stays in the text). Aliases are refused (a few hundred bytes of nested aliases expand to
    gigabytes), and dates stay text (a date YAML cannot build, "2024-02-30", must not lose the note)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        data = _load_yaml(match.group(1)) or {}
    except Exception:  # noqa: BLE001 - YAMLError, RecursionError on deep nesting, and whatever else
        return {}, text  # not front matter after all: keep the text as it is
    if not isinstance(data, dict):
        return {}, text
    return data, text[match.end():]


_LOADER = None


def _load_yaml(source: str):
    global _LOADER
    import yaml

    if _LOADER is None:
        class FrontMatterLoader(yaml.SafeLoader):
            def compose_node(self, parent, index):
                if self.check_event(yaml.AliasEvent):
                    raise yaml.YAMLError("aliases are not read in front matter")
                return super().compose_node(parent, index)

        FrontMatterLoader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        _LOADER = FrontMatterLoader
    return yaml.load(source, Loader=_LOADER)  # noqa: S506 - a SafeLoader, narrowed further


def obsidian_to_plain(text: str) -> str:
    """`![[embed]]` → its name (attachments dropped), `[[target|alias]]` → alias, `[[target]]` → target."""

    def embed(m: re.Match) -> str:
        target = m.group(1).strip()
        if Path(target).suffix.lower() in ATTACHMENT_EXTENSIONS:
            return ""
        return m.group(2) or target

    def link(m: re.Match) -> str:
        target, heading, alias = m.group(1).strip(), m.group(2), m.group(3)
        if alias:
            return alias.strip()
        return f"{target} ({heading.strip()})" if heading else target

    return _WIKILINK.sub(link, _EMBED.sub(embed, text))


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        try:       # front matter's dates are read as text: "2024-03-01 10:00" as 2024-03-01T10:00:00
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return value.strip()
        return parsed.date().isoformat() if len(value.strip()) == 10 else parsed.isoformat()
    return None


MAX_TAGS, MAX_TAG_CHARS = 64, 100


def _tags(value: Any) -> list[str]:
    """Tags or aliases as a list of short strings (at most MAX_TAGS of MAX_TAG_CHARS each)."""
    if isinstance(value, str):
        found = [t.strip().lstrip("#") for t in re.split(r"[,\s]+", value[:MAX_TAGS * MAX_TAG_CHARS]) if t.strip()]
    elif isinstance(value, (list, tuple)):
        found = [t.strip().lstrip("#") for t in (str(v)[:MAX_TAG_CHARS] for v in value[:MAX_TAGS]) if t.strip()]
    else:
        found = []
    return [t[:MAX_TAG_CHARS] for t in found[:MAX_TAGS]]


def _org_to_plain(text: str) -> tuple[str | None, str]:
    title = None
    lines = []
    for line in text.splitlines():
        m = re.match(r"#\+(\w+):\s*(.*)", line, re.I)
        if m:
            if m.group(1).upper() == "TITLE":
                title = m.group(2).strip()
            continue
        heading = re.match(r"(\*+)\s+(.*)", line)
        lines.append(heading.group(2) if heading else line)
    return title, "\n".join(lines)


def parse_note(path: Path, raw: bytes, *, mtime: float | None = None) -> ParsedDocument:
    """A note file's bytes → a document. Raises Unreadable with the reason when it can't be used."""
    text = strip_controls(decode_text(raw))          # CR LF as LF; no terminal escapes
    meta, body = split_front_matter(text)
    title = str(meta.get("title") or "").strip() or None
    if path.suffix.lower() == ".org":
        org_title, body = _org_to_plain(body)
        title = title or org_title
    body = obsidian_to_plain(body).strip()
    if not title:
        heading = _HEADING.search(body)
        title = heading.group(1).strip() if heading else fs_text(path.stem).replace("-", " ").replace("_", " ")
    title = strip_controls(title, single_line=True).strip() or fs_text(path.stem)
    if not body:
        raise Unreadable("empty note (only front matter)" if meta else "empty file")
    date = _iso(meta.get("created") or meta.get("date") or meta.get("updated"))
    if date is None and mtime is not None:
        date = dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat(timespec="seconds")
    extra = {}
    if tags := _tags(meta.get("tags")):
        extra["tags"] = tags
    if aliases := _tags(meta.get("aliases")):
        extra["aliases"] = aliases
    return ParsedDocument(locator="", kind="note", title=title, body=body, date=date, author="", author_is_user=True, meta=extra)
