"""How much one /train step takes on the loaded model, and how long N of them will; and how many
steps a `scratchgpt train --max-minutes` run has time for (`steps_that_fit`).

/train proposes a batch (`run.batch_size_for`: about FINE_TUNE_BATCH_TOKENS tokens) that is quick for
every model this project trains on a CPU. A model far bigger, such as GPT-2 small's 124M parameters,
would take many seconds a step there; `plan_train_step` then keeps fewer sequences, and shorter
windows when even one full window is too slow, so that a step lands near STEP_SECONDS and the
progress bar moves.

Two looks, the cheap one first. A step's matmul FLOPs over the rate this machine reaches on a
matmul of the model's width (measured once per width, milliseconds) is a lower bound on its time;
far under STEP_SECONDS, the proposed batch stands and nothing else runs, so a small model's first
step starts as soon as it did. Otherwise the model itself is timed (`measure_step_cost`, a few
seconds for GPT-2 small, on a busy machine as busy as it is): a step costs a part that grows with
its tokens and a part that does not. The fixed part, the passes over every weight (autocast's
casts, the optimizer, the all-or-nothing copy, gradient clipping), is a large share of a short
step on a 124M model, so fewer tokens cannot always bring a step down to the target; then a step
keeps at least half the target's worth of tokens, and the line says what it will cost.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

from ..core.durations import duration
from ..model.device import autocast_context
from ..model.gpt import GPTConfig

STEP_SECONDS = 3.0  # what a /train step is kept near when the proposed batch would take longer
SURE_FRACTION = 0.25  # a lower bound under this share of STEP_SECONDS: quick enough, without timing
# tokens of the longer timed forward (the shorter one has a quarter): long enough for the per-token
# cost of big batches; below ~100 tokens a 124M model's matmuls only read weights
PROBE_WINDOW = 512
PASSES_PER_FORWARD = 3  # a forward and backward: backward computes two matmuls for each of forward's
TIMINGS = 2  # timed runs of each probe window; the faster counts
MIN_WINDOW = 32  # shortest window a too-slow model trains on: shorter ones teach little about context
# passes over a weight-sized tensor in a step beyond forward and backward: the all-or-nothing copy
# (read, write), gradient clipping (read), fused AdamW (weights, gradients and two moments: 7)
OPTIMIZER_PASSES = 10


@dataclass(frozen=True)
class TrainStep:
    batch_size: int  # sequences per step
    window: int  # tokens per sequence: the model's context, or fewer for a model too slow for one
    seconds: float  # the estimated time of one step
    usual_seconds: float  # the estimated time of a step of the batch /train proposed
    shrunk: bool  # whether this is less than the batch /train proposed

    @property
    def tokens(self) -> int:
        return self.batch_size * self.window

    def describe(self, steps: int) -> str:
        """One line: the batch, why it is smaller if it is, and how long steps of it will take."""
        batch = f"{self.batch_size} x {self.window} tokens a step"
        usual = f" (fewer than usual, which would take about {self.usual_seconds:.0f} s a step here)"
        why = usual if self.shrunk else ""
        total = duration(steps * self.seconds)
        return f"/train {steps}: {batch}{why}, about {self.seconds:.1f} s each, so about {total} in all"


def flops_per_token(config: GPTConfig, window: int) -> float:
    """Matmul FLOPs of one token's forward and backward in windows of that length: 6 per weight of the
    blocks and the LM head, and attention's scores and weighted sum (causal: half of T x T)."""
    if config.arch == "bigram":
        return 0.0  # a table lookup
    weights = 12 * config.n_layer * config.n_embd**2 + config.vocab_size * config.n_embd
    return 6 * weights + 6 * config.n_layer * window * config.n_embd  # attention: 2 matmuls x 2 x 3 passes / 2


@functools.cache
def matmul_flops_per_second(width: int, device: torch.device, dtype: torch.dtype | None) -> float:
    """FLOPs per second of a (512, width) @ (width, 4 width) matmul here: a block's MLP, in the
    dtype training computes in. The best of a few runs, after one to warm up."""
    width = max(width, 128)  # tiny widths measure call overhead, not arithmetic
    a = torch.randn(512, width, device=device, dtype=dtype or torch.float32)
    b = torch.randn(width, 4 * width, device=device, dtype=dtype or torch.float32)
    best = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        (a @ b).sum().item()  # .item(): wait for an asynchronous device
        best = min(best, time.perf_counter() - t0)
    return 2 * 512 * width * 4 * width / best


@dataclass(frozen=True)
class StepCost:
    fixed: float  # seconds of a step whatever its tokens
    per_token: float  # seconds per token, in windows of probe_window tokens
    probe_window: int = PROBE_WINDOW

    def seconds(self, config: GPTConfig, batch_size: int, window: int) -> float:
        scale = flops_per_token(config, window) / flops_per_token(config, self.probe_window)  # attention grows
        return self.fixed + batch_size * window * self.per_token * scale


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_step_cost(model: torch.nn.Module, *, device: torch.device, amp_dtype: torch.dtype | None) -> StepCost:
    """The two parts of a training step of model here, from its forward timed over one window of
    PROBE_WINDOW tokens (or the model's context, if shorter) and one of a quarter of that (train
    mode, autocast, the graph for backward built; each run once untimed, as its first run allocates,
    then the faster of TIMINGS runs, as another process's burst only ever adds), times
    PASSES_PER_FORWARD, and the optimizer's passes over the weights as OPTIMIZER_PASSES copies of
    them. Forwards alone cost a third of what timing backward too would. The mode and the RNG are
    left as they were."""
    was_training = model.training
    long = min(PROBE_WINDOW, model.config.block_size)
    windows = (max(1, long // 4), long)

    def forward(window: int) -> None:
        ids = torch.zeros((1, window), dtype=torch.long, device=device)
        with autocast_context(device, amp_dtype):
            model(ids, ids)[1].item()  # .item(): wait for an asynchronous device

    with torch.random.fork_rng(devices=[]):  # dropout draws nothing the real steps would have drawn
        model.train()
        try:
            for w in windows:  # a window's first call allocates
                forward(w)
            short_s, long_s = (
                PASSES_PER_FORWARD * min(_timed(lambda w=w: forward(w)) for _ in range(TIMINGS)) for w in windows
            )
        finally:
            model.train(was_training)
    with torch.no_grad():
        params = list(model.parameters())
        copies = [torch.empty_like(p) for p in params]
        copy = _timed(lambda: [c.copy_(p) for c, p in zip(copies, params, strict=True)])
    per_token = max(long_s - short_s, 0.0) / max(windows[1] - windows[0], 1)
    fixed = max(short_s - windows[0] * per_token, 0.0) + OPTIMIZER_PASSES / 2 * copy  # a copy: 2 passes
    return StepCost(fixed=fixed, per_token=per_token, probe_window=long)


def plan_train_step(
    model: torch.nn.Module,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    target_seconds: float = STEP_SECONDS,
) -> TrainStep:
    """The proposed batch (batch_size windows of the model's context) if a step of it takes at most
    target_seconds here, else the largest smaller one that does: fewer windows, then shorter ones
    (halving). Where the fixed part of a step leaves less than half the target for tokens, a step
    keeps half the target's worth of them."""
    config, window = model.config, model.config.block_size
    if config.arch == "bigram":
        return TrainStep(batch_size, window, 0.0, 0.0, shrunk=False)
    rate = matmul_flops_per_second(config.n_embd, device, amp_dtype)
    at_least = batch_size * window * flops_per_token(config, window) / rate
    if at_least <= SURE_FRACTION * target_seconds:
        return TrainStep(batch_size, window, at_least, at_least, shrunk=False)
    cost = measure_step_cost(model, device=device, amp_dtype=amp_dtype)

    def seconds(batch: int, tokens: int) -> float:
        return cost.seconds(config, batch, tokens)

    usual = seconds(batch_size, window)
    if usual <= target_seconds:
        return TrainStep(batch_size, window, usual, usual, shrunk=False)
    if seconds(1, window) <= target_seconds:  # fewer whole windows
        fits = max(b for b in range(1, batch_size + 1) if seconds(b, window) <= target_seconds)
        return TrainStep(fits, window, seconds(fits, window), usual, shrunk=True)
    budget = max(target_seconds - cost.fixed, target_seconds / 2)  # seconds of tokens a step spends
    while window > MIN_WINDOW and seconds(1, window) - cost.fixed > budget:  # one window, shorter
        window = max(MIN_WINDOW, window // 2)
    return TrainStep(1, window, seconds(1, window), usual, shrunk=True)


def evaluations_in(done: int, total: int, eval_interval: int) -> int:
    """Evaluations a run makes after `done` steps if it ends at `total`: one at each multiple of
    eval_interval up to total, and one at the end when total is not such a multiple."""
    return total // eval_interval - done // eval_interval + (total % eval_interval != 0)


def steps_that_fit(
    seconds_left: float, *, step_seconds: float, eval_seconds: float, done: int, eval_interval: int, most: int
) -> int:
    """The total of steps a run should end at: the most, up to `most`, whose steps after `done`
    and the evaluations they bring (`evaluations_in`, eval_seconds each) take at most
    seconds_left. `done` when not even one more step fits: the run then ends now."""

    def cost(total: int) -> float:
        return (total - done) * step_seconds + evaluations_in(done, total, eval_interval) * eval_seconds

    low, high = done, most  # cost(low) may exceed seconds_left already: done is the least there is
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= seconds_left:
            low = mid
        else:
            high = mid - 1
    return low
