"""`scratchgpt train --max-minutes`: the steps that fit a time budget, and a run that keeps to one."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.cli.train import parse_args, run
from scratchgpt.model.checkpoint import load_checkpoint
from scratchgpt.training import pacer as pacer_module
from scratchgpt.training import run as run_module
from scratchgpt.training.budget import evaluations_in, steps_that_fit
from scratchgpt.training.loop import Schedule
from scratchgpt.training.run_files import RunPaths, saved_config

TINY = (
    "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --eval-iters 2 --log-interval 5 "
    "--device cpu --amp fp32"
).split()


def test_evaluations_count_each_multiple_of_the_interval_and_an_end_between_them():
    assert evaluations_in(0, 10, 5) == 2  # at 5 and 10
    assert evaluations_in(0, 12, 5) == 3  # at 5, 10 and the end
    assert evaluations_in(3, 3, 5) == 1  # ending now, between two: one more
    assert evaluations_in(5, 5, 5) == 0  # step 5 was just evaluated


def test_the_steps_that_fit_leave_time_for_their_evaluations():
    # 1 s a step, 10 s an evaluation every 50 steps: 80 steps and 2 evaluations take 100 s
    assert steps_that_fit(100, step_seconds=1, eval_seconds=10, done=0, eval_interval=50, most=10**6) == 80
    assert steps_that_fit(100, step_seconds=1, eval_seconds=0, done=3, eval_interval=50, most=10**6) == 103
    assert steps_that_fit(100, step_seconds=1, eval_seconds=0, done=3, eval_interval=50, most=40) == 40
    assert steps_that_fit(5, step_seconds=1, eval_seconds=10, done=7, eval_interval=50, most=100) == 7  # none


@given(
    left=st.floats(0, 500),
    step=st.floats(0.01, 5),
    evaluation=st.floats(0, 30),
    done=st.integers(0, 60),
    interval=st.integers(1, 40),
    extra=st.integers(0, 300),
)
def test_the_fit_is_the_longest_run_within_the_time_left(left, step, evaluation, done, interval, extra):
    most = done + extra

    def cost(total):
        return (total - done) * step + evaluations_in(done, total, interval) * evaluation

    fitting = [t for t in range(done, most + 1) if cost(t) <= left]
    expected = max(fitting) if fitting else done
    assert (
        steps_that_fit(left, step_seconds=step, eval_seconds=evaluation, done=done, eval_interval=interval, most=most)
        == expected
    )


def train(out, *extra):
    return run(parse_args([*TINY, "--out", str(out), *extra]))


def test_a_run_with_a_time_budget_ends_within_it_and_saves_the_steps_it_fitted(tmp_path, capsys):
    out = tmp_path / "run.safetensors"
    t0 = time.perf_counter()
    summary = train(out, "--max-minutes", "0.25", "--max-iters", "1000000", "--eval-interval", "200")
    elapsed = time.perf_counter() - t0
    assert 3 < summary.steps < 1_000_000
    assert elapsed < 15 + 10  # the budget, and at most a few steps, an evaluation and a save past it
    printed = capsys.readouterr().out
    assert " steps in all fit --max-minutes 0.25, evaluations included" in printed  # the first fit
    assert f"finished {summary.steps:,} steps in " in printed  # where the refits took it
    assert load_checkpoint(RunPaths.from_out(out).last).provenance["step"] == summary.steps - 1  # saved at the end
    again = saved_config(out)  # a resume keeps to the fitted steps rather than fitting anew
    assert again.max_iters == summary.steps and again.max_minutes is None


def test_steps_slower_than_the_first_fit_expected_bring_the_end_closer(tmp_path, monkeypatch):
    calls = []

    def fit(*args, most, **kwargs):  # the first fit as if steps took no time; the refits as they are
        calls.append(kwargs["done"])
        return most if len(calls) == 1 else steps_that_fit(*args, most=most, **kwargs)

    monkeypatch.setattr(pacer_module, "steps_that_fit", fit)
    out = tmp_path / "run.safetensors"
    t0 = time.perf_counter()
    summary = train(out, "--max-minutes", "0.1", "--max-iters", "1000000", "--eval-interval", "1000000")
    assert time.perf_counter() - t0 < 6 + 10
    assert 3 < summary.steps < 1_000_000 and calls[:2] == [3, 5]  # refitted at each --log-interval step
    assert load_checkpoint(out).provenance["step"] == summary.steps - 1
    assert saved_config(out).max_iters == summary.steps


def test_a_refit_with_no_time_left_ends_the_run_there_evaluated_and_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pacer_module, "steps_that_fit", lambda *a, done, most, **k: most if done == 3 else done)
    out = tmp_path / "run.safetensors"
    summary = train(out, "--max-minutes", "5", "--max-iters", "1000000", "--eval-interval", "1000000")
    assert summary.steps == 5  # the first refit, at --log-interval 5, found no time left
    assert "step 5: --max-minutes 5 is up; ending here" in capsys.readouterr().out
    assert load_checkpoint(out).provenance["step"] == 4
    assert not summary.interrupted and summary.exit_status == 0
    assert RunPaths.from_out(out).train_state.exists()


def test_a_fitted_run_follows_the_schedule_of_its_fitted_length(tmp_path, monkeypatch):
    monkeypatch.setattr(pacer_module, "steps_that_fit", lambda *a, **k: 12)
    lrs = []
    real_loop = run_module.train_loop

    def loop(*args, schedule, **kwargs):
        def recording(step):
            lrs.append(schedule(step))
            return lrs[-1]

        return real_loop(*args, schedule=recording, **kwargs)

    monkeypatch.setattr(run_module, "train_loop", loop)
    flags = ["--lr", "1e-2", "--warmup-iters", "2", "--min-lr-ratio", "0.1", "--eval-interval", "100"]
    summary = train(tmp_path / "run.safetensors", "--max-minutes", "5", "--max-iters", "1000", *flags)
    assert summary.steps == 12
    # the steps before the fit are warmup and the peak, the same for any length; then it decays over 12
    fitted = Schedule(1e-2, 12, warmup=2, min_lr_ratio=0.1)
    assert lrs == pytest.approx([fitted(step) for step in range(12)])
    assert lrs[-1] < 2e-3
