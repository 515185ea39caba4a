from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.tokenizers import WordTokenizer, fit_tokenizer, word
from scratchgpt.tokenizers.word import _count_pieces, split


def test_pieces_are_words_single_punctuation_and_whitespace_runs():
    assert split("Hello,  world!!\n\nOK") == ["Hello", ",", "  ", "world", "!", "!", "\n\n", "OK"]


def test_round_trip_on_shakespeare_is_exact_when_vocabulary_covers_it(word_shakespeare, shakespeare_text):
    assert word_shakespeare.unknown(shakespeare_text) == []
    assert word_shakespeare.decode(word_shakespeare.encode_array(shakespeare_text)) == shakespeare_text


def test_default_vocabulary_keeps_8192_tokens_and_round_trip_equals_normalize(shakespeare_text):
    tokenizer = fit_tokenizer("word", [shakespeare_text])
    assert tokenizer.vocab_size == 8192
    decoded = tokenizer.decode(tokenizer.encode_array(shakespeare_text))
    assert decoded == tokenizer.normalize(shakespeare_text)
    assert "<unk>" in decoded


def test_most_frequent_first_and_ties_in_order_of_first_appearance():
    tokenizer = fit_tokenizer("word", ["b a c a b"], vocab_size=4)
    assert tokenizer.tokens == ("<unk>", " ", "b", "a")  # " " x4, then b and a x2 (b seen first); c dropped


def test_unknown_pieces_encode_as_id_0_and_decode_as_unk():
    tokenizer = fit_tokenizer("word", ["to be or not to be"])
    assert tokenizer.encode("to see") == [tokenizer.encode("to")[0], tokenizer.encode(" ")[0], 0]
    assert tokenizer.decode(tokenizer.encode("to see, or")) == "to <unk><unk> or"
    assert tokenizer.unknown("see, see!") == ["see", ",", "!"]


def test_typed_unk_is_not_the_unknown_token():
    tokenizer = fit_tokenizer("word", ["<unk> is text"])
    assert 0 not in tokenizer.encode("<unk>")
    assert tokenizer.decode(tokenizer.encode("<unk>")) == "<unk>"


def test_fitting_in_chunks_equals_fitting_whole_text(shakespeare_text):
    text = shakespeare_text[:20_000]
    chunks = [text[i : i + 997] for i in range(0, len(text), 997)]  # cuts words and whitespace runs
    assert fit_tokenizer("word", chunks).tokens == fit_tokenizer("word", [text]).tokens


def test_encode_array_matches_encode_as_int64(word_shakespeare):
    array = word_shakespeare.encode_array("Good morrow, Romeo; nonsenseword.")
    assert array.dtype == np.int64
    assert array.tolist() == word_shakespeare.encode("Good morrow, Romeo; nonsenseword.")


def test_vocab_size_below_two_is_a_user_error():
    with pytest.raises(ScratchGPTError, match="at least 2"):
        fit_tokenizer("word", ["text"], vocab_size=1)


def test_spec_without_leading_unk_is_rejected():
    with pytest.raises(ScratchGPTError, match="<unk>"):
        WordTokenizer.from_spec({"name": "word", "version": 1, "tokens": ["a", "b"]})


def test_counts_are_exact_below_the_cap(shakespeare_text):
    chunks = [shakespeare_text[i : i + 997] for i in range(0, len(shakespeare_text), 997)]
    assert _count_pieces(chunks) == Counter(split(shakespeare_text))


def test_a_corpus_of_distinct_words_is_counted_in_bounded_memory_keeping_the_frequent_ones():
    # 200 chunks, each with 300 words never seen again and "the"/"cat" many times
    chunks = [" ".join([f"w{c}x{i}" for i in range(300)] + ["the"] * 40 + ["cat"] * 7) + "\n" for c in range(200)]
    counts = _count_pieces(chunks, max_distinct=1000)
    assert len(counts) <= 1000 + 350  # at most one chunk's pieces over the cap
    assert counts["the"] == 40 * 200 and counts["cat"] == 7 * 200 and counts[" "] == 346 * 200
    assert fit_tokenizer("word", chunks, vocab_size=4).tokens == ("<unk>", " ", "the", "cat")


def test_a_run_without_a_break_is_counted_in_parts(monkeypatch):
    monkeypatch.setattr(word, "MAX_PIECE", 100)
    counts = _count_pieces(["a" * 30] * 1000)  # one 30,000-letter word
    assert max(map(len, counts)) < 200 and sum(len(p) * n for p, n in counts.items()) == 30_000
