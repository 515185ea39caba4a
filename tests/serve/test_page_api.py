"""The page's own calls below the browser: the window a long text is inspected in."""

from __future__ import annotations

import pytest
import torch

from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.serve.page import inspect_window, window_tail
from scratchgpt.tokenizers import fit_tokenizer

BLOCK = 24


@pytest.fixture(scope="module")
def char_model(shakespeare_text):
    tokenizer = fit_tokenizer("char", [shakespeare_text[:5_000]])
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16))
    return model.eval(), tokenizer


def test_a_text_within_the_window_is_inspected_whole(char_model):
    _, tokenizer = char_model
    assert window_tail(tokenizer, "ROMEO:", BLOCK) == ("ROMEO:", 0)


def test_a_text_longer_than_the_window_keeps_its_last_window(char_model, shakespeare_text):
    _, tokenizer = char_model
    text = shakespeare_text[:100]
    tail, cropped = window_tail(tokenizer, text, BLOCK)
    assert tail == text[-BLOCK:] and cropped == 100 - BLOCK


def test_a_bpe_tail_fits_the_window_after_re_encoding():
    tokenizer = fit_tokenizer("tiktoken", [])
    text = "The quick brown fox jumps over the lazy dog; naïve café, déjà vu. " * 10
    tail, cropped = window_tail(tokenizer, text, BLOCK)
    assert text.endswith(tail) or tokenizer.encode(tail) == tokenizer.encode(text)[-BLOCK:]
    assert len(tokenizer.encode(tail)) <= BLOCK
    assert cropped == len(tokenizer.encode(text)) - len(tokenizer.encode(tail))


def test_inspecting_a_long_context_looks_at_its_last_window(char_model, shakespeare_text):
    model, tokenizer = char_model
    result = inspect_window(model, tokenizer, shakespeare_text[:60])
    assert result["cropped"] == 60 - BLOCK
    assert "".join(t["token"] for t in result["tokens"]) == shakespeare_text[60 - BLOCK : 60]
    assert len(result["attention"]) == 2 and len(result["attention"][0][0]) == BLOCK
    assert len(result["lens"]) == 3
