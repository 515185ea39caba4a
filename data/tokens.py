"""A corpus tokenized once into a flat file of token ids, memory-mapped on every later use.

The file is named after the corpus's sha256 and the tokenizer spec's sha256, so a changed corpus
or vocabulary never reads stale ids, and it is written to a temporary name and renamed into place,
so a crashed run never leaves a half-written file under the final name.

Beside it, NAME.bin.json records what was written: its length, a CRC-32 of its bytes, the vocabulary
size, and the file's inode and modification time. Every use compares the length (a stat); the CRC
and the id range are checked again only when the file is not the one recorded (another inode or
mtime: something wrote it), at about 6 GB/s, so a multi-GB cache costs a stat on each use and a
full read only after a change. A truncated, damaged or foreign file is rebuilt, with one notice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core import paths
from ..core.files import atomic_file, atomic_write_bytes
from ..tokenizers import Tokenizer
from ..tokenizers.base import batched
from .corpus import CHUNK_BYTES, Corpus, iter_text

TRAIN_FRACTION = 0.9  # the first 90% of the tokens train, the last 10% validate (as nanoGPT)
CRC_BLOCK = 8 << 20  # bytes read at a time when a token file is checked again
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


def record_file(path: Path) -> Path:
    """Where the record of token file path (its length, CRC and identity) is kept."""
    return path.with_name(path.name + ".json")


def _identity(st: os.stat_result) -> dict:
    return {"bytes": st.st_size, "inode": st.st_ino, "mtime_ns": st.st_mtime_ns}


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while block := f.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def check_token_file(path: Path, vocab_size: int) -> str | None:
    """None when path holds the ids its record says were written, else what is wrong with it."""
    try:
        record = json.loads(record_file(path).read_text())
        st = path.stat()
    except FileNotFoundError:
        return "it has no record of what was written (made by an older version, or copied in)"
    except (OSError, ValueError):
        return "its record is unreadable"
    if not isinstance(record, dict) or record.get("vocab_size") != vocab_size:
        return "its record is for another vocabulary"
    if st.st_size != record.get("bytes"):
        return f"it has {st.st_size:,} bytes where {record.get('bytes'):,} were written"
    if _identity(st) == {k: record.get(k) for k in ("bytes", "inode", "mtime_ns")}:
        return None  # the very file written and checked: nothing has touched it since
    if _crc32(path) != record.get("crc32"):
        return "its bytes have changed since it was written"
    ids = np.memmap(path, dtype=token_dtype(vocab_size), mode="r") if st.st_size else np.zeros(0)
    if ids.size and int(ids.max()) >= vocab_size:
        return "it holds ids outside the vocabulary"
    _write_record(path, path, crc=record["crc32"], vocab_size=vocab_size)  # the same bytes, rewritten or copied
    return None


def _write_record(path: Path, written: Path, *, crc: int, vocab_size: int) -> None:
    """Record for token file path that written (path itself, or the file about to be renamed to it) holds these ids."""
    record = {**_identity(written.stat()), "crc32": crc, "vocab_size": vocab_size}
    atomic_write_bytes(record_file(path), json.dumps(record).encode())


def load_tokens(
    corpus: Corpus, tokenizer: Tokenizer, *, lossy: bool = False, notify: Callable[[str], None] | None = None
) -> np.ndarray:
    """Every token id of corpus, as a read-only memory map of the cached token file (made on first use).

    The corpus is streamed: its text is cut into pieces at stable points (see _stable_pieces), and
    batches of pieces are encoded (GPT-2 BPE on one thread per CPU) and appended, so memory stays
    bounded by a few batches however large the corpus. The ids equal those of one encode over the
    whole text for the char, word and GPT-2 BPE tokenizers.

    The file is keyed by corpus and tokenizer, not by `lossy`: a token file made with lossy=True
    from a corpus that is not UTF-8 is reused by later calls without it (`scratchgpt eval` after
    `train --lossy`); for a UTF-8 corpus both give the same ids.

    A cached file that fails `check_token_file` is rebuilt, and notify (if given) hears why.
    """
    path = token_file(corpus, tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    if path.is_file() and (problem := check_token_file(path, tokenizer.vocab_size)):
        if notify is not None:
            notify(f"the token cache {path} is rebuilt: {problem}")
        path.unlink(missing_ok=True)
    if not path.is_file():
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
    """The ids of pieces, written to path atomically, with its record."""
    crc = 0

    # the record first: a rename keeps inode and mtime, so whoever sees the file sees its record
    def record(temp: Path) -> None:  # reads crc when called: after the last write
        _write_record(path, temp, crc=crc, vocab_size=tokenizer.vocab_size)

    with atomic_file(path, before_replace=record) as out:
        for ids in _encoded(pieces, tokenizer):
            if ids.size and (ids.min() < 0 or ids.max() >= tokenizer.vocab_size):
                raise ValueError(f"{tokenizer!r} produced ids outside range({tokenizer.vocab_size})")
            data = ids.astype(dtype).tobytes()
            crc = zlib.crc32(data, crc)
            out.write(data)


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
