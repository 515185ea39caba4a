"""Ctrl-C (and the signals that mean the same to a long job) turned into a flag a loop checks.

Training stops between two steps, so a step is never half applied, and saves; streaming checks the
flag per token. SIGTERM is what `docker stop`, SLURM, systemd and torchrun's launcher send, SIGHUP
what a closing terminal sends: to a training run they mean what Ctrl-C means.
"""

from __future__ import annotations

import contextlib
import signal
import threading

# the signals a training run treats as Ctrl-C; SIGHUP does not exist on Windows
TRAINING_SIGNALS = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


class InterruptFlag:
    """While active, the given signals (default Ctrl-C alone) only set `requested`; the loop
    that checks it stops at a safe point. Outside the main thread it does nothing.

    With `active(raise_now=True)` they also raise KeyboardInterrupt at once, as Python does for
    Ctrl-C by default, and a streaming loop calls `check()` per token. An exception raised inside
    a torch.compile'd call can be swallowed there and never reach the loop, so `check()` raises
    it again from the flag.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None  # the first signal received

    def _on_signal(self, signum: int, raise_now: bool) -> None:
        self.requested = True
        self.signal = self.signal or signum
        if raise_now:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def active(self, *, raise_now: bool = False, signals: tuple[int, ...] = (signal.SIGINT,)):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, lambda signum, _: self._on_signal(signum, raise_now)) for s in signals}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came while active."""
        if self.requested:
            raise KeyboardInterrupt

    @property
    def exit_status(self) -> int:
        """The shell's status for a process the signal received ended (130 for Ctrl-C), 0 if none came."""
        if not self.requested:
            return 0
        return 128 + (self.signal or signal.SIGINT)
