from __future__ import annotations

import pytest

from scratchgpt.tokenizers import StreamDecoder


def _splits_a_character(tokenizer, ids) -> bool:
    """True if some token's bytes are not whole UTF-8 characters on their own."""
    for i in ids:
        try:
            tokenizer.token_bytes(i).decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


@pytest.mark.parametrize("text", ["🦄", "こんにちは", "naïve 🦄 café こんにちは!"])
def test_multibyte_characters_split_across_bpe_tokens_stream_whole(gpt2, gpt2_compact, text):
    for tokenizer in (gpt2, gpt2_compact):
        ids = tokenizer.encode(text)
        assert _splits_a_character(tokenizer, ids)  # otherwise this test proves nothing
        decoder, streamed = StreamDecoder(tokenizer), ""
        for i in ids:
            piece = decoder.push(i)
            assert "\ufffd" not in piece
            streamed += piece
            assert text.startswith(streamed)  # only complete characters come out
        assert streamed + decoder.flush() == text == tokenizer.decode(ids)


def test_incomplete_character_at_flush_becomes_replacement(gpt2):
    ids = gpt2.encode("🦄")[:-1]
    decoder = StreamDecoder(gpt2)
    assert "".join(decoder.push(i) for i in ids) == ""
    assert decoder.flush() == "\ufffd" == gpt2.decode(ids)


def test_streams_char_and_word_tokenizers_token_by_token(char_shakespeare, word_shakespeare):
    for tokenizer in (char_shakespeare, word_shakespeare):
        ids = tokenizer.encode("To be, or not to be")
        decoder = StreamDecoder(tokenizer)
        assert [decoder.push(i) for i in ids] == [tokenizer.decode([i]) for i in ids]
        assert decoder.flush() == ""
