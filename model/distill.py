"""Knowledge distillation: train a model toward the next-token distribution of others.

A model trained for many passes over a small corpus memorises its training text: the shipped char
model scores about 1.03 nats/char on the training split and 1.42 on val. One-hot targets keep
pushing it that way. The averaged distribution of several models (an ensemble) is a softer target
that carries their uncertainty, and a student trained toward it generalises better than from the
text alone (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Teacher:
    """Soft targets from one or more models: the mean of their next-token probabilities.

    The models are frozen and run in eval mode (no dropout), on the same windows as the student.
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


def distillation(teacher: Teacher, weight: float):
    """A train_loop loss_fn: the student's distill_loss against the teacher on each batch."""

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, _ = model(x)
        return distill_loss(logits, y, teacher.log_probs(x), weight)

    return loss_fn
