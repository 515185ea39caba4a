"""Tokenizers: text <-> token ids, a streaming decoder, and specs that checkpoints store.

base.py   Tokenizer interface, StreamDecoder, spec checks
char.py   one token per character (CharTokenizer)
bpe.py    GPT-2 BPE through tiktoken, full or compact (TiktokenTokenizer)
learned.py byte-level BPE learned from your own text, encoded by tiktoken (LearnedBPETokenizer)
word.py   most frequent words, punctuation and whitespace runs (WordTokenizer)
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.errors import ScratchGPTError
from .base import SPEC_VERSION, StreamDecoder, Tokenizer
from .bpe import TiktokenTokenizer
from .char import CharTokenizer
from .learned import LearnedBPETokenizer
from .word import WordTokenizer

TOKENIZER_NAMES = ("char", "tiktoken", "word", "bpe")
_CLASSES: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "tiktoken": TiktokenTokenizer,
    "word": WordTokenizer,
    "bpe": LearnedBPETokenizer,
}

__all__ = [
    "SPEC_VERSION",
    "TOKENIZER_NAMES",
    "CharTokenizer",
    "LearnedBPETokenizer",
    "StreamDecoder",
    "TiktokenTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "fit_tokenizer",
    "tokenizer_from_spec",
]


def fit_tokenizer(name: str, chunks: Iterable[str] | None = None, *, vocab_size: int | None = None) -> Tokenizer:
    """A tokenizer of the given kind fitted to a corpus streamed as text chunks.

    char: the corpus's characters. word: its vocab_size (default 8192) most frequent pieces.
    tiktoken: GPT-2 BPE, compact over the GPT-2 tokens the corpus uses, or full when chunks is None.
    bpe: a byte-level BPE of vocab_size ids (default 4096) learned from the chunks.
    """
    if name not in _CLASSES:
        raise ScratchGPTError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZER_NAMES)}")
    if vocab_size is not None and name not in ("word", "bpe"):
        raise ScratchGPTError(f"vocab_size applies only to the word and bpe tokenizers, not {name}; leave it out")
    if name == "tiktoken":
        return TiktokenTokenizer() if chunks is None else TiktokenTokenizer.fit(chunks)
    if chunks is None:
        raise ScratchGPTError(f"the {name} tokenizer is fitted to a corpus; give it the corpus text")
    if name == "word":
        return WordTokenizer.fit(chunks, vocab_size=vocab_size)
    if name == "bpe":
        return LearnedBPETokenizer.fit(chunks, vocab_size=vocab_size)
    return CharTokenizer.fit(chunks)


def tokenizer_from_spec(spec: dict) -> Tokenizer:
    """The tokenizer a spec (from Tokenizer.spec(), e.g. read back from a checkpoint) describes."""
    name = spec.get("name") if isinstance(spec, dict) else None
    if name not in _CLASSES:
        raise ScratchGPTError(
            f"unknown tokenizer {name!r} in spec (known: {', '.join(TOKENIZER_NAMES)}); "
            "if a newer ScratchGPT wrote it, upgrade"
        )
    return _CLASSES[name].from_spec(spec)
