"""The one definition of how replies are sampled: `SamplingSettings` and the bounds of each setting.

Temperature, top-k, top-p, length, stop strings and seed, each with its bounds stated once here.
`scratchgpt sample`'s flags, the REPL's flags and its slash commands all check values against
these bounds, and assigning a value outside them raises, so no front end can let one through.
The engine takes a `SamplingSettings` for each reply. Free of torch, so a CLI parses its flags
before torch loads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..core.bounds import SEED_MAX, Number, real, whole
from ..core.errors import ScratchGPTError
from ..core.text import quoted_arg

# Below this a temperature samples as greedy: dividing the logits by less would overflow them, and
# the distribution already sits all on the likeliest token.
GREEDY_BELOW = 1e-6

TEMPERATURE = real(0, 10)  # 0 = greedy; past 10 every token is about equally likely
LENGTH = whole(1, 100_000)  # new tokens of one reply; nothing is allocated up front for them
TOP_K = whole(1, 1_000_000)
TOP_P = real(0, 1, low_open=True)
SEED = whole(0, SEED_MAX)
BOUNDS: dict[str, Number] = {
    "temperature": TEMPERATURE,
    "max_new_tokens": LENGTH,
    "top_k": TOP_K,
    "top_p": TOP_P,
    "seed": SEED,
}


class SettingError(ValueError):
    """A value a setting does not take; the message says which values it does (no setting name)."""


def fresh_seed() -> int:
    return random.randrange(2**31)


def parse_stop(text: str) -> str:
    r"""Turn the escapes a user types (\n, \t, \\) into the characters they stand for."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def stop_text(text: str) -> str:
    r"""A stop string as typed (escapes like \n\n allowed) turned into the text to stop at."""
    try:
        stop = parse_stop(text)
    except (UnicodeError, ValueError):
        raise SettingError(rf"has a broken escape in {quoted_arg(text)}; write \n, \t or \\") from None
    if not any(c.isprintable() or c in "\n\t" for c in stop):  # nothing but control characters
        raise SettingError("needs some text to stop at")
    return stop


@dataclass
class SamplingSettings:
    """How a reply is sampled. Every assignment is checked against `BOUNDS` (ScratchGPTError)."""

    temperature: float = 0.8  # divides the logits; 0 (or below GREEDY_BELOW) = always the likeliest token
    max_new_tokens: int = 500  # the longest reply, in tokens ("length": -n/--len, /len, num_predict)
    top_k: int | None = None  # sample among the k likeliest tokens; None = all
    top_p: float | None = None  # the smallest set of tokens with this much probability; None = no cut
    seed: int = field(default_factory=fresh_seed)  # of the sampler's generator
    stop: list[str] = field(default_factory=list)  # a reply ends before any of these (escapes already read)

    def __setattr__(self, name: str, value: object) -> None:
        bound = BOUNDS.get(name)
        if bound is not None and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not bound.allows(value):
                raise ScratchGPTError(f"{name} must be {bound.describe()}, got {value!r}")
            if bound.whole and not isinstance(value, int):
                raise ScratchGPTError(f"{name} must be {bound.describe()}, got {value!r}")
        elif value is None and name in ("temperature", "max_new_tokens", "seed"):
            raise ScratchGPTError(f"{name} needs a value")
        if name == "top_p" and value == 1:  # the whole distribution: the same as no cut
            value = None
        object.__setattr__(self, name, value)

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def sampling_options(self) -> dict:
        """The keyword options of Engine.generate and sample_next."""
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}
