"""One token per character: the vocabulary is the sorted set of characters of the corpus.

Unknown characters (policy; deterministic, never raises): a character outside the vocabulary is
NFKD-decomposed and stripped of combining marks (Unicode category M), and each character that
leaves is kept if the vocabulary has it, so "é" -> "e", "ü" -> "u" and "ﬁ" -> "fi" for a vocabulary
of plain letters. Whatever is still unknown is dropped. `normalize(text)` is the text this policy
makes of text, so `decode(encode(text)) == normalize(text)` always, and `== text` when
`unknown(text)` is empty. Lone surrogates are never part of a vocabulary (they have no UTF-8 form): each
is listed by `unknown` and read as U+FFFD, kept if the vocabulary has it and dropped otherwise.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

import numpy as np

from ..core.errors import ScratchGPTError
from .base import SPEC_VERSION, Tokenizer, from_checked_spec, replace_lone_surrogates, utf8_encodable


def _code_points(text: str) -> np.ndarray:
    """(len(text),) uint32 array of the code points of text, lone surrogates included."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _vocabulary_chars(chars: Iterable[str]) -> list[str]:
    return sorted(c for c in chars if utf8_encodable(c))


class CharTokenizer(Tokenizer):
    """Character-level tokenizer; id i stands for chars[i]."""

    name = "char"

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("character vocabulary repeats a character")
        if not utf8_encodable(chars):
            raise ValueError("character vocabulary holds a lone surrogate")
        self.chars = chars  # the vocabulary: chars[i] is token i
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, chunks: Iterable[str]) -> CharTokenizer:
        """Vocabulary = the sorted distinct characters of the corpus."""
        seen: set[str] = set()
        for chunk in chunks:
            seen.update(chunk)
        chars = "".join(_vocabulary_chars(seen))
        if not chars:
            raise ScratchGPTError("cannot fit a char tokenizer on an empty corpus; give it some text")
        return cls(chars)

    @classmethod
    def from_spec(cls, spec: dict) -> CharTokenizer:
        return from_checked_spec(cls, spec, "char", "chars", str)

    def spec(self) -> dict:
        return {"name": self.name, "version": SPEC_VERSION, "chars": self.chars}

    def extend(self, chunks: Iterable[str]) -> CharTokenizer:
        """A tokenizer that also knows the new characters of chunks: old ids kept, new ones appended sorted."""
        seen: set[str] = set()
        for chunk in chunks:
            seen.update(chunk)
        return CharTokenizer(self.chars + "".join(_vocabulary_chars(seen - self._ids.keys())))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @functools.cached_property
    def _id_of_code_point(self) -> np.ndarray:
        """(max code point + 2,) int64: the id of each code point, -1 if unknown (the last entry for any beyond)."""
        table = np.full(max(map(ord, self.chars)) + 2, -1, dtype=np.int64)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        return table

    def _lookup(self, text: str) -> np.ndarray:
        """(len(text),) int64 ids, -1 for characters outside the vocabulary."""
        table = self._id_of_code_point
        return table[np.minimum(_code_points(text), len(table) - 1)]

    def _fallback(self, char: str) -> str:
        """What the unknown-character policy makes of one character outside the vocabulary."""
        decomposed = unicodedata.normalize("NFKD", replace_lone_surrogates(char))
        return "".join(c for c in decomposed if c in self._ids and not unicodedata.category(c).startswith("M"))

    def unknown(self, text: str) -> list[str]:
        """Distinct characters of text outside the vocabulary, in order of first appearance."""
        code_points = _code_points(text)
        missing = code_points[self._lookup(text) < 0]
        distinct, first = np.unique(missing, return_index=True)
        return [chr(c) for c in distinct[np.argsort(first)]]

    def normalize(self, text: str) -> str:
        """text with the unknown-character policy applied: exactly what decode(encode(text)) gives."""
        unknown = self.unknown(text)
        if not unknown:
            return text
        return text.translate({ord(c): self._fallback(c) for c in unknown})

    def encode_array(self, text: str) -> np.ndarray:
        ids = self._lookup(text)
        if (ids < 0).any():
            ids = self._lookup(self.normalize(text))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join([self.chars[i] for i in ids])

    def token_bytes(self, token_id: int) -> bytes:
        return self.chars[token_id].encode("utf-8")
