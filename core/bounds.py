"""Bounds of the numbers users type: flags, recipe values and REPL settings are checked by one type.

A bad value raises argparse.ArgumentTypeError (named `BadValue` here), the standard library's
exception for a value of the wrong kind, so a `Number` serves as a flag's type unchanged and
recipes catch the same error. The REPL's converters share `plain_number` and `Number.allows`
and word their own messages, quoting what was typed as its prompt shows it.
"""

from __future__ import annotations

import math
from argparse import ArgumentTypeError as BadValue
from dataclasses import dataclass

from .text import quoted_arg

SEED_MAX = 2**32 - 1  # of training and of sampling


def plain_number(text: str, *, whole: bool) -> int | float | None:
    """text as an int (whole) or a float when it is a number in plain ASCII (no "1_000", no "５"), else
    None. A float may come out infinite or NaN: the caller says what it needs."""
    if not text.isascii() or "_" in text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:  # not a number, or an int of more than 4300 digits
        return None


@dataclass(frozen=True)
class Number:
    """The type of a numeric flag: plain ASCII digits (no "1_000", no "５"), finite, within bounds.

    The bounds are part of a flag's meaning (a probability lies in [0, 1]) or keep absurd values
    away from code that would overflow or allocate without end. Every error names the range.
    """

    whole: bool  # an int, else a float
    low: float
    high: float
    low_open: bool = False  # low itself not allowed (a learning rate of 0 trains nothing)
    high_open: bool = False  # high itself not allowed (a dropout of 1 drops everything)
    or_zero: bool = False  # 0 allowed as well, below low (temperature 0 = greedy)

    def __call__(self, text: str) -> int | float:
        value = self._parse(text)
        if value is None or not self.allows(value):
            raise BadValue(f"expected {self.describe()}, got {quoted_arg(text)}")
        return value

    def _parse(self, text: str) -> int | float | None:
        value = plain_number(text, whole=self.whole)
        return value if value is not None and math.isfinite(value) else None

    def allows(self, value: float) -> bool:
        if self.or_zero and value == 0:
            return True
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """The allowed values in words, e.g. "a whole number from 1 to 65536"."""
        if self.whole:
            return f"a whole number {self.span()}"
        return ("0 or " if self.or_zero else "") + f"a number {self.span()}"

    def span(self) -> str:
        """The range alone, e.g. "from 1 to 65536" or "above 0 and at most 1"."""
        if self.whole:
            return f"from {int(self.low)} to {int(self.high)}"
        below = "below " if self.high_open else ""
        if self.low_open:
            return f"above {self.low:g} and {below or 'at most '}{self.high:g}"
        return f"from {self.low:g} to {below}{self.high:g}"


def whole(low: int, high: int) -> Number:
    return Number(whole=True, low=low, high=high)


def real(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Number:
    return Number(whole=False, low=low, high=high, low_open=low_open, high_open=high_open)
