"""Text helpers for imported writing: decoding, HTML to text, token estimates, chunking."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Callable

NUL_WINDOW = 8192


class Unreadable(Exception):
    """A file or message that cannot be imported; the message is the reason shown to the user."""


def decode_text(raw: bytes, declared: str | None = None) -> str:
    """Bytes → text: UTF-8 (with or without BOM), a declared charset, or a detected one."""
    if b"\x00" in raw[:NUL_WINDOW]:
        raise Unreadable("binary file with a text extension")
    for encoding in ("utf-8-sig", declared):
        if not encoding:
            continue
        try:
            return _check_printable(raw.decode(encoding))
        except (UnicodeDecodeError, LookupError):
            pass
    # Western 8-bit text first (the common case of old notes and mail), then detection
    try:
        text = raw.decode("cp1252")
        if _plausible(text):
            return _check_printable(text)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None or best.chaos > 0.2 or not _plausible(str(best)):
        raise Unreadable("undecodable text (no character set fits)")
    return _check_printable(str(best))


def _plausible(text: str) -> bool:
    """Most non-ASCII characters of real text are letters; mis-decoded bytes are symbols."""
    import unicodedata

    sample = [ch for ch in text[:20000] if ord(ch) > 127]
    if not sample:
        return True
    letters = sum(1 for ch in sample if unicodedata.category(ch).startswith(("L", "M")))
    return letters / len(sample) >= 0.6


def _check_printable(text: str) -> str:
    sample = text[:20000]
    if sample:
        bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t\f") or 0x7F <= ord(ch) < 0xA0 or ch == "\ufffd")
        if bad / len(sample) > 0.02:
            raise Unreadable("undecodable text (control characters or invalid bytes)")
    return text


_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "hr"}
_SKIP = {"script", "style", "head", "title"}


class _HTMLToText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag in ("p", "div", "table", "h1", "h2", "h3", "blockquote") else "\n")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag in ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "ul", "ol", "blockquote"):
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Readable plain text from an HTML mail body: paragraphs, line breaks, lists, table rows."""
    parser = _HTMLToText()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.out))
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    lines = [re.sub(r"^\|\s*", "", line) for line in lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A conservative estimate of a BPE tokenizer's count (words and symbols × 1.3)."""
    n = 0
    for match in _TOKEN_RE.finditer(text):
        word = match.group()
        n += 1 + len(word) // 8  # long words split into several tokens
    return int(n * 1.3) + 1


_SENTENCE_RE = re.compile(r"(?<=[.!?…])\s+")


def chunk_text(text: str, max_tokens: int = 200, count: Callable[[str], int] = estimate_tokens) -> list[str]:
    """Split text into chunks of whole paragraphs, each at most `max_tokens`.

    A paragraph longer than the budget is split at sentence ends, and a sentence longer than the
    budget at word boundaries. Chunks never cut a word.
    """
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip()
        if not para:
            continue
        if count(para) <= max_tokens:
            pieces.append(para)
            continue
        for sentence in _SENTENCE_RE.split(para):
            if count(sentence) <= max_tokens:
                pieces.append(sentence)
                continue
            words, current = sentence.split(), []
            for word in words:
                if current and count(" ".join(current + [word])) > max_tokens:
                    pieces.append(" ".join(current))
                    current = []
                current.append(word)
            if current:
                pieces.append(" ".join(current))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}\n\n{piece}" if current else piece
        if current and count(candidate) > max_tokens:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def fold_diacritics(word: str) -> str:
    """The form FTS5's unicode61 tokenizer (remove_diacritics 2) indexes a word under."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", word.lower())
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
