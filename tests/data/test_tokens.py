"""load_tokens: tokenized once into a cached token file, equal to one whole encode; split_tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from scratchgpt.core import paths
from scratchgpt.data import iter_text, load_tokens, resolve_corpus, split_tokens, token_dtype, token_file
from scratchgpt.data import tokens as tokens_module
from scratchgpt.data.tokens import _stable_pieces, check_token_file, record_file
from scratchgpt.tokenizers import bpe, fit_tokenizer


class WideTokenizer:
    """Stand-in with more ids than uint16 holds: id = code point + 65536."""

    name = "wide"
    vocab_size = 70_000

    def encode_array(self, text: str) -> np.ndarray:
        return np.array([ord(c) for c in text], dtype=np.int64) + 65_536

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode_array(text) for text in texts]

    def spec(self) -> dict:
        return {"name": self.name, "version": 1}


def count_encodes(monkeypatch, tokenizer) -> list[int]:
    """Record the length of every text tokenizer.encode_array is given."""
    calls: list[int] = []
    encode = tokenizer.encode_array

    def counting(text):
        calls.append(len(text))
        return encode(text)

    monkeypatch.setattr(tokenizer, "encode_array", counting)
    return calls


def test_char_tokens_equal_one_encode_of_the_whole_text(shakespeare_text):
    corpus = resolve_corpus("tinyshakespeare")
    tokenizer = fit_tokenizer("char", iter_text(corpus))
    tokens = load_tokens(corpus, tokenizer)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16 and not tokens.flags.writeable
    np.testing.assert_array_equal(tokens, tokenizer.encode_array(shakespeare_text))


@pytest.mark.parametrize("form", ["full", "compact"])
def test_threaded_gpt2_tokens_equal_one_encode_of_the_whole_text(shakespeare_text, monkeypatch, form):
    corpus = resolve_corpus("tinyshakespeare")
    tokenizer = fit_tokenizer("tiktoken", None if form == "full" else iter_text(corpus))
    # small pieces, several batches of several pieces, more threads than pieces in the last batch
    monkeypatch.setattr(tokens_module, "CHUNK_BYTES", 1 << 16)
    monkeypatch.setattr(tokens_module, "PIECES_PER_BATCH", 5)
    monkeypatch.setattr(bpe, "ENCODE_THREADS", 4)
    encoding = bpe.gpt2_encoding()
    batch_sizes: list[int] = []
    encode_batch = encoding.encode_ordinary_batch

    def counting(texts, *, num_threads):
        assert num_threads == 4
        batch_sizes.append(len(texts))
        return encode_batch(texts, num_threads=num_threads)

    monkeypatch.setattr(encoding, "encode_ordinary_batch", counting)
    tokens = load_tokens(corpus, tokenizer)
    assert len(batch_sizes) > 2 and batch_sizes[0] == 5
    whole = encoding.encode_ordinary(shakespeare_text)  # one single-threaded call over the whole text
    expected = whole if form == "full" else tokenizer.encode_array(shakespeare_text)
    np.testing.assert_array_equal(tokens, expected)
    if form == "compact":
        assert tokenizer.gpt2_ids(tokens) == whole


def test_the_second_load_reads_the_cache_without_encoding(make_corpus, monkeypatch, shakespeare_head):
    corpus = make_corpus(shakespeare_head)
    tokenizer = fit_tokenizer("char", [shakespeare_head])
    calls = count_encodes(monkeypatch, tokenizer)
    first = load_tokens(corpus, tokenizer)
    assert sum(calls) == len(shakespeare_head)
    calls.clear()
    second = load_tokens(corpus, tokenizer)
    assert calls == []
    np.testing.assert_array_equal(first, second)


def test_the_token_file_is_keyed_by_corpus_and_tokenizer_spec(make_corpus):
    corpus = make_corpus("abcabc\n")
    other_corpus = make_corpus("abcabd\n", "other.txt")
    tokenizer = fit_tokenizer("char", ["abcd\n"])
    path = token_file(corpus, tokenizer)
    assert path.parent == paths.cache_dir() / "tokens"
    assert path.name.startswith(corpus.sha256[:16] + "-") and path.suffix == ".bin"
    assert token_file(other_corpus, tokenizer) != path
    assert token_file(corpus, fit_tokenizer("char", ["abcde\n"])) != path
    assert token_file(corpus, fit_tokenizer("char", ["abcd\n"])) == path
    load_tokens(corpus, tokenizer)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, record_file(path).name]


def test_ids_above_uint16_are_stored_as_uint32(make_corpus):
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    tokens = load_tokens(make_corpus("héllo\n"), WideTokenizer())
    assert tokens.dtype == np.uint32
    assert tokens.tolist() == [ord(c) + 65_536 for c in "héllo\n"]


def test_a_failed_tokenization_leaves_no_token_file(make_corpus, monkeypatch):
    corpus = make_corpus("abc\n")
    tokenizer = fit_tokenizer("char", ["abc\n"])

    def crash(text):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenizer, "encode_array", crash)
    with pytest.raises(KeyboardInterrupt):
        load_tokens(corpus, tokenizer)
    assert list(token_file(corpus, tokenizer).parent.iterdir()) == []


def test_a_stale_temporary_file_from_a_killed_run_is_removed(make_corpus):
    corpus = make_corpus("abc\n")
    tokenizer = fit_tokenizer("char", ["abc\n"])
    path = token_file(corpus, tokenizer)
    path.parent.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # its pid names no process now: the writer of the temp file below was killed
    stale = path.parent / f".{path.name}.{gone.pid}@{socket.gethostname()}.x1y2.tmp"
    stale.write_bytes(b"\0" * 10)
    live = path.parent / f".{path.name}.{os.getpid()}@{socket.gethostname()}.x3y4.tmp"  # a live writer's: kept
    live.write_bytes(b"\0" * 10)
    load_tokens(corpus, tokenizer)
    assert live.exists()
    live.unlink()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, record_file(path).name]


def test_lossy_tokens_are_cached_for_a_corpus_that_is_not_utf8(make_corpus):
    corpus = make_corpus(b"ab\xffc\n")
    tokenizer = fit_tokenizer("char", iter_text(corpus, lossy=True))
    assert tokenizer.decode(load_tokens(corpus, tokenizer, lossy=True)) == "ab\ufffdc\n"


@pytest.mark.parametrize("name", ["word", "tiktoken"])
def test_stable_pieces_encode_like_the_whole_text(make_corpus, shakespeare_head, name):
    text = shakespeare_head + "\n\n  odd   spacing\t\n\n\nend"
    tokenizer = fit_tokenizer(name, [text])
    chunks = list(iter_text(make_corpus(text), chunk_bytes=997))
    pieces = list(_stable_pieces(chunks))
    assert "".join(pieces) == text and len(pieces) > 10
    whole = tokenizer.encode_array(text)
    np.testing.assert_array_equal(np.concatenate([tokenizer.encode_array(p) for p in pieces]), whole)
    if name == "tiktoken":  # the cut points matter: the raw chunks encode differently
        naive = np.concatenate([tokenizer.encode_array(c) for c in chunks])
        assert len(naive) != len(whole) or (naive != whole).any()


def test_a_long_stretch_without_a_stable_cut_is_cut_anyway():
    chunks = ["x" * 10] * 5 + ["a\nb"]
    pieces = list(_stable_pieces(chunks, max_carry=25))
    assert "".join(pieces) == "".join(chunks)
    assert max(map(len, pieces)) <= 30


def test_split_is_the_first_90_percent_and_the_last_10():
    tokens = np.arange(1000, dtype=np.uint16)
    train, val = split_tokens(tokens)
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))
    train, val = split_tokens(np.arange(11))
    assert len(train) == 9 and len(val) == 2  # n = int(0.9 * len)


# --- a damaged cache is found and rebuilt --------------------------------------------------------


def _damaged(path, how: str) -> None:
    """Damage a token file as a full disk, a bad sector, or a copy from elsewhere would."""
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[:1000])
    elif how == "flipped":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(data)
    elif how == "foreign":  # another file in its place, without its record
        record_file(path).unlink()
        path.write_bytes(np.full(len(data) // 2, 60_000, dtype="<u2").tobytes())


@pytest.mark.parametrize("how", ["truncated", "flipped", "foreign"])
def test_a_damaged_token_cache_is_rebuilt_with_one_notice(make_corpus, shakespeare_head, how):
    corpus = make_corpus(shakespeare_head)
    tokenizer = fit_tokenizer("char", [shakespeare_head])
    good = np.array(load_tokens(corpus, tokenizer))
    path = token_file(corpus, tokenizer)
    _damaged(path, how)
    notices: list[str] = []
    again = load_tokens(corpus, tokenizer, notify=notices.append)
    assert np.array_equal(again, good)  # the corpus's every id, not what the damaged file held
    assert len(notices) == 1 and str(path) in notices[0] and "rebuilt" in notices[0], notices
    assert load_tokens(corpus, tokenizer, notify=notices.append).shape == good.shape and len(notices) == 1


def test_ids_outside_the_vocabulary_are_caught_even_with_a_matching_checksum(make_corpus, shakespeare_head):
    import json
    import zlib

    corpus = make_corpus(shakespeare_head)
    tokenizer = fit_tokenizer("char", [shakespeare_head])
    load_tokens(corpus, tokenizer)
    path = token_file(corpus, tokenizer)
    bad = np.full(path.stat().st_size // 2, tokenizer.vocab_size + 7, dtype="<u2").tobytes()
    path.write_bytes(bad)
    record = json.loads(record_file(path).read_text())
    record_file(path).write_text(json.dumps({**record, "crc32": zlib.crc32(bad)}))
    assert check_token_file(path, tokenizer.vocab_size) == "it holds ids outside the vocabulary"
    assert int(load_tokens(corpus, tokenizer).max()) < tokenizer.vocab_size


def test_an_unchanged_token_file_is_checked_by_a_stat_and_a_copy_by_its_checksum(make_corpus, monkeypatch):
    import shutil

    corpus = make_corpus("abc\n" * 1000)
    tokenizer = fit_tokenizer("char", ["abc\n"])
    load_tokens(corpus, tokenizer)
    path = token_file(corpus, tokenizer)
    reads: list[str] = []
    real = tokens_module._crc32
    monkeypatch.setattr(tokens_module, "_crc32", lambda p: reads.append(p.name) or real(p))
    assert check_token_file(path, tokenizer.vocab_size) is None and reads == []  # the file written: no read
    shutil.copy(path, path.with_suffix(".copy"))
    os.replace(path.with_suffix(".copy"), path)  # the same bytes, another inode
    assert check_token_file(path, tokenizer.vocab_size) is None and reads == [path.name]
    assert check_token_file(path, tokenizer.vocab_size) is None and reads == [path.name]  # recorded anew
