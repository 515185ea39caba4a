"""Batches (random windows, resumable) and the windows eval runs over the whole val split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.data import Batches, iter_text, load_tokens, resolve_corpus, split_tokens, val_char_count, val_windows
from scratchgpt.data import batches as batches_module
from scratchgpt.data.batches import IGNORE
from scratchgpt.tokenizers import fit_tokenizer

TOKENS = np.arange(5000, dtype=np.uint16)  # each token is its own position, so windows are easy to check


def test_y_is_x_shifted_by_one_token():
    batches = Batches(TOKENS, block_size=16, batch_size=8)
    g = torch.Generator().manual_seed(0)
    for split, lo, hi in (("train", 0, 4500), ("val", 4500, 5000)):
        x, y = batches.get(split, g)
        assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
        assert torch.equal(x, x[:, :1] + torch.arange(16))  # contiguous windows
        assert torch.equal(y, x + 1)
        assert x.min() >= lo and y.max() < hi  # windows stay inside their split


def test_the_same_generator_state_gives_the_same_batch():
    batches = Batches(TOKENS, block_size=16, batch_size=8)
    g = torch.Generator().manual_seed(1234)
    batches.get("train", g)
    state = g.get_state()
    first = batches.get("train", g)
    following = batches.get("train", g)
    g.set_state(state)
    assert all(torch.equal(a, b) for a, b in zip(first, batches.get("train", g), strict=True))
    assert not torch.equal(first[0], following[0])


def test_every_window_can_be_drawn_including_the_one_ending_at_the_last_token():
    batches = Batches(np.arange(100, dtype=np.uint16), block_size=4, batch_size=512)  # val: tokens 90..99
    x, y = batches.get("val", torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == set(range(90, 96))
    assert y.max() == 99


def test_a_too_short_corpus_is_refused_at_construction():
    with pytest.raises(ScratchGPTError) as e:
        Batches(np.arange(60, dtype=np.uint16), block_size=8, batch_size=4, name="haiku")
    assert str(e.value) == (
        "corpus 'haiku' is too short: its val split has 6 tokens, a block needs block_size+1=9; "
        "use a longer corpus or a smaller --block-size"
    )
    Batches(np.arange(90, dtype=np.uint16), block_size=8, batch_size=4)  # val has 9: just enough


def test_batches_draw_from_a_memmapped_corpus():
    corpus = resolve_corpus("tinyshakespeare")
    tokenizer = fit_tokenizer("char", iter_text(corpus))
    tokens = load_tokens(corpus, tokenizer)
    x, y = Batches(tokens, block_size=32, batch_size=4).get("val", torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 1:], y[:, :-1])
    text = tokenizer.decode(x[0].tolist()) + tokenizer.decode(y[0, -1:].tolist())
    assert text in "".join(iter_text(corpus))


@pytest.mark.parametrize("length", [0, 1, 2, 8, 9, 10, 25, 49, 50])
def test_val_windows_predict_every_val_token_but_the_first_exactly_once(length):
    val = np.arange(100, 100 + length, dtype=np.uint16)
    windows = list(val_windows(val, block_size=8, batch_size=3))
    xs = [x.flatten() for x, _ in windows]
    ys = [y.flatten() for _, y in windows]
    assert sum(y.numel() for y in ys) == max(length - 1, 0)
    assert (torch.cat(ys) if ys else torch.empty(0)).tolist() == val[1:].tolist()
    assert (torch.cat(xs) if xs else torch.empty(0)).tolist() == val[:-1].tolist()
    for x, y in windows:
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape
        assert torch.equal(y, x + 1)  # each window predicts its own next tokens
        assert x.shape[0] <= 3 and x.shape[1] <= 8
    assert all(x.shape[1] == 8 for x, _ in windows[:-1])  # only the last window may be short


@pytest.mark.parametrize("length", [0, 1, 2, 8, 9, 10, 12, 25, 49, 50])
@pytest.mark.parametrize("stride", [1, 3, 4, 7])
def test_strided_val_windows_score_every_token_once_with_at_least_block_minus_stride_context(length, stride):
    val = np.arange(100, 100 + length, dtype=np.uint16)
    windows = list(val_windows(val, block_size=8, batch_size=3, stride=stride))
    scored = [y[y != IGNORE] for _, y in windows]
    assert (torch.cat(scored) if scored else torch.empty(0)).tolist() == val[1:].tolist()
    for x, y in windows:
        assert x.shape == y.shape and x.shape[0] <= 3 and x.shape[1] <= 8
        keep = y != IGNORE
        assert torch.equal(y[keep], (x + 1)[keep])  # each window predicts its own next tokens
        for row in range(x.shape[0]):
            first_scored = int(keep[row].int().argmax())
            if x[row, 0] != 100:  # past the first window: the context the stride promises
                assert first_scored >= 8 - stride
    assert all(x.shape[1] == 8 for x, _ in windows[:-1])  # only the last window may be short


def test_val_windows_reject_a_stride_outside_one_to_block_size():
    for stride in (0, 9):
        with pytest.raises(ValueError, match="stride"):
            list(val_windows(np.arange(20, dtype=np.uint16), block_size=8, batch_size=2, stride=stride))


def test_val_char_count_is_the_length_of_the_decoded_val_split(shakespeare_text):
    tokenizer = fit_tokenizer("char", [shakespeare_text])
    _, val = split_tokens(tokenizer.encode_array(shakespeare_text))
    assert val_char_count(tokenizer, val) == len(tokenizer.decode(val.tolist())) == len(val)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_val_char_count_never_splits_a_character_spread_over_tokens(monkeypatch, shakespeare_head, chunk):
    tokenizer = fit_tokenizer("tiktoken", [shakespeare_head])  # compact: an emoji is 4 single-byte tokens
    ids = tokenizer.encode_array("héllo 👋🏽 wörld 🇫🇷 naïve 日本語\n" * 3)
    assert len(ids) > 3 * 25
    monkeypatch.setattr(batches_module, "DECODE_CHUNK", chunk)
    for start in range(4):  # a split that begins inside a character counts its stray bytes as decode does
        assert val_char_count(tokenizer, ids[start:]) == len(tokenizer.decode(ids[start:].tolist()))


def test_get_at_draws_gets_batch_and_says_where_each_window_starts():
    tokens = np.arange(1000, dtype=np.uint16)
    batches = Batches(tokens, block_size=16, batch_size=4)
    x, y = batches.get("train", torch.Generator().manual_seed(9))
    x2, y2, offsets = batches.get_at("train", torch.Generator().manual_seed(9))
    assert torch.equal(x, x2) and torch.equal(y, y2) and offsets.shape == (4,)
    assert torch.equal(y, offsets[:, None] + torch.arange(1, 17))  # token i of this split is i
