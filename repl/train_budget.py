"""How much one /train step takes on the loaded model, and how long N of them will.

/train proposes a batch (`session.train_batch_size`: TRAIN_BATCH_TOKENS tokens) that is quick for
every model this project trains on a CPU. A model far bigger, such as GPT-2 small's 124M parameters,
would take most of a minute a step there; `plan_train_step` then keeps fewer sequences, and shorter
windows when even one full window is too slow, so that a step lands near STEP_SECONDS and the
progress bar moves. The estimate counts a step's matmul FLOPs and divides them by the rate this
machine reaches on a matmul of the model's width (measured once per width, in well under a second)
times the share of it a whole training step achieves.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

from ..model.gpt import GPTConfig

STEP_SECONDS = 3.0  # what a /train step is kept near when the proposed batch would take longer
# share of the matmul rate a whole training step reaches (backward's transposed matmuls, norms,
# softmax, the optimizer): bench/gpt2_small.py prints estimated and measured step times to check it
STEP_EFFICIENCY = 0.5
MIN_WINDOW = 32  # shortest window a too-slow model trains on: shorter ones teach little about context


@dataclass(frozen=True)
class TrainStep:
    batch_size: int  # sequences per step
    window: int  # tokens per sequence: the model's context, or fewer for a model too slow for one
    seconds: float  # the estimated time of one step
    shrunk: bool  # whether this is less than the batch /train proposed

    @property
    def tokens(self) -> int:
        return self.batch_size * self.window

    def describe(self, steps: int) -> str:
        """One line: the batch, why it is smaller if it is, and how long steps of it will take."""
        batch = f"{self.batch_size} x {self.window} tokens a step"
        why = f" (fewer than usual, to keep a step near {STEP_SECONDS:g} s on this model)" if self.shrunk else ""
        total = duration(steps * self.seconds)
        return f"/train {steps}: {batch}{why}, about {self.seconds:.1f} s each, so about {total} in all"


def duration(seconds: float) -> str:
    """seconds in words a user reads at a glance: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def step_flops(config: GPTConfig, batch_size: int, window: int) -> float:
    """Matmul FLOPs of one forward and backward over batch_size windows: 6 per weight per token for
    the blocks and the LM head, and attention's scores and weighted sum (causal: half of T x T)."""
    if config.arch == "bigram":
        return 0.0  # a table lookup
    tokens = batch_size * window
    weights = 12 * config.n_layer * config.n_embd**2 + config.vocab_size * config.n_embd
    attention = 6 * config.n_layer * window * config.n_embd  # per token: 2 matmuls x 2 FLOPs x 3 passes / 2
    return tokens * (6 * weights + attention)


@functools.cache
def matmul_flops_per_second(width: int, device: torch.device, dtype: torch.dtype) -> float:
    """FLOPs per second of a (512, width) @ (width, 4 width) matmul here: a block's MLP, in the
    dtype training computes in. The best of a few runs, after one to warm up."""
    width = max(width, 128)  # tiny widths measure call overhead, not arithmetic
    a = torch.randn(512, width, device=device, dtype=dtype)
    b = torch.randn(width, 4 * width, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        (a @ b).sum().item()  # .item(): wait for an asynchronous device
        best = min(best, time.perf_counter() - t0)
    return 2 * 512 * width * 4 * width / best


def plan_train_step(
    config: GPTConfig, *, batch_size: int, device: torch.device, amp_dtype: torch.dtype | None,
    target_seconds: float = STEP_SECONDS,
) -> TrainStep:  # fmt: skip
    """The proposed batch (batch_size windows of the model's context) if a step of it takes at most
    target_seconds here, else the largest smaller one that does: fewer windows, then shorter ones."""
    window = config.block_size
    if config.arch == "bigram":
        return TrainStep(batch_size, window, 0.0, shrunk=False)
    rate = matmul_flops_per_second(config.n_embd, device, amp_dtype or torch.float32) * STEP_EFFICIENCY
    seconds = lambda b, t: step_flops(config, b, t) / rate
    if seconds(batch_size, window) <= target_seconds:
        return TrainStep(batch_size, window, seconds(batch_size, window), shrunk=False)
    if seconds(1, window) <= target_seconds:  # fewer whole windows
        fits = min(batch_size, int(target_seconds / seconds(1, window)))
        return TrainStep(fits, window, seconds(fits, window), shrunk=True)
    while window > MIN_WINDOW and seconds(1, window) > target_seconds:  # one window, shorter
        window = max(MIN_WINDOW, window // 2)
    return TrainStep(1, window, seconds(1, window), shrunk=True)
