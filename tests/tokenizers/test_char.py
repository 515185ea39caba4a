from __future__ import annotations

import numpy as np
import pytest

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.tokenizers import CharTokenizer, fit_tokenizer

ACCENTS_AND_EMOJI = "Crème brûlée, naïve café — ﬁne! 🦄 こんにちは\n"


def test_round_trip_on_shakespeare_is_exact(char_shakespeare, shakespeare_text):
    ids = char_shakespeare.encode_array(shakespeare_text)
    assert char_shakespeare.unknown(shakespeare_text) == []
    assert char_shakespeare.decode(ids) == shakespeare_text


def test_vocabulary_is_sorted_distinct_characters(char_shakespeare, shakespeare_text):
    assert char_shakespeare.chars == "".join(sorted(set(shakespeare_text)))
    assert char_shakespeare.vocab_size == 65


def test_encode_array_matches_encode_as_int64(char_shakespeare):
    text = "First Citizen:\nBefore we proceed, é!"
    array = char_shakespeare.encode_array(text)
    assert array.dtype == np.int64
    assert array.tolist() == char_shakespeare.encode(text)


def test_unknown_characters_lose_accents_then_drop(char_shakespeare):
    assert char_shakespeare.normalize("Crème brûlée") == "Creme brulee"
    assert char_shakespeare.normalize("ﬁne") == "fine"  # the ﬁ ligature decomposes to two known letters
    assert char_shakespeare.normalize("a🦄b—c") == "abc"  # nothing known remains: dropped


def test_round_trip_with_accents_and_emoji_equals_normalize(char_shakespeare):
    ids = char_shakespeare.encode(ACCENTS_AND_EMOJI)
    assert char_shakespeare.decode(ids) == char_shakespeare.normalize(ACCENTS_AND_EMOJI)
    assert char_shakespeare.decode(ids) == "Creme brulee, naive cafe  fine!  \n"


def test_fitted_on_accents_and_emoji_round_trip_is_exact():
    tokenizer = fit_tokenizer("char", [ACCENTS_AND_EMOJI[:10], ACCENTS_AND_EMOJI[10:]])
    assert tokenizer.unknown(ACCENTS_AND_EMOJI) == []
    assert tokenizer.decode(tokenizer.encode(ACCENTS_AND_EMOJI)) == ACCENTS_AND_EMOJI


def test_unknown_lists_distinct_characters_in_order_of_first_appearance(char_shakespeare):
    assert char_shakespeare.unknown("üé🦄éü") == ["ü", "é", "🦄"]
    assert char_shakespeare.unknown("plain text") == []


def test_extend_keeps_old_ids_and_adds_new_characters(char_shakespeare, shakespeare_text):
    french = "garçon élève"
    grown = char_shakespeare.extend(iter([french]))
    assert grown.chars.startswith(char_shakespeare.chars)
    assert grown.chars[char_shakespeare.vocab_size :] == "çèé"  # new characters, sorted
    assert grown.encode_array(shakespeare_text).tolist() == char_shakespeare.encode_array(shakespeare_text).tolist()
    assert grown.decode(grown.encode(french)) == french
    assert char_shakespeare.decode(char_shakespeare.encode(french)) == "garcon eleve"


def test_extend_without_new_characters_keeps_the_vocabulary(char_shakespeare):
    assert char_shakespeare.extend(["To be, or not to be"]).chars == char_shakespeare.chars


def test_lone_surrogates_never_enter_the_vocabulary():
    tokenizer = fit_tokenizer("char", ["ab\udc80"])
    assert tokenizer.chars == "ab"
    assert tokenizer.decode(tokenizer.encode("a\udc80b")) == "ab"


def test_empty_corpus_is_a_user_error():
    with pytest.raises(ScratchGPTError, match="empty corpus"):
        fit_tokenizer("char", [""])


def test_spec_with_repeated_characters_is_rejected():
    with pytest.raises(ScratchGPTError, match="repeats"):
        CharTokenizer.from_spec({"name": "char", "version": 1, "chars": "abca"})


def test_a_lone_surrogate_is_the_replacement_character_when_the_vocabulary_has_it():
    tokenizer = fit_tokenizer("char", ["ab\ufffd"])
    assert tokenizer.decode(tokenizer.encode("a\udc80b")) == "a\ufffdb"
    assert tokenizer.unknown("a\udc80b") == ["\udc80"]
