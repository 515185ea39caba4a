"""Corpora: find one by name (local copy, cache, or download) or by path, and stream it as text.

A registered corpus is checked against its published sha256 wherever it is found, so a token
file cached under that hash always matches the text. Any other text file is a corpus too,
named after its file's stem and identified by its own sha256.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core import paths
from ..core.errors import ScratchGPTError
from ..core.files import atomic_file
from ..core.text import closest

HASH_BLOCK = 1 << 20  # bytes read at a time when hashing or downloading
# bytes of text decoded at a time: tokenizers fit and encode a chunk (or a few, on threads) at once,
# and 4 MiB chunks raised the peak memory of fitting GPT-2 BPE by about 100 MB
CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class CorpusSource:
    """Where a registered corpus comes from and what its bytes must hash to."""

    filename: str  # its name in $SCRATCHGPT_DATA or the cache
    url: str
    sha256: str


CORPORA: dict[str, CorpusSource] = {
    "tinyshakespeare": CorpusSource(
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}


@dataclass(frozen=True)
class Corpus:
    """A text file on this machine, known by its hash."""

    name: str  # the registered name, or the file's stem for a corpus given by path
    path: Path  # absolute
    sha256: str  # hex digest of the file's bytes
    size: int  # bytes


def data_dirs() -> list[Path]:
    """The directories searched for registered corpora, in order: $SCRATCHGPT_DATA's, then the cache."""
    listed = os.environ.get("SCRATCHGPT_DATA", "")
    return [Path(d).expanduser() for d in listed.split(os.pathsep) if d] + [corpus_cache_dir()]


def corpus_cache_dir() -> Path:
    """Where downloaded corpora go."""
    return paths.cache_dir() / "corpora"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read 1 MiB at a time so a large corpus never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _is_path(name_or_path: str | Path) -> bool:
    """A Path, or a string with a path separator, is a path; a registered name wins over a same-named file."""
    if isinstance(name_or_path, Path):
        return True
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(s in name_or_path for s in separators) or name_or_path not in CORPORA


def resolve_corpus(name_or_path: str | Path, *, download: bool = True) -> Corpus:
    """The corpus a name from CORPORA or a path to a text file stands for.

    A registered name is looked for in each directory of $SCRATCHGPT_DATA (os.pathsep-separated),
    then in the cache, and downloaded to the cache if it is nowhere (unless download=False).
    Write "./tinyshakespeare" for a file that happens to share a registered name.
    """
    if _is_path(name_or_path):
        return _path_corpus(Path(name_or_path).expanduser(), str(name_or_path))
    name = str(name_or_path)
    source = CORPORA[name]
    for directory in data_dirs():
        candidate = directory / source.filename
        if candidate.is_file():
            return _checked(name, candidate, source)
    return _checked(name, _download(name, source, download=download), source)


def check_corpus(name_or_path: str | Path) -> None:
    """Raise at once the error resolve_corpus would for a path that is no usable file (missing, a
    directory, empty), without reading it: a command checks what the user gave before anything else.
    A registered name passes (it is found or downloaded later)."""
    if _is_path(name_or_path):
        _usable_file(Path(name_or_path).expanduser(), str(name_or_path))


def _usable_file(path: Path, given: str) -> int:
    """The size of the corpus file at path; ScratchGPTError when it is missing, a directory or empty."""
    if not path.exists():
        registered = ", ".join(sorted(CORPORA))
        meant = closest(given, sorted(CORPORA))
        raise ScratchGPTError(
            f"corpus {given!r} is neither a file nor a registered corpus ({registered}); "
            + (f"did you mean {meant!r}?" if meant else "check the path")
        )
    if path.is_dir():
        raise ScratchGPTError(f"corpus {given!r} is a directory; give a UTF-8 text file")
    size = path.stat().st_size
    if size == 0:
        raise ScratchGPTError(f"corpus {given!r} is empty; give a UTF-8 text file")
    return size


def _path_corpus(path: Path, given: str) -> Corpus:
    size = _usable_file(path, given)
    try:
        sha = file_sha256(path)
    except OSError as e:
        raise ScratchGPTError(f"cannot read corpus {given!r} ({e.strerror or e}); check its permissions") from None
    return Corpus(name=path.stem, path=path.resolve(), sha256=sha, size=size)


def _checked(name: str, path: Path, source: CorpusSource) -> Corpus:
    sha = file_sha256(path)
    if sha != source.sha256:
        raise ScratchGPTError(
            f"{path} is not the {name} corpus (sha256 {sha[:12]}..., expected {source.sha256[:12]}...)",
            cli_hint=f"delete or replace it, or pass --corpus {path} to train on it as your own text",
            repl_hint=f"delete or replace it, or /corpus {path} trains on it as your own text",
        )
    return Corpus(name=name, path=path.resolve(), sha256=sha, size=path.stat().st_size)


def _download(name: str, source: CorpusSource, *, download: bool) -> Path:
    """source fetched into the cache: streamed to a temporary file, hash-checked, renamed into place."""
    target = corpus_cache_dir() / source.filename
    put = f"put {source.filename} in $SCRATCHGPT_DATA or {target.parent}"
    where = {
        "cli_hint": f"{put}, or pass --corpus PATH",
        "repl_hint": f"{put}, or give one with /train N PATH or /corpus PATH",
    }
    if not download:
        raise ScratchGPTError(f"corpus {name!r} is not on this machine and downloading is off", **where)
    digest = hashlib.sha256()

    def check_hash(_: Path) -> None:
        if digest.hexdigest() != source.sha256:
            raise ScratchGPTError(
                f"downloaded {name!r} from {source.url} but its sha256 is {digest.hexdigest()[:12]}..., "
                f"expected {source.sha256[:12]}...",
                **where,
            )

    try:
        with (
            urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            atomic_file(target, before_replace=check_hash) as out,
        ):
            while block := response.read(HASH_BLOCK):
                digest.update(block)
                out.write(block)
    except (OSError, http.client.HTTPException, ValueError) as e:
        reason = " ".join(_reason(e).split())  # one line
        raise ScratchGPTError(
            f"corpus {name!r} is not on this machine and could not be downloaded ({reason})", **where
        ) from None
    return target


def _reason(e: Exception) -> str:
    """What went wrong with a download, in a few words."""
    if isinstance(e, urllib.error.HTTPError):
        return str(e)  # "HTTP Error 404: Not Found"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def iter_text(corpus: Corpus, *, chunk_bytes: int = CHUNK_BYTES, lossy: bool = False) -> Iterator[str]:
    """The corpus as text chunks of about chunk_bytes bytes each, never splitting a character.

    Decoded incrementally, so memory stays bounded by the chunk size however large the file.
    Bytes that are not UTF-8 raise a ScratchGPTError naming the first one's offset, or with
    lossy=True become U+FFFD. A leading byte-order mark is kept as text (U+FEFF).
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace" if lossy else "strict")
    offset = 0  # of the next byte to read
    with open(corpus.path, "rb") as f:
        while True:
            block = f.read(chunk_bytes)
            # the decoder decodes its held-back bytes (an unfinished character) followed by block
            held = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise ScratchGPTError(
                    f"{corpus.path} is not UTF-8 text (bad byte at offset {offset - held + e.start})",
                    cli_hint="convert it to UTF-8, or pass --lossy to replace bad bytes with U+FFFD",
                    repl_hint="convert it to UTF-8, or scratchgpt train --lossy (in a shell) reads it with bad bytes "
                    "as U+FFFD",
                ) from None
            if text:
                yield text
            if not block:
                return
            offset += len(block)
