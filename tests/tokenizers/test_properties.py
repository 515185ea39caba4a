"""Properties on arbitrary Unicode text and arbitrary id sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchgpt.tokenizers import StreamDecoder, fit_tokenizer
from scratchgpt.tokenizers.base import utf8_encodable

# the session-scoped tokenizers are read-only; the autouse per-test home dirs do not matter here
PROPERTY = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# arbitrary text a UTF-8 file can hold (codec="utf-8" leaves out lone surrogates, which no file can), with plenty
# of characters near a Shakespeare vocabulary (accents, ligatures, BPE-splitting ones)
TEXT = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("aeAE ,.\n\t'éüÉﬁ🦄こ—")))
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TOKENIZERS = ["char_shakespeare", "word_shakespeare", "gpt2", "gpt2_compact", "bpe_shakespeare"]


@PROPERTY
@given(text=TEXT)
def test_char_round_trip_equals_normalize(char_shakespeare, text):
    ids = char_shakespeare.encode(text)
    assert char_shakespeare.encode_array(text).tolist() == ids
    assert char_shakespeare.decode(ids) == char_shakespeare.normalize(text)
    assert char_shakespeare.normalize(char_shakespeare.normalize(text)) == char_shakespeare.normalize(text)


@PROPERTY
@given(text=TEXT)
def test_word_round_trip_equals_normalize(word_shakespeare, text):
    ids = word_shakespeare.encode(text)
    assert word_shakespeare.encode_array(text).tolist() == ids
    assert word_shakespeare.decode(ids) == word_shakespeare.normalize(text)
    assert (word_shakespeare.normalize(text) == text) == (word_shakespeare.unknown(text) == [])


@PROPERTY
@given(text=TEXT)
def test_tiktoken_round_trip_is_exact_in_both_forms(gpt2, gpt2_compact, text):
    for tokenizer in (gpt2, gpt2_compact):
        ids = tokenizer.encode(text)
        assert tokenizer.encode_array(text).tolist() == ids
        assert tokenizer.decode(ids) == text


@PROPERTY
@given(text=TEXT.filter(bool), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_fitted_on_the_text_round_trip_is_exact(text, cuts):
    chunks = [text[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(text)], strict=True)]
    for name in ("char", "word", "tiktoken"):
        tokenizer = fit_tokenizer(name, chunks, vocab_size=10_000 if name == "word" else None)
        assert tokenizer.decode(tokenizer.encode(text)) == text


@PROPERTY
@given(text=TEXT, cut=st.integers(0, 200))
def test_word_fit_ignores_where_chunks_are_cut(text, cut):
    whole = fit_tokenizer("word", [text + "x"])
    assert fit_tokenizer("word", [text[:cut], text[cut:] + "x"]).tokens == whole.tokens


@PROPERTY
@given(name=st.sampled_from(TOKENIZERS), data=st.data())
def test_streaming_equals_decode_for_any_ids(request, name, data):
    tokenizer = request.getfixturevalue(name)
    ids = data.draw(st.lists(st.integers(0, tokenizer.vocab_size - 1), max_size=30))
    decoder = StreamDecoder(tokenizer)
    assert "".join(decoder.push(i) for i in ids) + decoder.flush() == tokenizer.decode(ids)


@PROPERTY
@given(name=st.sampled_from(TOKENIZERS), text=TEXT)
def test_streaming_equals_decode_for_encoded_text(request, name, text):
    tokenizer = request.getfixturevalue(name)
    ids = tokenizer.encode(text)
    decoder = StreamDecoder(tokenizer)
    assert "".join(decoder.push(i) for i in ids) + decoder.flush() == tokenizer.decode(ids)


@PROPERTY
@given(text=TEXT)
def test_the_text_strategy_draws_only_what_a_file_can_hold(text):
    assert utf8_encodable(text)


@PROPERTY
@given(name=st.sampled_from(TOKENIZERS), text=TEXT, surrogate=SURROGATE, at=st.integers(0, 200))
def test_a_lone_surrogate_reads_as_the_replacement_character_in_every_tokenizer(request, name, text, surrogate, at):
    tokenizer = request.getfixturevalue(name)
    odd = text[:at] + surrogate + text[at:]
    assert tokenizer.encode(odd) == tokenizer.encode(text[:at] + "\ufffd" + text[at:])
    assert tokenizer.encode_array(odd).tolist() == tokenizer.encode_batch([odd])[0].tolist() == tokenizer.encode(odd)
    assert surrogate in tokenizer.unknown(odd)
