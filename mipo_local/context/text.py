"""Text helpers for imported writing: decoding, HTML to text, token estimates, chunking."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Callable

NUL_WINDOW = 8192


class Unreadable(Exception):
    """A file or message that cannot be imported; the message is the reason shown to the user."""


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def decode_text(raw: bytes, declared: str | None = None) -> str:
    """Bytes → text, in this order:
    - UTF-16/32 with a byte-order mark (Windows Notepad's "Unicode");
    - UTF-8 (with or without BOM), then the declared charset;
    - UTF-8 with a few stray bytes of another charset (a pasted "’" in cp1252): each stray byte is
      read as cp1252, the rest as UTF-8;
    - Western 8-bit text (cp1252), when it reads like a Latin-script language;
    - else the charset `charset_normalizer` detects (Cyrillic, Greek, Central European, …).
    Raises Unreadable for binary data and for bytes no charset fits."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return _check_printable(raw.decode(encoding))
            except UnicodeDecodeError:
                raise Unreadable(f"undecodable text (a {encoding.upper()} byte-order mark, then invalid bytes)") from None
    if b"\x00" in raw[:NUL_WINDOW]:
        raise Unreadable("binary file with a text extension")
    for encoding in ("utf-8-sig", declared):
        if not encoding:
            continue
        try:
            return _check_printable(raw.decode(encoding))
        except (UnicodeDecodeError, LookupError):
            pass
    if (mostly := _mostly_utf8(raw)) is not None:
        return _check_printable(mostly)
    try:
        text = raw.decode("cp1252")
        if _plausible(text) and _latin_script(text):
            return _check_printable(text)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None or best.chaos > 0.2 or not _plausible(str(best)):
        raise Unreadable("undecodable text (no character set fits)")
    return _check_printable(str(best))


_STRAY_BYTE = re.compile("[\udc80-\udcff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _mostly_utf8(raw: bytes) -> str | None:
    """UTF-8 text with a few bytes that are not UTF-8 (at least two valid non-ASCII characters, and
    twice as many as stray bytes), those bytes read as cp1252; None when the bytes are not mostly
    UTF-8. Text in an 8-bit charset rarely holds valid multi-byte UTF-8 sequences (an accented capital
    before a symbol), and has many stray bytes, so it is not taken for this."""
    text = raw.decode("utf-8", "surrogateescape")
    stray = len(_STRAY_BYTE.findall(text))
    valid = len(_NON_ASCII.findall(text)) - stray
    if not stray or valid < max(2, 2 * stray):   # "CAFÉ’S" in cp1252 holds one valid pair by chance
        return None

    def as_cp1252(match: re.Match) -> str:
        byte = bytes([ord(match.group(0)) - 0xDC00])
        try:
            return byte.decode("cp1252")
        except UnicodeDecodeError:
            return byte.decode("latin-1")

    return _STRAY_BYTE.sub(as_cp1252, text)


# a Latin-1 sign or superscript between two letters: "Za¿ó³æ" is Polish (cp1250) read as cp1252 (the
# middle dot is Catalan's "l·l"; dashes and quotes are General Punctuation, not in this range)
_SIGNS = "".join(chr(c) for c in range(0xA1, 0xC0) if c != 0xB7) + "\u00d7\u00f7"
_SIGN_IN_WORD = re.compile(f"(?<=[^\\W\\d_])[{re.escape(_SIGNS)}]+(?=[^\\W\\d_])")
_WORD = re.compile(r"[^\W\d_]{3,}")


def _latin_script(text: str) -> bool:
    """cp1252 bytes read as cp1252 look like a Latin-script language: few words are made of accented
    letters only (Cyrillic or Greek read as cp1252 are all such words: "Ïðèâåò"; French has "été",
    whose "t" is ASCII), and no Latin-1 sign sits inside a word. Central European and Turkish text
    whose letters all map to cp1252 letters still passes: only a language model would tell those
    apart."""
    sample = text[:20000]
    words = _WORD.findall(sample)
    if words and sum(1 for w in words if all(ord(ch) > 127 for ch in w)) >= 0.25 * len(words):
        return False
    return _SIGN_IN_WORD.search(sample) is None


# typographic characters of ordinary text: quotes, dashes, ellipsis, bullets, common signs
_TYPOGRAPHIC = set("\u00a0\u2018\u2019\u201a\u201c\u201d\u201e\u2013\u2014\u2026\u2022\u00b7\u20ac\u00a3\u00a5"
                   "\u00b0\u00bd\u00bc\u00be\u00d7\u00ab\u00bb\u00bf\u00a1\u00a7\u2122\u00a9\u00ae")


def _plausible(text: str) -> bool:
    """Most non-ASCII characters of real text are letters or typographic marks (quotes, dashes,
    "€"); mis-decoded bytes are mostly other symbols."""
    import unicodedata

    sample = [ch for ch in text[:20000] if ord(ch) > 127]
    if not sample:
        return True
    fine = sum(1 for ch in sample if ch in _TYPOGRAPHIC or unicodedata.category(ch).startswith(("L", "M")))
    return fine / len(sample) >= 0.6


def _check_printable(text: str) -> str:
    sample = _ESCAPE_SEQUENCE.sub("", text[:20000])   # colour codes are stripped later, not a sign of binary
    if sample:
        bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\n\r\t\f") or 0x7F <= ord(ch) < 0xA0 or ch == "\ufffd")
        if bad / len(sample) > 0.02:
            raise Unreadable("undecodable text (control characters or invalid bytes)")
    return text


# Terminal escape sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-character escapes) and the
# control characters that remain: text from a file or an email must never drive the terminal.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -~]?)"
    r"|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c)?"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI_OVERRIDE = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def fs_text(text: str) -> str:
    """A file name as storable, printable text: bytes that are not UTF-8 (which Python keeps in a
    path as lone surrogates) written as \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def strip_controls(text: str, *, single_line: bool = False) -> str:
    """Text without terminal escape sequences and control characters (tabs and newlines kept,
    CR LF as LF); with `single_line`, line breaks and tabs become spaces."""
    if single_line:
        text = re.sub(r"[\r\n\t]+", " ", text)
    else:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def for_terminal(text: str, *, single_line: bool = False) -> str:
    """What may be printed on a terminal: `strip_controls`, and no bidi overrides either."""
    return _BIDI_OVERRIDE.sub("", strip_controls(fs_text(text), single_line=single_line))


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


_LONG_WORD_RE = re.compile(r"\w{8,}", re.UNICODE)


def _raw_tokens(text: str) -> int:
    """Words and symbols, a long word counted as 1 + len // 8 (it splits into several tokens).

    Additive over whitespace-separated parts. Counted by the regex engine, not word by word."""
    return len(_TOKEN_RE.findall(text)) + sum(len(w) // 8 for w in _LONG_WORD_RE.findall(text))


def estimate_tokens(text: str) -> int:
    """A conservative estimate of a BPE tokenizer's count (words and symbols × 1.3)."""
    return _from_raw(_raw_tokens(text))


def _from_raw(raw: int) -> int:
    return int(raw * 1.3) + 1


_SENTENCE_RE = re.compile(r"(?<=[.!?…])\s+")


def chunk_text(text: str, max_tokens: int = 200, count: Callable[[str], int] = estimate_tokens) -> list[str]:
    """Split text into chunks of whole paragraphs, each at most `max_tokens`.

    A paragraph longer than the budget is split at sentence ends, and a sentence longer than the
    budget at word boundaries. Chunks never cut a word. Linear in the text's length.
    """
    return [chunk for chunk, _ in chunk_text_counted(text, max_tokens, count)]


def chunk_text_counted(text: str, max_tokens: int = 200,
                       count: Callable[[str], int] = estimate_tokens) -> list[tuple[str, int]]:
    """`chunk_text`, each chunk with its count.

    With the default estimate every character is counted once: the estimate is additive over
    whitespace-separated parts, so a chunk's count is the sum of its pieces' raw counts (a long
    single-line note used to be re-counted at every word: quadratic). Another counter is asked
    about each candidate chunk, as before.
    """
    additive = count is estimate_tokens
    measure = _raw_tokens if additive else count
    fits = (lambda n: _from_raw(n) <= max_tokens) if additive else (lambda n: n <= max_tokens)

    def measured(part: str) -> "int | None":
        """The part's count, or None when it certainly exceeds the budget (a prefix already does)."""
        if additive and len(part) > 16 * max_tokens and not fits(_raw_tokens(part[:16 * max_tokens])):
            return None
        return measure(part)

    pieces: list[tuple[str, int]] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip()
        if not para:
            continue
        n = measured(para)
        if n is not None and fits(n):
            pieces.append((para, n))
            continue
        for sentence in _SENTENCE_RE.split(para):
            n = measured(sentence)
            if n is not None and fits(n):
                pieces.append((sentence, n))
            elif additive:
                pieces.extend(_split_words_additive(sentence, max_tokens))
            else:
                pieces.extend((p, count(p)) for p in _split_words(sentence, max_tokens, count))
    chunks: list[tuple[str, int]] = []
    current: list[str] = []
    current_n = 0
    for piece, n in pieces:
        if current:
            candidate_n = current_n + n if additive else count("\n\n".join(current + [piece]))
            if fits(candidate_n):
                current.append(piece)
                current_n = candidate_n
                continue
            chunks.append(("\n\n".join(current), current_n))
        current, current_n = [piece], n
    if current:
        chunks.append(("\n\n".join(current), current_n))
    return [(chunk, _from_raw(n)) for chunk, n in chunks] if additive else chunks


def _split_words_additive(sentence: str, max_tokens: int) -> list[tuple[str, int]]:
    """A sentence over the budget cut at word boundaries: each word counted once, the cut points
    found by bisecting the running total. Returns (piece, raw count) pairs."""
    import bisect
    import itertools

    words = sentence.split()
    raw = [1 + len(w) // 8 if w.isalnum() else _raw_tokens(w) for w in words]
    total = list(itertools.accumulate(raw, initial=0))     # total[j]: raw count of words[:j]
    pieces = []
    start = 0
    while start < len(words):
        # _from_raw(r) <= max_tokens exactly when r < max_tokens / 1.3; then fix float rounding
        end = bisect.bisect_left(total, total[start] + max_tokens / 1.3, lo=start + 1) - 1
        while end > start + 1 and _from_raw(total[end] - total[start]) > max_tokens:
            end -= 1
        while end < len(words) and _from_raw(total[end + 1] - total[start]) <= max_tokens:
            end += 1
        end = max(end, start + 1)                           # a word longer than the budget stands alone
        pieces.append((" ".join(words[start:end]), total[end] - total[start]))
        start = end
    return pieces


def _split_words(sentence: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for word in sentence.split():
        if current and count(" ".join(current + [word])) > max_tokens:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def fold_diacritics(word: str) -> str:
    """The form FTS5's unicode61 tokenizer (remove_diacritics 2) indexes a word under."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", word.lower())
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))
