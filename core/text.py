"""Users' text as it goes into a message: one safe line, quoted, and the word a typo most likely meant."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

SHOWN_MAX = 40  # characters of a bad value quoted back in an error


def closest(word: str, choices: Sequence[str], *, cutoff: float = 0.6) -> str | None:
    """The choice a misspelt word most likely meant (`sampel` -> `sample`), or None when none is close."""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def escape_controls(text: str) -> str:
    """text with every non-printable character (newline, escape, ...) written as its escape: one safe line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(text: str) -> str:
    """A user's value as it goes into an error message: quoted, one printable line, not too long."""
    text = escape_controls(text)
    return "'" + (text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 1] + "…") + "'"
