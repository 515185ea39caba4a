"""The CPU cores this process may use, and the thread count train and eval give torch."""

from __future__ import annotations

import os


def cpu_threads() -> int:
    """The cores this process may run on: the most threads --threads takes."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def use_threads(count: int | None) -> None:
    """What --threads does for train and eval: torch's thread count, when given (else torch's default)."""
    if count is not None:
        import torch

        torch.set_num_threads(count)
