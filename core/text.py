"""Text on its way to a terminal or into a message, and the word a typo most likely meant.

Each function is named for where its text goes: `terminal_safe` (model or user text printed as it
is, control characters dropped), `terminal_line` (the same, made one line: an error line),
`quoted_arg` (a command-line value quoted in an error, its controls escaped so it can be told
exactly), `quoted_typed` (what was typed at the REPL prompt, quoted as the prompt showed it).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

SHOWN_MAX = 40  # characters of a bad value quoted back in an error
# terminal control characters but newline and tab: C0, DEL and C1
_CONTROL = {c: None for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in "\n\t"}


def closest(word: str, choices: Sequence[str], *, cutoff: float = 0.6) -> str | None:
    """The choice a misspelt word most likely meant (`sampel` -> `sample`), or None when none is close."""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def counted(n: int, noun: str) -> str:
    """n and the noun, plural unless n is 1: "1 step", "5 steps", "2,048 tokens"."""
    return f"{n:,} {noun}{'s' * (n != 1)}"


def escape_controls(text: str) -> str:
    """text with every non-printable character (newline, escape, ...) written as its escape: one safe line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def terminal_safe(text: str) -> str:
    """text without terminal control characters (escape sequences typed or sampled are never replayed)."""
    return text.translate(_CONTROL)


def terminal_line(text: str) -> str:
    """text as one printable line: control characters dropped, newlines and tabs made spaces."""
    return terminal_safe(text).replace("\n", " ").replace("\t", " ")


def _clipped(text: str) -> str:
    return "'" + (text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 1] + "…") + "'"


def quoted_arg(text: str) -> str:
    """A value from the command line as it goes into an error message: quoted, not too long, its
    control characters written as escapes (`\\n`), so that what was passed can be told exactly."""
    return _clipped(escape_controls(text))


def quoted_typed(text: str) -> str:
    """What a user typed at the REPL's prompt as it goes into an error message: quoted, not too long,
    one line with control characters dropped, as the prompt showed it."""
    return _clipped(terminal_line(text))
