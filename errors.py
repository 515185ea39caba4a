"""The one exception type for mistakes a user can make (bad file, bad flag, bad argument)."""

from __future__ import annotations


class ScratchGPTError(Exception):
    """A user-facing error: its message is one line saying what is wrong and what to do.

    Entry points print it as `error: <message>` on stderr and exit non-zero; tracebacks are
    for bugs (or `--debug`).
    """
