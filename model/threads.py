"""How many CPU threads decoding uses: measured on this machine when a model is loaded, not assumed.

One token of a small model is a few small matrix-vector products. Splitting them over OpenMP
threads pays a hand-off per op that can cost more than it saves, and when another process keeps a
core busy a thread that waits for it stalls every op: bench/threads.py shows one thread many times
faster than torch's default of one per core for the shipped models on a loaded machine, and about
even on a quiet one. A large model on an idle machine can still gain from more threads, so rather
than fix a number, `choose_decode_threads` times a few decode steps at each candidate count and
keeps the fastest, preferring fewer threads unless more are clearly faster. An explicit choice
(--threads, /threads N, OMP_NUM_THREADS) is always kept as given. Training is not measured: its
batched matmuls use torch's default unless the user fixed a count.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..core.cores import cpu_threads

# torch's own choice at start-up (one thread per core, or OMP_NUM_THREADS), before any measurement
DEFAULT_THREADS = torch.get_num_threads()
MORE_THREADS_MARGIN = 0.10  # more threads must be this much faster per token to be chosen
ROUNDS = 7  # timed steps per candidate at most
CLEARLY_SLOWER = 2.0  # a count this many times slower than the best in one round is out
BUDGET_SECONDS = 0.1  # no more rounds after this long (at least one is always timed)


@dataclass(frozen=True)
class ThreadChoice:
    """The decode thread count in use and why: "measured", "chosen" (--threads, /threads N), "OMP_NUM_THREADS",
    "one core", or "torch's default" (decoding off the CPU, or a model without a decode step)."""

    count: int
    reason: str
    seconds_per_token: dict[int, float] | None = None  # the medians measured, by thread count

    @property
    def fixed(self) -> bool:
        """Chosen by the user: training uses it too (a measured count is for decoding only)."""
        return self.reason in ("chosen", "OMP_NUM_THREADS")

    def describe(self) -> str:
        plural = "s" if self.count != 1 else ""
        if self.reason == "chosen":
            return f"{self.count} thread{plural} (chosen with --threads or /threads)"
        if not self.seconds_per_token:
            return f"{self.count} thread{plural} ({self.reason})"
        timings = ", ".join(f"{n}: {s * 1000:.1f} ms" for n, s in sorted(self.seconds_per_token.items()))
        return f"{self.count} thread{plural} (measured per token at load: {timings})"


def fastest_threads(
    step: Callable[[], object], candidates: Sequence[int], *, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, dict[int, float]]:
    """The candidate thread count under which step() runs fastest, and each one's median seconds.

    Each candidate runs one untimed warm-up step, then up to ROUNDS timed steps taken in turn with
    the others, so a burst of load hits them alike. A candidate more than CLEARLY_SLOWER times the
    best in a round is dropped there, and rounds stop after BUDGET_SECONDS: a loaded machine, where
    one count can be 100x slower, costs a few of its steps, not many. Fewer threads win unless more
    are MORE_THREADS_MARGIN faster: they leave cores to the rest of the machine and stall less when
    it gets busy. Leaves torch set to the winner. clock times the steps (a test passes its own).
    """
    racing = sorted(set(candidates))
    times: dict[int, list[float]] = {n: [] for n in racing}
    for n in racing:
        torch.set_num_threads(n)
        step()
    start = clock()
    for _ in range(ROUNDS):
        for n in racing:
            torch.set_num_threads(n)
            t0 = clock()
            step()
            times[n].append(clock() - t0)
        fastest = min(times[n][-1] for n in racing)
        racing = [n for n in racing if times[n][-1] <= CLEARLY_SLOWER * fastest]
        if len(racing) == 1 or clock() - start > BUDGET_SECONDS:
            break
    medians = {n: statistics.median(ts) for n, ts in times.items()}
    best = racing[0]
    for n in racing[1:]:
        if medians[n] < medians[best] * (1 - MORE_THREADS_MARGIN):
            best = n
    torch.set_num_threads(best)
    return best, medians


def choose_decode_threads(engine, requested: int | None = None) -> ThreadChoice:
    """Set torch's thread count for decoding with engine (an Engine) and say what was chosen.

    requested (--threads, /threads N) is used as given; so is OMP_NUM_THREADS when set. Otherwise,
    on the CPU, the count is measured (`fastest_threads` over 1 and one per core) on the engine's
    one-token decode step; this empties the engine's KV cache. Elsewhere torch's count stays.
    """
    if requested is not None:
        torch.set_num_threads(requested)
        return ThreadChoice(requested, "chosen")
    if os.environ.get("OMP_NUM_THREADS"):
        return ThreadChoice(torch.get_num_threads(), "OMP_NUM_THREADS")
    candidates = sorted({1, min(DEFAULT_THREADS, cpu_threads())})
    if engine.device.type != "cpu" or not engine.can_probe:  # nothing to measure on the CPU
        return ThreadChoice(torch.get_num_threads(), "torch's default")
    if len(candidates) == 1:
        torch.set_num_threads(1)
        return ThreadChoice(1, "one core")
    best, medians = fastest_threads(engine.probe_step, candidates)
    return ThreadChoice(best, "measured", medians)


@contextlib.contextmanager
def temporary_threads(count: int) -> Iterator[None]:
    """torch set to count threads inside the block, and back to what it was afterwards (/train's threads).

    Not core.cores.use_threads, which sets a whole command's count from --threads and keeps it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
