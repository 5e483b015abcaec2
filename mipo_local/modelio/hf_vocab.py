"""Tokenizer metadata for a GGUF made from a Hugging Face folder, and the check against transformers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import MipoError

# The pre-tokenizer regexes that tell llama.cpp's pre-tokenizer types apart.
_QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Mixed text for tokenizer checks: accents, emoji, CJK, code, numbers, long whitespace runs.
TOKENIZER_SAMPLE = (
    "Héllo wörld! Ça va? naïve café — “quotes” ‘single’ 🙂🚀👩‍💻 日本語のテキスト 中文字符 한국어 "
    "def f(x):\n    return x**2  # comment\n\tif a != b: print('ok')\n"
    "1234567 3.14159 1,000,000 2026-11-26    many     spaces\n\n\n   \t  tabs and newlines\r\n"
    "Don't we'll they're I'm you've he'd — ALL CAPS, MiXeD cAsE, snake_case, camelCase, URL https://e.x/a?b=c"
)


def pre_tokenizer_for(pre: str):
    """A `tokenizers` pre-tokenizer that splits text the way llama.cpp's `pre` type does (None: keep)."""
    from tokenizers import Regex, pre_tokenizers

    if pre == "smollm":
        return pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    regex = {"qwen2": _QWEN2_REGEX, "llama-bpe": _LLAMA3_REGEX}.get(pre)
    if regex is not None:
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    return None


def detect_pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer name (`tokenizer.ggml.pre`) for a tokenizer.json."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    types = [p.get("type") for p in parts]
    regexes = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    if types == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt2"
    if types == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if regexes and types[-1] == "ByteLevel":
        if regexes[0] == _QWEN2_REGEX:
            return "qwen2"
        if regexes[0] == _LLAMA3_REGEX:
            return "llama-bpe"
    raise MipoError(
        f"unrecognized tokenizer pre-tokenizer ({', '.join(map(str, types))}); mipo-local knows GPT-2, SmolLM, Qwen2 and Llama 3 tokenizers"
    )


def add_tokenizer_metadata(writer, folder: Path, vocab_size: int) -> None:
    """Tokens, token types, merges, special ids and chat template, from the folder's tokenizer files."""
    import gguf
    from gguf.vocab import BpeVocab, SpecialVocab

    tokenizer_json = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise MipoError(f"{folder}: only byte-level BPE tokenizers (GPT-2 style) can be exported; this one is {model.get('type')}")
    try:
        vocab = BpeVocab(Path(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise MipoError(f"{folder}: cannot read the tokenizer ({exc})") from None
    tokens: list[str] = []
    types: list[int] = []
    for text, _score, ttype in vocab.all_tokens():
        tokens.append(text.decode("utf-8") if isinstance(text, bytes) else text)
        types.append(int(ttype))
    index = {t: i for i, t in enumerate(tokens)}
    for added in tokenizer_json.get("added_tokens", []):
        i = added["id"]
        if i < len(tokens):
            types[i] = int(gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED)
    if len(tokens) > vocab_size:
        raise MipoError(f"{folder}: the tokenizer has {len(tokens)} tokens but the model only {vocab_size} embeddings")
    for i in range(len(tokens), vocab_size):  # embedding rows past the tokenizer: padding tokens
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    del index
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(detect_pre_tokenizer(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = SpecialVocab(Path(folder), load_merges=True, n_vocab=len(tokens))
    special.add_to_gguf(writer, quiet=True)


def check_tokenization(gguf_path: Path, folder: Path, texts: tuple[str, ...] = (TOKENIZER_SAMPLE,)) -> None:
    """Raise when llama.cpp tokenizes differently from transformers on the sample text."""
    from transformers import AutoTokenizer

    from ..inference.llama_runtime import open_llama

    hf = AutoTokenizer.from_pretrained(str(folder))
    llm = open_llama(gguf_path, vocab_only=True)
    try:
        for text in texts:
            ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            theirs = hf.encode(text, add_special_tokens=False)
            if list(ours) != list(theirs):
                first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
                raise MipoError(
                    f"the exported GGUF tokenizes differently from transformers (first difference at token {first}); "
                    "this tokenizer is not supported for export"
                )
    finally:
        llm.close()
