"""/train on a model too big for its usual batch to be quick: a smaller batch, announced with how long
the steps will take; every other model keeps the batch it always had."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from scratchgpt.core.durations import duration
from scratchgpt.model.gpt import GPT2_LAYOUT, GPTConfig, build_model
from scratchgpt.training import budget as train_budget
from scratchgpt.training.budget import MIN_WINDOW, STEP_SECONDS, StepCost, plan_train_step
from scratchgpt.training.config import FINE_TUNE_BATCH_TOKENS
from scratchgpt.training.start import batch_size_for

GPT2_SMALL = SimpleNamespace(
    config=GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, **GPT2_LAYOUT)
)
CPU = torch.device("cpu")


@pytest.fixture
def machine(monkeypatch):
    """Pretend this machine's matmuls run at `matmul` FLOPs per second and a step of any model costs
    `fixed` seconds plus `per_token` seconds a token; returns how often the model was timed."""
    timed = []

    def set_speed(*, matmul: float, fixed: float = 0.0, per_token: float = 0.0) -> list:
        monkeypatch.setattr(train_budget, "matmul_flops_per_second", lambda width, device, dtype: matmul)

        def measure(model, **kw) -> StepCost:
            timed.append(model)
            return StepCost(fixed=fixed, per_token=per_token, probe_window=min(512, model.config.block_size))

        monkeypatch.setattr(train_budget, "measure_step_cost", measure)
        return timed

    return set_speed


def test_gpt2_small_on_a_cpu_trains_on_shorter_windows_so_a_step_stays_near_the_target(machine):
    machine(matmul=200e9, fixed=0.5, per_token=0.01)  # a laptop CPU's order of magnitude
    proposed = batch_size_for(1024)
    plan = plan_train_step(GPT2_SMALL, batch_size=proposed, device=CPU, amp_dtype=None)
    assert plan.shrunk and plan.batch_size == 1 and plan.window == 128  # 256 tokens would take 3.07 s
    assert 1.7 < plan.seconds <= STEP_SECONDS and plan.usual_seconds > 20
    line = plan.describe(100)
    assert line.startswith("/train 100: 1 x 128 tokens a step (fewer than usual, which would take about 22 s")
    assert line.endswith(f"so about {duration(100 * plan.seconds)} in all")


def test_where_the_fixed_part_of_a_step_exceeds_the_target_a_step_keeps_half_the_target_in_tokens(machine):
    machine(matmul=200e9, fixed=10.0, per_token=0.01)  # the weights' passes alone take 10 s
    plan = plan_train_step(GPT2_SMALL, batch_size=2, device=CPU, amp_dtype=None)
    assert (plan.batch_size, plan.window) == (1, 128) and 11 < plan.seconds < 10 + STEP_SECONDS / 2 + 0.1


@pytest.mark.parametrize("matmul, timings", [(1e15, 0), (200e9, 1)], ids=["sure-at-a-glance", "timed"])
def test_a_model_whose_step_fits_keeps_the_proposed_batch(machine, matmul, timings):
    timed = machine(matmul=matmul, fixed=0.1, per_token=1e-4)
    plan = plan_train_step(GPT2_SMALL, batch_size=2, device=CPU, amp_dtype=None)
    assert (plan.batch_size, plan.window, plan.shrunk) == (2, 1024, False) and len(timed) == timings


def test_fewer_whole_windows_before_shorter_ones(machine):
    model = SimpleNamespace(config=GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32))
    machine(matmul=1.0, per_token=STEP_SECONDS / (3.5 * 64))  # three windows fit in a step, not 32
    plan = plan_train_step(model, batch_size=32, device=CPU, amp_dtype=None)
    assert (plan.batch_size, plan.window, plan.shrunk) == (3, 64, True)


def test_the_measured_matmul_rate_is_a_positive_finite_figure():
    rate = train_budget.matmul_flops_per_second(64, CPU, None)
    assert 1e6 < rate < 1e16


def test_timing_a_model_leaves_its_weights_gradients_mode_and_rng_as_they_were():
    model = build_model(GPTConfig(vocab_size=65, block_size=128, n_layer=2, n_head=2, n_embd=32, dropout=0.1)).eval()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    cost = train_budget.measure_step_cost(model, device=CPU, amp_dtype=None)
    assert cost.fixed >= 0 and cost.per_token >= 0 and cost.seconds(model.config, 1, 128) > 0
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("seconds, words", [(40, "40 s"), (12 * 60, "12 min"), (2.5 * 3600, "2 h 30 min")])
def test_durations_read_at_a_glance(seconds, words):
    assert duration(seconds) == words


def test_slash_train_announces_the_smaller_batch_and_its_time_before_the_first_step(drive, machine):
    machine(matmul=1.0, per_token=1.0)  # so slow that even the tiny test model gets one short window a step
    steps = []
    d = drive()
    session = d.session
    train = session.train
    session.train = lambda *a, on_step, **kw: train(*a, on_step=lambda info: (steps.append(info), on_step(info)), **kw)
    d.repl.handle("/train 2")
    assert steps[0].tokens == MIN_WINDOW < FINE_TUNE_BATCH_TOKENS
    announced = d.out.index("/train 2: 1 x 32 tokens a step (fewer than usual")
    assert announced < d.out.index("trained 2 steps")
