"""Word-level tokenizer: the most frequent words, punctuation marks and whitespace runs of a corpus.

Text splits into runs of word characters (`\\w+`), runs of whitespace (`\\s+`) and single other
characters (punctuation, symbols), so the pieces join back to the text. Id 0 is "<unk>"; then
come the corpus's most frequent pieces, most frequent first, ties in order of first appearance.

Unknown pieces (policy; never raises): a piece outside the vocabulary encodes as id 0 and
decodes as "<unk>". `normalize(text)` is the text with each unknown piece replaced by "<unk>",
exactly what `decode(encode(text))` gives. The splitter never yields "<unk>" as one piece, so
text that contains it stays unambiguous. A lone surrogate (no UTF-8 form) is an unknown piece read as
U+FFFD: that token if the vocabulary has it, else "<unk>".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from ..core.errors import ScratchGPTError
from .base import SPEC_VERSION, Tokenizer, from_checked_spec, replace_lone_surrogates, utf8_encodable

UNK = "<unk>"
DEFAULT_VOCAB_SIZE = 8192
MAX_COUNTED = 1 << 18  # distinct pieces counted while fitting (tens of MB); see _count_pieces
MAX_PIECE = 1 << 20  # characters of one piece; a longer run is counted in parts
_PIECE = re.compile(r"\w+|\s+|[^\w\s]")


def split(text: str) -> list[str]:
    """The pieces (candidate tokens) of text; "".join(split(text)) == text."""
    return _PIECE.findall(text)


def _count_pieces(chunks: Iterable[str], *, max_distinct: int = MAX_COUNTED) -> Counter[str]:
    """Piece counts over a corpus given in chunks, as if it were one string, in bounded memory.

    A chunk's last piece may continue into the next chunk (a word cut in two), so it is
    carried over and split again with the next one (unless it is already MAX_PIECE long).
    When more than max_distinct pieces are counted, the rarest are forgotten until at most
    max_distinct // 2 remain, so a corpus with millions of distinct words (numbers, names, typos)
    fits in memory. The counts are exact until that happens, and afterwards still for any piece
    frequent enough never to be forgotten: in natural text, the few thousand a vocabulary keeps.
    """
    counts: Counter[str] = Counter()
    carry = ""
    for chunk in chunks:
        pieces = split(carry + chunk)
        carry = pieces.pop() if pieces else ""
        if len(carry) >= MAX_PIECE:
            pieces.append(carry)
            carry = ""
        counts.update(pieces)
        if len(counts) > max_distinct:
            counts = _most_frequent(counts, max_distinct // 2)
    if carry:
        counts[carry] += 1
    return counts


def _most_frequent(counts: Counter[str], n: int) -> Counter[str]:
    """The entries of counts whose count is above some level, as many as fit in n (order kept)."""
    kept, level = 0, 0
    for count, pieces in sorted(Counter(counts.values()).items(), reverse=True):
        if kept + pieces > n:
            level = count
            break
        kept += pieces
    return Counter({piece: count for piece, count in counts.items() if count > level})


class WordTokenizer(Tokenizer):
    """Word-level tokenizer; id i stands for tokens[i], id 0 for anything unknown."""

    name = "word"
    never_sampled = (0,)  # <unk>: printing it tells the reader nothing

    def __init__(self, tokens: Iterable[str]):
        self.tokens = tuple(tokens)  # the vocabulary: tokens[i] is token i, tokens[0] == "<unk>"
        if not self.tokens or self.tokens[0] != UNK:
            raise ValueError(f"word vocabulary must start with {UNK!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("word vocabulary repeats a token")
        if not all(isinstance(t, str) and t and utf8_encodable(t) for t in self.tokens):
            raise ValueError("word vocabulary holds a token that is not non-empty UTF-8 text")
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        del self._ids[UNK]  # the text "<unk>" splits into "<", "unk", ">"; id 0 is only for unknowns

    @classmethod
    def fit(cls, chunks: Iterable[str], *, vocab_size: int | None = None) -> WordTokenizer:
        """Vocabulary = "<unk>" + the vocab_size - 1 most frequent pieces of the corpus."""
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        if vocab_size < 2:
            raise ScratchGPTError(f"word vocab_size must be at least 2, got {vocab_size}; raise it")
        counts = _count_pieces(chunks, max_distinct=max(MAX_COUNTED, 16 * vocab_size))
        if not counts:
            raise ScratchGPTError("cannot fit a word tokenizer on an empty corpus; give it some text")
        # most_common sorts stably, so equal counts stay in order of first appearance
        kept = [piece for piece, _ in counts.most_common() if utf8_encodable(piece)][: vocab_size - 1]
        return cls([UNK, *kept])

    @classmethod
    def from_spec(cls, spec: dict) -> WordTokenizer:
        return from_checked_spec(cls, spec, "word", "tokens", list)

    def spec(self) -> dict:
        return {"name": self.name, "version": SPEC_VERSION, "tokens": list(self.tokens)}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def unknown(self, text: str) -> list[str]:
        """Distinct pieces of text outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(p for p in split(text) if p not in self._ids))

    def normalize(self, text: str) -> str:
        """text with every unknown piece replaced by "<unk>": exactly what decode(encode(text)) gives."""
        return "".join([p if p in self._ids else UNK for p in split(replace_lone_surrogates(text))])

    def encode_array(self, text: str) -> np.ndarray:
        pieces = split(replace_lone_surrogates(text))
        return np.fromiter(map(self._ids.get, pieces, [0] * len(pieces)), dtype=np.int64, count=len(pieces))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join([self.tokens[i] for i in ids])

    def token_bytes(self, token_id: int) -> bytes:
        return self.tokens[token_id].encode("utf-8")
