from __future__ import annotations

import math

import pytest
import torch

from scratchgpt.model.logprobs import entropy_bits, token_logprobs


def test_logprobs_are_log_softmax_of_the_logits_in_fp32():
    torch.manual_seed(0)
    logits = torch.randn(4, 11)
    chosen = torch.tensor([0, 3, 10, 5])
    rows = token_logprobs(logits.bfloat16(), chosen, k=3)
    ref = torch.log_softmax(logits.bfloat16().float(), dim=-1)
    for row, c, r in zip(rows, chosen.tolist(), ref, strict=True):
        assert row.id == c
        assert row.logprob == pytest.approx(float(r[c]), abs=1e-6)


def test_top_alternatives_are_sorted_non_positive_and_cover_at_most_all_mass():
    torch.manual_seed(1)
    rows = token_logprobs(torch.randn(3, 50), torch.tensor([1, 2, 3]), k=5)
    for row in rows:
        lps = [lp for _, lp in row.top]
        assert lps == sorted(lps, reverse=True) and len(lps) == 5
        assert all(lp <= 0 for lp in lps)
        assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-6


def test_the_argmax_is_the_first_alternative():
    logits = torch.tensor([[0.1, 3.0, -1.0]])
    (row,) = token_logprobs(logits, logits.argmax(-1), k=2)
    assert row.top[0][0] == row.id == 1


def test_k_beyond_twenty_is_refused():
    with pytest.raises(ValueError, match="0..20"):
        token_logprobs(torch.zeros(1, 5), torch.tensor([0]), k=21)


def test_entropy_is_zero_when_certain_and_log2_v_when_uniform():
    assert float(entropy_bits(torch.tensor([[0.0, -1e9, -1e9]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(entropy_bits(torch.zeros(1, 8))) == pytest.approx(3.0, abs=1e-6)
