"""How the next token is picked: pure functions over logits, shared by the engine and the model's
reference `generate`. What the settings may be is sampling_settings.py's business."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .sampling_settings import GREEDY_BELOW


def is_plain(temperature: float, top_k: int | None, top_p: float | None) -> bool:
    """Sampling from the whole tempered distribution (not greedy, not cut): the kind a compiled decode step
    picks inside its graph and a batch draws for many rows in one pass."""
    return temperature >= GREEDY_BELOW and top_k is None and top_p is None


def never_sample_bias(vocab_size: int, ids: Sequence[int], device: torch.device) -> torch.Tensor:
    """(1, V) to add to logits before a pick: 0, and -inf at the ids never to sample (a word vocabulary's <unk>)."""
    bias = torch.zeros((1, vocab_size), device=device)
    if ids:
        bias[0, list(ids)] = float("-inf")
    return bias


def pick(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: for each row of probs (B, V), which need not sum to 1, the first token
    whose cumulative probability exceeds u (B, 1, uniform in [0, 1)) times the row's total.
    Returns (B, 1). A token of probability 0 is never picked, whatever u is.

    A handful of elementwise ops and two sums, so it compiles into the decode step; and with one
    uniform per token it is several times faster than torch.multinomial at GPT-2's 50,257 tokens
    (bench/sample_speed.py prints both).
    """
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    idx = (cdf <= u * total).sum(dim=-1, keepdim=True)
    last = (cdf < total).sum(dim=-1, keepdim=True)  # where cdf reaches its total: a token with p > 0
    return torch.minimum(idx, last)  # u * total may round up to total


def next_token_probs(
    logits: torch.Tensor, temperature: float | torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """The distribution (B, V) to sample the next token from: softmax(logits / temperature), cut to
    the top_k likeliest tokens and then to the smallest set that covers top_p (None = no cut)."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already cover top_p (the first always stays)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return probs


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick the next token for each row of logits (B, V); returns (B, 1). temperature 0 = argmax.

    One uniform per row from generator: the engine's compiled decode step draws the same ones in
    the same order, so a seed gives the same tokens with and without --compile.
    """
    if temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1, keepdim=True)
    u = torch.rand((logits.size(0), 1), generator=generator, device=logits.device)
    return pick(next_token_probs(logits, temperature, top_k, top_p), u)
