"""Progress for people: training's rich bar on a terminal (plain lines in a log or a pipe), and eval's."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from .console import make_console


def sparkline(values: list[float], width: int = 40) -> str:
    """The values as a row of block characters, lowest to highest, resampled to at most width."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[i * len(values) // width] for i in range(width)]
    lo, hi = min(values), max(values)
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[int((v - lo) / (hi - lo) * 7) if hi > lo else 0] for v in values)


class TrainProgress:
    """Reports steps of one training run. Use as a context manager; call `step` and `note`."""

    def __init__(self, total: int, *, start: int = 0, console: Console | None = None, every: int = 10):
        self.console = console or make_console(sys.stdout)
        self.total, self.start, self.every = total, start, every
        self.live = self.console.is_terminal
        self._tokens = 0
        self._t0 = time.perf_counter()
        self._bar: Progress | None = None
        self._eta: float | None = None  # seconds left as the run reckons them (evaluations included)
        self._eval_quarter = 0

    def __enter__(self) -> TrainProgress:
        self._t0 = time.perf_counter()  # tokens/s counts from here, not from what ran before
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:,.0f} tok/s"),
                _TimeLeft(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "train", total=self.total, completed=self.start, loss=0.0, tps=0.0, phase="train", eta=None
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    @property
    def tokens_per_second(self) -> float:
        return self._tokens / max(1e-9, time.perf_counter() - self._t0)

    def set_total(self, total: int) -> None:
        """The run now ends at `total` steps (`scratchgpt train --max-minutes` fits them once timed)."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def set_eta(self, seconds: float) -> None:
        """The time the run has left by its own reckoning, shown from the next step on."""
        self._eta = seconds

    def evaluating(self, done: int, total: int) -> None:
        """An evaluation's progress: in the bar, or a line at each quarter of it."""
        if self._bar is not None:
            phase = "train" if done == total else f"eval {done}/{total}"
            self._bar.update(self._task, phase=phase)
        elif done * 4 // total > self._eval_quarter or done == total:
            self._eval_quarter = 0 if done == total else done * 4 // total
            if done < total:
                self.note(f"  evaluated {done}/{total} batches")

    def step(self, step: int, loss: float, tokens: int) -> None:
        self._tokens += tokens
        done = step + 1
        if self._bar is not None:
            self._bar.update(self._task, completed=done, loss=loss, tps=self.tokens_per_second, eta=self._eta)
            if done >= self.total:  # the bar is full: it stays where it is, and the closing lines follow it
                self._bar.stop()
                self._bar = None
        elif done % self.every == 0 or done == self.total:
            elapsed = time.perf_counter() - self._t0
            eta = self._eta if self._eta is not None else elapsed / max(1, done - self.start) * (self.total - done)
            self.note(f"step {done}/{self.total}  loss {loss:.4f}  {self.tokens_per_second:,.0f} tok/s  eta {eta:.0f}s")

    def note(self, text: str) -> None:
        """A line that stays above the bar (evaluations, checkpoints); flushed, so logs are live."""
        self.console.print(text)
        self.console.file.flush()


class _TimeLeft(TimeRemainingColumn):
    """rich's time-remaining column, but the run's own reckoning when it gives one."""

    def render(self, task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            return super().render(task)
        minutes, seconds = divmod(round(eta), 60)
        return Text(f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}", style="progress.remaining")


class RunProgress:
    """A training run's display (`training.run.RunDisplay`): lines until the steps begin, then a
    TrainProgress (a bar on a terminal, lines every `every` steps elsewhere)."""

    def __init__(self, *, every: int = 10, console: Console | None = None):
        self.every = every
        self.console = console or make_console(sys.stdout)
        self.bar: TrainProgress | None = None

    def begin(self, total: int, start: int) -> None:
        self.bar = TrainProgress(total, start=start, console=self.console, every=self.every).__enter__()

    def step(self, step: int, loss: float, tokens: int) -> None:
        self.bar.step(step, loss, tokens)

    def set_total(self, total: int) -> None:
        self.bar.set_total(total)

    def set_eta(self, seconds: float) -> None:
        self.bar.set_eta(seconds)

    def evaluating(self, done: int, total: int) -> None:
        self.bar.evaluating(done, total)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.note(text)
        else:
            self.console.print(text)
            self.console.file.flush()

    def end(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


class EvalProgress:
    """`scratchgpt eval`'s bar on stderr while the val split is scored; nothing when stderr is not a
    terminal, so piped output and --json stay as they were. Call `update(scored, total)`."""

    def __init__(self, console: Console | None = None):
        self.console = console or make_console(stderr=True)
        self._bar: Progress | None = None

    def __enter__(self) -> EvalProgress:
        if self.console.is_terminal:
            columns = (
                TextColumn("[bold]scoring the val split"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tokens"),
                TimeRemainingColumn(),
            )
            self._bar = Progress(*columns, console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("eval", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, scored: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=scored, total=total)
