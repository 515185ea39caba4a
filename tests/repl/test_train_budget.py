"""/train on a model too big for its usual batch to be quick: a smaller batch, announced with how long
the steps will take; every other model keeps the batch it always had."""

from __future__ import annotations

import pytest
import torch

from scratchgpt.model.gpt import GPT2_LAYOUT, GPTConfig
from scratchgpt.repl import session as session_module
from scratchgpt.repl import train_budget
from scratchgpt.repl.train_budget import MIN_WINDOW, STEP_SECONDS, duration, plan_train_step, step_flops

GPT2_SMALL = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, **GPT2_LAYOUT)
CPU = torch.device("cpu")


@pytest.fixture
def matmul_rate(monkeypatch):
    """Pretend this machine's matmuls run at a given FLOPs per second."""

    def set_rate(rate: float) -> None:
        monkeypatch.setattr(train_budget, "matmul_flops_per_second", lambda width, device, dtype: rate)

    return set_rate


def test_gpt2_small_on_a_cpu_trains_on_fewer_tokens_so_a_step_stays_near_the_target(matmul_rate):
    matmul_rate(100e9)  # a laptop CPU's order of magnitude
    proposed = session_module.train_batch_size(GPT2_SMALL.block_size)
    assert step_flops(GPT2_SMALL, proposed, 1024) / (100e9 * train_budget.STEP_EFFICIENCY) > 5 * STEP_SECONDS
    plan = plan_train_step(GPT2_SMALL, batch_size=proposed, device=CPU, amp_dtype=None)
    assert plan.shrunk and plan.batch_size == 1 and MIN_WINDOW <= plan.window < 1024
    assert STEP_SECONDS / 2 < plan.seconds <= STEP_SECONDS  # the longest window that fits, halving from 1024
    line = plan.describe(100)
    assert line.startswith(f"/train 100: 1 x {plan.window} tokens a step (fewer than usual")
    assert line.endswith(f"so about {duration(100 * plan.seconds)} in all")


def test_a_model_whose_step_fits_keeps_the_proposed_batch(matmul_rate):
    matmul_rate(1e15)  # an accelerator: GPT-2 small's usual batch is quick
    plan = plan_train_step(GPT2_SMALL, batch_size=2, device=CPU, amp_dtype=None)
    assert (plan.batch_size, plan.window, plan.shrunk) == (2, 1024, False)


def test_fewer_whole_windows_before_shorter_ones(matmul_rate):
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32)
    one_window = step_flops(config, 1, 64) / train_budget.STEP_EFFICIENCY
    matmul_rate(one_window * 3.5 / STEP_SECONDS)  # three windows fit in a step, not 32
    plan = plan_train_step(config, batch_size=32, device=CPU, amp_dtype=None)
    assert (plan.batch_size, plan.window, plan.shrunk) == (3, 64, True)


def test_the_measured_matmul_rate_is_a_positive_finite_figure():
    rate = train_budget.matmul_flops_per_second(64, CPU, torch.float32)
    assert 1e6 < rate < 1e16


@pytest.mark.parametrize("seconds, words", [(40, "40 s"), (12 * 60, "12 min"), (2.5 * 3600, "2.5 h")])
def test_durations_read_at_a_glance(seconds, words):
    assert duration(seconds) == words


def test_slash_train_announces_the_smaller_batch_and_its_time_before_the_first_step(drive, matmul_rate):
    matmul_rate(1e6)  # so slow that even the tiny test model is cut to one window a step
    steps = []
    d = drive()
    session = d.session
    train = session.train
    session.train = lambda *a, on_step, **kw: train(*a, on_step=lambda info: (steps.append(info), on_step(info)), **kw)
    d.repl.handle("/train 2")
    assert steps[0].tokens == MIN_WINDOW < session_module.TRAIN_BATCH_TOKENS
    announced = d.out.index("/train 2: 1 x 32 tokens a step (fewer than usual")
    assert announced < d.out.index("trained 2 steps")
