"""What every tokenizer offers, the one streaming decoder, and the checks a saved spec must pass."""

from __future__ import annotations

import abc
import codecs
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from ..core.errors import ScratchGPTError

SPEC_VERSION = 1  # the newest tokenizer spec this code reads and the one it writes
T = TypeVar("T")


class Tokenizer(abc.ABC):
    """Text <-> token ids. Subclasses set `name` and say how they treat text they cannot represent."""

    name: str  # "char" | "tiktoken" | "word": the key in a spec and on the command line
    # ids that stand for no text of their own (a word vocabulary's <unk>): scored in eval, never sampled
    never_sampled: tuple[int, ...] = ()

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids; every id in range(vocab_size) decodes."""

    @abc.abstractmethod
    def encode_array(self, text: str) -> np.ndarray:
        """The ids of text as an int64 array, vectorized so whole corpora encode quickly; never raises.

        Every tokenizer reads a lone surrogate as U+FFFD (see replace_lone_surrogates) and lists it in unknown().
        """

    def encode(self, text: str) -> list[int]:
        """The ids of text; never raises (text the vocabulary lacks follows the tokenizer's policy)."""
        return self.encode_array(text).tolist()

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """encode_array of each text, in order; a tokenizer that encodes several texts at once faster overrides it."""
        return [self.encode_array(text) for text in texts]

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """The text ids stand for; byte sequences that are not UTF-8 become U+FFFD."""

    @abc.abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one token stands for (a BPE token may hold part of a character)."""

    @abc.abstractmethod
    def spec(self) -> dict:
        """JSON-able description, {"name": ..., "version": ..., ...}, that tokenizer_from_spec rebuilds."""

    @abc.abstractmethod
    def unknown(self, text: str) -> list[str]:
        """Distinct pieces of text the vocabulary cannot represent exactly, in order of first appearance."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} vocab_size={self.vocab_size}>"


UNKNOWN_SHOWN = 8  # pieces a notice names


def unknown_notice(tokenizer: Tokenizer, pieces: list[str]) -> str:
    """The one line that says which pieces of a text tokenizer lacks, and what becomes of them."""
    named = ", ".join(repr(p) for p in pieces[:UNKNOWN_SHOWN]) + (" ..." if len(pieces) > UNKNOWN_SHOWN else "")
    policy = "become <unk>" if tokenizer.name == "word" else "are approximated or dropped"
    return f"not in this model's {tokenizer.name} vocabulary, so they {policy}: {named}"


class StreamDecoder:
    """Turns token ids into text one id at a time, for printing as a model generates.

    A BPE token can end in the middle of a UTF-8 character (an emoji is often three tokens);
    its bytes are held back until the character is complete. Joining every `push` and the
    final `flush` gives exactly `tokenizer.decode(ids)`.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text that token_id completes (possibly empty)."""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """Whatever is held back, an incomplete character becoming U+FFFD; the decoder starts afresh."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Consecutive lists of n items, the last possibly shorter (itertools.batched, Python 3.12, as lists)."""
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def check_spec(spec: object, name: str, fields: dict[str, type | tuple[type, ...]]) -> dict:
    """spec, once it is known to be a version this code reads holding `fields` of the given types."""
    if not isinstance(spec, dict):
        raise ScratchGPTError(f"tokenizer spec must be a JSON object, not {type(spec).__name__}; the file is damaged")
    version = spec.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ScratchGPTError(f"{name} tokenizer spec has no valid 'version' (got {version!r}); the file is damaged")
    if version > SPEC_VERSION:
        raise ScratchGPTError(f"{name} tokenizer spec version {version} was written by a newer ScratchGPT; upgrade")
    for field, kind in fields.items():
        if field not in spec:
            raise ScratchGPTError(f"{name} tokenizer spec lacks {field!r}; the file is damaged")
        if not isinstance(spec[field], kind):
            raise ScratchGPTError(f"{name} tokenizer spec has a malformed {field!r}; the file is damaged")
    return spec


def from_checked_spec(cls: type[T], spec: object, name: str, field: str, kind: type) -> T:
    """cls built from the one field of its spec, a damaged value (a repeated token, say) one line."""
    value = check_spec(spec, name, {field: kind})[field]
    try:
        return cls(value)
    except ValueError as e:
        raise ScratchGPTError(f"{name} tokenizer spec is invalid: {e}; the file is damaged") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def replace_lone_surrogates(text: str) -> str:
    """text with each lone surrogate (U+D800..U+DFFF) made U+FFFD, the policy every tokenizer follows.

    A Python str can hold code points no UTF-8 file can (surrogateescape leaves them for undecodable
    bytes); they are read as the replacement character a UTF-8 decoder gives for bad bytes, one each.
    """
    return _LONE_SURROGATE.sub(REPLACEMENT, text) if _LONE_SURROGATE.search(text) else text


def lone_surrogates(text: str) -> list[str]:
    """The distinct lone surrogates of text, in order of first appearance."""
    return list(dict.fromkeys(_LONE_SURROGATE.findall(text)))


def utf8_encodable(text: str) -> bool:
    """False for text holding lone surrogates, which no UTF-8 byte sequence stands for."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
