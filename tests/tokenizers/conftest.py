"""Tokenizers fitted once per session on Tiny Shakespeare."""

from __future__ import annotations

import pytest

from scratchgpt.tokenizers import CharTokenizer, LearnedBPETokenizer, TiktokenTokenizer, WordTokenizer, fit_tokenizer


@pytest.fixture(scope="session")
def char_shakespeare(shakespeare_text) -> CharTokenizer:
    return fit_tokenizer("char", [shakespeare_text])


@pytest.fixture(scope="session")
def word_shakespeare(shakespeare_text) -> WordTokenizer:
    """Vocabulary big enough to hold every piece of the corpus."""
    return fit_tokenizer("word", [shakespeare_text], vocab_size=100_000)


@pytest.fixture(scope="session")
def gpt2() -> TiktokenTokenizer:
    return fit_tokenizer("tiktoken")


@pytest.fixture(scope="session")
def gpt2_compact(shakespeare_text) -> TiktokenTokenizer:
    return fit_tokenizer("tiktoken", [shakespeare_text])


@pytest.fixture(scope="session")
def bpe_shakespeare(shakespeare_text) -> LearnedBPETokenizer:
    """A 1,024-id BPE learned from the first 200,000 characters (a second or so)."""
    return fit_tokenizer("bpe", [shakespeare_text[:200_000]], vocab_size=1024)
