"""Progress for people: training's rich bar on a terminal (plain lines in a log or a pipe), and eval's."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def sparkline(values: list[float], width: int = 40) -> str:
    """The values as a row of block characters, lowest to highest, resampled to at most width."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[i * len(values) // width] for i in range(width)]
    lo, hi = min(values), max(values)
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[int((v - lo) / (hi - lo) * 7) if hi > lo else 0] for v in values)


def duration(seconds: float) -> str:
    """seconds in words a person reads at a glance: "40 s", "14 min", "2 h 5 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def clock(seconds: float) -> str:
    """A wall time to the second: "41 s", "3 min 41 s", "2 h 05 min 09 s"."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min {s % 60:02d} s"


class TrainProgress:
    """Reports steps of one training run. Use as a context manager; call `step` and `note`."""

    def __init__(
        self, total: int, *, start: int = 0, console: Console | None = None, every: int = 10, quiet: bool = False
    ):
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True, quiet=quiet)
        self.total, self.start, self.every = total, start, every
        self.live = self.console.is_terminal and not quiet
        self._tokens = 0
        self._t0 = time.perf_counter()
        self._bar: Progress | None = None

    def __enter__(self) -> TrainProgress:
        self._t0 = time.perf_counter()  # tokens/s counts from here, not from what ran before
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:,.0f} tok/s"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.total, completed=self.start, loss=0.0, tps=0.0)
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

    def step(self, step: int, loss: float, tokens: int) -> None:
        self._tokens += tokens
        done = step + 1
        if self._bar is not None:
            self._bar.update(self._task, completed=done, loss=loss, tps=self.tokens_per_second)
            if done >= self.total:  # the bar is full: it stays where it is, and the closing lines follow it
                self._bar.stop()
                self._bar = None
        elif done % self.every == 0 or done == self.total:
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / max(1, done - self.start) * (self.total - done)
            self.note(f"step {done}/{self.total}  loss {loss:.4f}  {self.tokens_per_second:,.0f} tok/s  eta {eta:.0f}s")

    def note(self, text: str) -> None:
        """A line that stays above the bar (evaluations, checkpoints); flushed, so logs are live."""
        self.console.print(text)
        self.console.file.flush()


class EvalProgress:
    """`scratchgpt eval`'s bar on stderr while the val split is scored; nothing when stderr is not a
    terminal, so piped output and --json stay as they were. Call `update(scored, total)`."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self._bar: Progress | None = None

    def __enter__(self) -> EvalProgress:
        if self.console.is_terminal:
            columns = (TextColumn("[bold]scoring the val split"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("tokens"), TimeRemainingColumn())  # fmt: skip
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
