"""Durations in words: what a progress line, a plan and a summary say about time."""

from __future__ import annotations


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
