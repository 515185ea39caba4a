"""What the model thought of each token it saw or picked: log-probabilities and the likeliest alternatives.

Pure functions over logits the engine (or a scoring pass) already computed; nothing here runs the model.
Log-probabilities are the model's own, as OpenAI reports them: natural log, temperature 1, before
top-k/top-p, so they describe the model and not the sampling settings of the moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_TOP_LOGPROBS = 20  # OpenAI's bound on top_logprobs, shared by every front end


@dataclass(frozen=True)
class TokenLogprob:
    """One position: the token there, its log-probability, and the k likeliest tokens (best first)."""

    id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()  # (id, logprob) pairs, sorted by logprob, descending

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


def token_logprobs(logits: torch.Tensor, chosen: torch.Tensor, k: int = 0) -> list[TokenLogprob]:
    """For each row of logits (N, V), the log-probability of chosen (N,) and the top k alternatives.

    Computed in fp32 whatever the logits' dtype, so a bf16 or int8 decode path reports numbers
    comparable with an fp32 one.
    """
    if not 0 <= k <= MAX_TOP_LOGPROBS:
        raise ValueError(f"k must be in 0..{MAX_TOP_LOGPROBS}, not {k}")
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    picked = logp.gather(-1, chosen.view(-1, 1).long()).squeeze(-1).tolist()  # (N,)
    ids = chosen.view(-1).tolist()
    if k == 0:
        return [TokenLogprob(i, lp) for i, lp in zip(ids, picked, strict=True)]
    top_lp, top_ids = logp.topk(min(k, logp.size(-1)), dim=-1)  # (N, k) each, sorted descending
    return [
        TokenLogprob(i, lp, tuple(zip(tid, tlp, strict=True)))
        for i, lp, tid, tlp in zip(ids, picked, top_ids.tolist(), top_lp.tolist(), strict=True)
    ]


def entropy_bits(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of softmax(logits) along the last dimension, in bits: 0 when the model is certain."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1) / math.log(2.0)
