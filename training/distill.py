"""Knowledge distillation: train a model toward the next-token distribution of others.

A model trained for many passes over a small corpus memorises its training text: the 1.4215 char
model's loss on its training batches was about 1.05 nats/char, on val 1.42. One-hot targets keep
pushing it that way. The averaged distribution of several models (an ensemble) is a softer target
that carries their uncertainty, and a student trained toward it generalises better than from the
text alone (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import val_windows


class Teacher:
    """Soft targets from one or more models: the mean of their next-token probabilities.

    The models are frozen and run in eval mode (no dropout): on the student's own windows
    (log_probs), or once over a whole split (score).
    """

    def __init__(self, models: Sequence[nn.Module]):
        if not models:
            raise ValueError("a teacher needs at least one model")
        self.models = list(models)
        for model in self.models:
            model.eval()
            model.requires_grad_(False)

    @torch.no_grad()
    def log_probs(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, V) fp32 log of the members' mean next-token probabilities."""
        member = torch.stack([F.log_softmax(model(idx)[0].float(), dim=-1) for model in self.models])  # (K, B, T, V)
        return torch.logsumexp(member, dim=0) - math.log(len(self.models))

    @torch.no_grad()
    def score(self, tokens: np.ndarray, block_size: int, batch_size: int = 16) -> torch.Tensor:
        """(N, V) fp16 log-probabilities over a whole split, read once in non-overlapping windows of
        block_size (as `scratchgpt eval` reads val): row i is the teachers' distribution for tokens[i]
        given the tokens before it in its window. Row 0, which nothing predicts, is uniform."""
        device = next(self.models[0].parameters()).device
        vocab = self.models[0].config.vocab_size
        table = torch.full((len(tokens), vocab), -math.log(vocab), dtype=torch.float16, device=device)
        row = 1
        for x, _ in val_windows(tokens, block_size, batch_size):
            scored = self.log_probs(x.to(device)).flatten(0, 1)  # (B*T, V)
            table[row : row + len(scored)] = scored.half()
            row += len(scored)
        return table


def distill_loss(
    logits: torch.Tensor, targets: torch.Tensor, teacher_log_probs: torch.Tensor, weight: float
) -> torch.Tensor:
    """(1 - weight) x cross-entropy on the text's next tokens + weight x cross-entropy on the teacher's.

    logits and teacher_log_probs are (B, T, V), targets (B, T). The soft term is the teacher's
    entropy, a constant, plus the KL divergence from the teacher to the student, so its gradient is
    the KL's. Computed in fp32 whatever the logits' dtype.
    """
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    soft = -(teacher_log_probs.exp() * log_probs).sum(-1).mean()
    if weight == 1.0:
        return soft
    hard = F.nll_loss(log_probs.view(-1, log_probs.size(-1)), targets.reshape(-1))
    return (1.0 - weight) * hard + weight * soft


def distillation(teacher: Teacher, weight: float, table: torch.Tensor | None = None) -> Callable[..., torch.Tensor]:
    """A train_loop loss_fn: the student's distill_loss against the teacher on each batch.

    Without a table the teachers read the student's own windows, a forward pass each per step.
    With a table (Teacher.score of the training split), the loss_fn takes the batch's window
    offsets too and looks each target's row up: no teacher runs during training, and each target's
    soft label comes from a context other than the student's window, the same whatever window
    it falls in.
    """

    def loss_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits, _ = model(x)
        if table is None:
            return distill_loss(logits, y, teacher.log_probs(x), weight)
        rows = offsets[:, None] + torch.arange(1, x.size(1) + 1, device=offsets.device)  # (B, T): y's positions
        return distill_loss(logits, y, table[rows].float(), weight)

    return loss_fn
