"""The training loop and the small named helpers around it.

`train_loop` knows nothing about files, terminals or corpora: it takes a model, an optimizer and a
function that returns the next batch, and reports each finished step to `on_step`. Evaluation,
checkpointing and progress are the caller's callbacks (see training/run.py, which `scratchgpt
train` and the REPL's /train both call).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..core.interrupt import InterruptFlag
from ..model.device import autocast_context


@dataclass(frozen=True)
class Schedule:
    """Learning rate per step: linear warmup, then cosine (or warmup-stable-decay) down to min_lr."""

    lr: float
    total_steps: int
    warmup: int = 100
    min_lr_ratio: float = 0.1
    kind: str = "cosine"  # "cosine", or "wsd": flat until the last `decay_frac`, then linear
    decay_frac: float = 0.2

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        min_lr = self.lr * self.min_lr_ratio
        if self.kind == "wsd":
            decay_start = self.total_steps * (1 - self.decay_frac)
            if step < decay_start:
                return self.lr
            frac = min(1.0, (step - decay_start) / max(1, self.total_steps - decay_start))
            return self.lr + (min_lr - self.lr) * frac
        frac = min(1.0, (step - self.warmup) / max(1, self.total_steps - self.warmup))
        return min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (self.lr - min_lr)


def make_optimizer(
    model: torch.nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.99),
    kind: str = "adamw",
) -> torch.optim.Optimizer:
    """AdamW, decaying only matrices (not norms or biases), fused where this PyTorch supports it.

    kind="muon": Muon for the blocks' matrices, AdamW for the rest (see training/muon.py).
    """
    if kind == "muon":
        from .muon import Muon, muon_groups

        return Muon(muon_groups(model, weight_decay), lr=lr, betas=betas)
    if kind != "adamw":
        raise ValueError(f"unknown optimizer {kind!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)


@dataclass(frozen=True)
class StepInfo:
    step: int  # the step just finished (0-based)
    loss: float  # mean training loss of its batch, nats per token
    lr: float
    tokens: int  # tokens it trained on
    seconds: float  # wall time of the step


def train_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], tuple[torch.Tensor, ...]],
    *,
    steps: Iterable[int],
    schedule: Callable[[int], float],
    grad_clip: float = 1.0,
    grad_accum: int = 1,
    amp_dtype: torch.dtype | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    interrupt: InterruptFlag | None = None,
    backward_context: Callable[[int], contextlib.AbstractContextManager] | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
) -> int | None:
    """Train over `steps`; returns the last finished step (None if none finished).

    Each step: set the lr, accumulate gradients over grad_accum micro-batches, clip, update.
    backward_context(micro) lets DDP skip the gradient all-reduce on all but the last micro-batch.
    A batch is (x, y, *more); loss_fn(model, x, y, *more) replaces the model's own next-token loss
    (see training/distill.py).
    """
    device = next(model.parameters()).device
    model.train()
    last = None
    for step in steps:
        if interrupt is not None and interrupt.requested:
            break
        t0 = time.perf_counter()
        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss_sum = torch.zeros((), device=device)
        tokens = 0
        for micro in range(grad_accum):
            x, y, *more = next_batch()
            ctx = backward_context(micro) if backward_context else contextlib.nullcontext()
            with ctx:
                with autocast_context(device, amp_dtype):
                    loss = model(x, y)[1] if loss_fn is None else loss_fn(model, x, y, *more)
                (loss / grad_accum).backward()
            loss_sum += loss.detach()
            tokens += y.numel()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        last = step
        if on_step is not None:
            loss_value = loss_sum.item() / grad_accum  # one sync per step, for reporting
            on_step(StepInfo(step, loss_value, lr, tokens, time.perf_counter() - t0))
    return last


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module,
    get_batch: Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    *,
    iters: int,
    seed: int,
    amp_dtype: torch.dtype | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Mean loss over `iters` random batches per split (nanoGPT's estimate), with its own
    generator so evaluating never changes which batches training sees next. on_batch(done, total)
    follows it batch by batch, over all the splits."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = {}
    for s, split in enumerate(splits):
        generator = torch.Generator().manual_seed(seed)
        losses = torch.zeros(iters)
        for i in range(iters):
            x, y = get_batch(split, generator)
            with autocast_context(device, amp_dtype):
                _, loss = model(x, y)
            losses[i] = loss.item()
            if on_batch is not None:
                on_batch(s * iters + i + 1, len(splits) * iters)
        out[split] = losses.mean().item()
    model.train(was_training)
    return out
