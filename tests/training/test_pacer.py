"""training/pacer.py: a run's pace leaves out its first step, which carries set-up and compilation."""

from __future__ import annotations

import time

import pytest

from scratchgpt.cli.train import parse_args
from scratchgpt.training import pacer as pacer_module
from scratchgpt.training import run as run_module
from scratchgpt.training.pacer import Pacer
from scratchgpt.training.run import SilentDisplay, train

TINY = (
    "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --log-interval 5 --eval-iters 1 "
    "--eval-interval 100 --device cpu --amp fp32"
).split()
SLOW = 2.0  # seconds the first step takes here, far beyond a tiny model's step


def test_the_pace_is_the_mean_of_the_recent_steps_only():
    pacer = Pacer(eval_interval=5)
    for seconds in [9.0] + [1.0] * pacer_module.REFIT_STEPS:
        pacer.step_done(seconds)
    assert pacer.step_seconds == 1.0  # the 9 s step has left the window


def test_a_slow_first_step_counts_neither_in_the_pace_nor_in_the_fitted_end(tmp_path, monkeypatch):
    pacers: list[Pacer] = []

    class Recorded(Pacer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pacers.append(self)

    fitted_at: list[float] = []  # the step time each --max-minutes fit was given

    def fit(*args, step_seconds, most, **kwargs):
        fitted_at.append(step_seconds)
        return most

    real_loop = run_module.train_loop

    def loop(*args, on_step, **kwargs):
        def slow_first(info):
            if info.step == 0:
                time.sleep(SLOW)  # as set-up or compilation would in the first step
            on_step(info)

        return real_loop(*args, on_step=slow_first, **kwargs)

    monkeypatch.setattr(run_module, "Pacer", Recorded)
    monkeypatch.setattr(pacer_module, "steps_that_fit", fit)
    monkeypatch.setattr(run_module, "train_loop", loop)
    args = parse_args([*TINY, "--max-iters", "6", "--max-minutes", "5", "--out", str(tmp_path / "run.safetensors")])
    summary = train(args.config, display=SilentDisplay())
    assert summary.steps == 6
    (pacer,) = pacers
    steps = list(pacer.recent)  # steps 2 to 6: the first is left out
    assert len(steps) == 5 and max(steps) < SLOW
    assert fitted_at[0] == pytest.approx(sum(steps[:2]) / 2)  # the first fit, after step 3, paced on steps 2 and 3
