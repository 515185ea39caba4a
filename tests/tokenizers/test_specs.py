from __future__ import annotations

import json

import pytest

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.tokenizers import TOKENIZER_NAMES, fit_tokenizer, tokenizer_from_spec

SAMPLE = "Crème brûlée! To be, or not to be 🦄 — that is the question.\n"


@pytest.fixture(params=["char_shakespeare", "word_shakespeare", "gpt2", "gpt2_compact", "bpe_shakespeare"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def test_spec_round_trips_through_json(tokenizer, shakespeare_text):
    spec = json.loads(json.dumps(tokenizer.spec()))
    assert spec["name"] == tokenizer.name in TOKENIZER_NAMES
    assert spec["version"] == 1
    rebuilt = tokenizer_from_spec(spec)
    assert type(rebuilt) is type(tokenizer)
    assert rebuilt.vocab_size == tokenizer.vocab_size
    assert rebuilt.spec() == tokenizer.spec()
    for text in (SAMPLE, shakespeare_text[:5000]):
        assert rebuilt.encode(text) == tokenizer.encode(text)


def test_spec_from_a_newer_version_asks_to_upgrade(tokenizer):
    with pytest.raises(ScratchGPTError, match="newer ScratchGPT; upgrade"):
        tokenizer_from_spec({**tokenizer.spec(), "version": 2})


def test_spec_missing_a_field_is_rejected(tokenizer):
    spec = tokenizer.spec()
    field = next(k for k in spec if k not in ("name", "version"))
    del spec[field]
    with pytest.raises(ScratchGPTError, match=f"lacks '{field}'"):
        tokenizer_from_spec(spec)


@pytest.mark.parametrize("spec", [{"name": "sentencepiece", "version": 1}, {"version": 1}, ["char"]])
def test_spec_with_unknown_name_is_rejected(spec):
    with pytest.raises(ScratchGPTError, match="unknown tokenizer"):
        tokenizer_from_spec(spec)


@pytest.mark.parametrize("version", [None, 0, "1", True])
def test_spec_without_a_valid_version_is_rejected(version):
    with pytest.raises(ScratchGPTError, match="version"):
        tokenizer_from_spec({"name": "char", "version": version, "chars": "ab"})


def test_fit_with_unknown_name_lists_the_choices():
    with pytest.raises(ScratchGPTError, match="unknown tokenizer 'bep'; choose one of char, tiktoken, word, bpe"):
        fit_tokenizer("bep", ["text"])


def test_char_word_and_bpe_need_a_corpus():
    for name in ("char", "word", "bpe"):
        with pytest.raises(ScratchGPTError, match="corpus"):
            fit_tokenizer(name)
