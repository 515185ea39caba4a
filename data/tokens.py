"""A corpus tokenized once into a flat file of token ids, memory-mapped on every later use.

The file is named after the corpus's sha256 and the tokenizer spec's sha256, so a changed corpus
or vocabulary never reads stale ids, and it is written to a temporary name and renamed into place,
so a crashed run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import paths
from ..tokenizers import Tokenizer
from ..tokenizers.base import batched
from .corpus import CHUNK_BYTES, Corpus, iter_text

TRAIN_FRACTION = 0.9  # the first 90% of the tokens train, the last 10% validate (as nanoGPT)
STALE_TMP_S = 3600  # a temporary token file untouched this long belongs to a run that died
PIECES_PER_BATCH = os.cpu_count() or 1  # pieces given to one encode_batch call: one per thread
# "\n" between two non-space characters: no token of the char, word or GPT-2 BPE tokenizers spans it,
# and the whitespace run it belongs to is that one "\n", so text cut just after it encodes the same in pieces.
_STABLE_CUT = re.compile(r"\S\n\S")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id (uint16 up to 65536 ids, else uint32), little-endian."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def token_file(corpus: Corpus, tokenizer: Tokenizer) -> Path:
    """Where load_tokens keeps the ids of corpus under tokenizer."""
    spec_hash = hashlib.sha256(json.dumps(tokenizer.spec(), sort_keys=True).encode("utf-8")).hexdigest()
    return paths.cache_dir() / "tokens" / f"{corpus.sha256[:16]}-{spec_hash[:16]}.bin"


def load_tokens(corpus: Corpus, tokenizer: Tokenizer, *, lossy: bool = False) -> np.ndarray:
    """Every token id of corpus, as a read-only memory map of the cached token file (made on first use).

    The corpus is streamed: its text is cut into pieces at stable points (see _stable_pieces), and
    batches of pieces are encoded (GPT-2 BPE on one thread per CPU) and appended, so memory stays
    bounded by a few batches however large the corpus. The ids equal those of one encode over the
    whole text for the char, word and GPT-2 BPE tokenizers.

    The file is keyed by corpus and tokenizer, not by `lossy`: a token file made with lossy=True
    from a corpus that is not UTF-8 is reused by later calls without it (`scratchgpt eval` after
    `train --lossy`); for a UTF-8 corpus both give the same ids.
    """
    path = token_file(corpus, tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(path)
        pieces = _stable_pieces(iter_text(corpus, chunk_bytes=CHUNK_BYTES, lossy=lossy))
        _write_tokens(path, pieces, tokenizer, dtype)
    if path.stat().st_size == 0:  # np.memmap cannot map an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _encoded(pieces: Iterable[str], tokenizer: Tokenizer) -> Iterator[np.ndarray]:
    """The ids of each piece, in order.

    Batches of PIECES_PER_BATCH pieces go to tokenizer.encode_batch on a background thread, so the
    next batch encodes while this one's ids are written and the following one is read: at most
    three batches are in memory at once.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="scratchgpt-encode")
    try:
        pending: Future[list[np.ndarray]] | None = None
        for batch in batched(pieces, PIECES_PER_BATCH):
            queued = pool.submit(tokenizer.encode_batch, batch)
            if pending is not None:
                yield from pending.result()
            pending = queued
        if pending is not None:
            yield from pending.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _write_tokens(path: Path, pieces: Iterable[str], tokenizer: Tokenizer, dtype: np.dtype) -> None:
    """The ids of pieces, appended to a temporary file, fsynced and renamed to path."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for ids in _encoded(pieces, tokenizer):
                if ids.size and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
                    raise ValueError(f"{tokenizer!r} produced ids outside range({tokenizer.vocab_size})")
                out.write(ids.astype(dtype).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _remove_stale_tmp(path: Path) -> None:
    """Temporary files a killed run left for path (a live writer touches its file far more often)."""
    now = time.time()
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()


def _stable_pieces(chunks: Iterable[str], *, max_carry: int = 1 << 24) -> Iterator[str]:
    """The text of chunks re-cut just after a "\\n" lying between two non-space characters.

    Whatever follows the last such point in a chunk is carried into the next. A tokenizer whose
    tokens never span such a point (char, word, GPT-2 BPE) encodes the pieces exactly as the whole
    text. A stretch of more than max_carry characters without one is cut where it ends, which
    may change a few BPE tokens there (only text without such line breaks for megabytes does this).
    """
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        # text before max(len(carry) - 2, 0) was searched already; search the rest from its end
        start = max(len(carry) - 2, 0)
        match = _STABLE_CUT.search(text[start:][::-1])  # the pattern reads the same reversed
        if match:
            cut = len(text) - match.start() - 1  # just after the "\n"
        elif len(text) > max_carry:
            cut = len(text)
        else:
            carry = text
            continue
        yield text[:cut]
        carry = text[cut:]
    if carry:
        yield carry


def split_tokens(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): the first 90% of tokens and the last 10%, as views."""
    n = int(TRAIN_FRACTION * len(tokens))
    return tokens[:n], tokens[n:]
