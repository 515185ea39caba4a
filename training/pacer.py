"""A run's pace: how long its steps and evaluations take, how long the rest will take, and for
`--max-minutes` the step it should end at.

The pacer decides nothing about the run itself: `Pacer.fit` returns a new end, and the run
carries it out (its state, from which its lr schedule, its saves and its display follow).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from .budget import evaluations_in, steps_that_fit

REFIT_STEPS = 50  # --max-minutes: the recent steps whose pace sets how many more fit


@dataclass
class Pacer:
    """Step times as they come, and an evaluation's cost once measured.

    A step's time is the training loop's own measure of it (`StepInfo.seconds`: batches, forward,
    backward, update); the run leaves out its first step (set-up, compilation). Evaluations and
    saves are counted apart: `eval_seconds` each, at the steps `evaluations_in` names.
    """

    eval_interval: int
    deadline: float | None = None  # perf_counter time by which a --max-minutes run must end
    most: int = 0  # --max-iters: the longest run a fit may choose
    eval_seconds: float | None = None  # one evaluation, once measured
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=REFIT_STEPS))

    def step_done(self, seconds: float) -> None:
        """A step took seconds."""
        self.recent.append(seconds)

    @property
    def step_seconds(self) -> float:
        """The mean of the recent steps: the time left is spent on their sum."""
        return sum(self.recent) / len(self.recent) if self.recent else 0.0

    def seconds_left(self, done: int, end: int) -> float:
        """The steps from done to end and their evaluations, the last one included."""
        evaluations = evaluations_in(done, end, self.eval_interval)
        return (end - done) * self.step_seconds + evaluations * (self.eval_seconds or 0.0)

    def fit(self, done: int) -> int:
        """The step a --max-minutes run should end at: the most, up to `most`, whose steps and
        evaluations still fit before the deadline; `done` when not one more does."""
        assert self.deadline is not None and self.eval_seconds is not None
        return steps_that_fit(
            self.deadline - time.perf_counter(),
            step_seconds=self.step_seconds,
            eval_seconds=self.eval_seconds,
            done=done,
            eval_interval=self.eval_interval,
            most=self.most,
        )
