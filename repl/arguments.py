"""What a slash command's argument may be: one converter per kind of argument, from the typed text
(stripped) to the value its handler takes, raising `ArgError` with what was expected.

The command table (commands.py) names a converter for each command. The two converters that name a
command (/help CMD, /set NAME VALUE) are made from the table's lookup, so this module needs no table.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from typing import Any

from ..core.bounds import Number, plain_number, whole
from ..core.cores import cpu_threads
from ..core.text import closest, quoted_typed, terminal_safe
from ..model.sampling_settings import LENGTH, SEED, TEMPERATURE, TOP_K, TOP_P, SettingError, stop_text
from ..tokenizers import TOKENIZER_NAMES
from .command_types import Command, Lookup

TRAIN_MAX = 100_000  # most steps one /train takes
LAYER_MAX = 1 << 10  # /attention's layer bound before the model's own is checked
OFF = "off"  # the value of "/topk off", "/topp off", "/stop off", "/chat off"
AUTO = "auto"  # the value of "/threads auto"


class ArgError(ValueError):
    """An argument that does not fit its command; the message says what was expected."""


# --- converters: str -> value, raising ArgError ----------------------------------------------------


def optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An optional argument: no text means "show the current value" (None)."""
    return lambda text: None if not text else convert(text)


def _one_word(text: str) -> str:
    if len(text.split()) > 1:
        raise ArgError(f"takes one argument, got {len(text.split())}")
    return text


def _number(text: str, *, whole: bool) -> float | int:
    text = _one_word(text)
    value = plain_number(text, whole=whole)
    if value is None:
        raise ArgError(f"expected {'a whole number' if whole else 'a number'}, got {quoted_typed(text)}")
    if not math.isfinite(value):
        raise ArgError(f"expected a finite number, got {quoted_typed(text)}")
    return value


def _within(bound: Number, note: str = "") -> Callable[[str], float | int]:
    """A number within one of sampling_settings.py's bounds (note: what an end means, e.g. 0 = greedy)."""

    def convert(text: str) -> float | int:
        value = _number(text, whole=bound.whole)
        if not bound.allows(value):
            raise ArgError(f"must be {bound.span()}{note}, got {quoted_typed(text)}")
        return value

    return convert


def off_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argument that may also be "off" (or "none"), which the handler sees as OFF."""
    return lambda text: OFF if text.lower() in ("off", "none") else convert(text)


temperature_arg = _within(TEMPERATURE, " (0 = greedy)")
length_arg = _within(LENGTH)
top_k_arg = _within(TOP_K)
seed_arg = _within(SEED)
top_p_arg = _within(TOP_P)


def stop_arg(text: str) -> str:
    try:
        return stop_text(text)
    except SettingError as e:
        raise ArgError(str(e)) from None


def threads_arg(text: str) -> int | str:
    if text.lower() == AUTO:
        return AUTO
    return _within(whole(1, cpu_threads()))(text)


# ollama's parameter names (and llama.cpp's, which ollama follows) -> our command; ours work too
OLLAMA_NAMES = {
    "temperature": "temp",
    "num_predict": "len",
    "n_predict": "len",
    "top_k": "topk",
    "top_p": "topp",
    "seed": "seed",
    "stop": "stop",
}
SET_SWITCHES = {"verbose": True, "quiet": False}  # ollama's /set verbose and /set quiet


def set_arg(lookup: Lookup) -> Callable[[str], tuple[Command, Any]]:
    """The converter of /set [parameter] NAME VALUE, as ollama spells it: to the command it stands for
    (found through lookup) and its checked value."""

    def convert(text: str) -> tuple[Command, Any]:
        words = text.split(None, 1)
        if words and words[0].lower() == "parameter":
            words = words[1].split(None, 1) if len(words) > 1 else []
        if not words:
            raise ArgError("needs a setting and a value, e.g. /set parameter temperature 0.7")
        name, value = words[0].lower(), words[1].strip() if len(words) > 1 else ""
        if name in SET_SWITCHES and not value:
            return lookup("verbose"), SET_SWITCHES[name]
        target = lookup(OLLAMA_NAMES.get(name, name))
        if target is None or target.name not in OLLAMA_NAMES.values():
            # a typo, not another of ollama's settings: num_ctx is no misspelt num_predict
            meant = closest(name, [*OLLAMA_NAMES, *SET_SWITCHES], cutoff=0.8)
            hint = f"did you mean {meant}? " if meant else ""
            settable = f"{', '.join(OLLAMA_NAMES)} (or verbose, quiet)"
            raise ArgError(f"cannot set {quoted_typed(name)}; {hint}it sets {settable}")
        if not value:
            raise ArgError(f"needs a value for {name}")
        if target.name == "stop":
            value = _path_text(value)  # a quoted stop string: the quotes are not part of it
        try:
            return target, target.convert(value)
        except ArgError as e:
            raise ArgError(f"{name} {e}") from None

    return convert


def show_arg(text: str) -> str | None:
    text = _one_word(text).lower()
    if text not in ("", "info", "parameters"):
        raise ArgError(f"shows info or parameters (or both, without an argument), got {quoted_typed(text)}")
    return text or None


def tokenizer_arg(text: str) -> str:
    text = _one_word(text)
    if text not in TOKENIZER_NAMES:
        raise ArgError(f"expected one of {', '.join(TOKENIZER_NAMES)}, got {quoted_typed(text)}")
    return text


def train_arg(text: str) -> tuple[int, str | None]:
    if not text:
        raise ArgError("needs a number of steps")
    steps, _, corpus = text.partition(" ")
    return _within(whole(1, TRAIN_MAX))(steps), _path_text(corpus) or None


def _path_text(text: str) -> str:
    """A path as typed: surrounding quotes removed (paths may hold spaces)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if any(c in text for c in "\0\n\r"):
        raise ArgError(f"{quoted_typed(text)} is not a usable path")
    return text


def path_arg(text: str) -> str:
    path = _path_text(text)
    if not path:
        raise ArgError("needs a path")
    return path


def save_arg(text: str) -> tuple[str | None, bool]:
    """[PATH] [--force]: where to save, and whether a checkpoint already there may be replaced."""
    words = text.rsplit(" ", 1)
    force = words[-1] == "--force"
    path = _path_text(words[0] if force and len(words) == 2 else "" if force else text)
    return path or None, force


def chat_arg(text: str) -> tuple[str, str] | str:
    if text.lower() == "off":
        return OFF
    try:
        names = shlex.split(text)
    except ValueError:
        raise ArgError(f"cannot read the names in {quoted_typed(text)} (an unclosed quote?)") from None
    if len(names) != 2:
        raise ArgError(f"takes two speakers (quote names with spaces), got {len(names)}")
    for name in names:
        if not name.strip() or ":" in name or terminal_safe(name) != name or "\n" in name or "\t" in name:
            raise ArgError(f"a speaker is a name without ':' or control characters, got {quoted_typed(name)}")
    return names[0], names[1]


def on_off_arg(text: str) -> bool:
    text = _one_word(text).lower()
    if text not in ("on", "off"):
        raise ArgError(f"expected on or off, got {quoted_typed(text)}")
    return text == "on"


def no_arg(text: str) -> None:
    if text:
        raise ArgError(f"takes no arguments, got {quoted_typed(text)}")
    return None


def position_arg(text: str) -> int:
    """/why's N: a token of the last reply, 1 = the first, -1 = the last."""
    value = _number(text, whole=True)
    if value == 0:
        raise ArgError("counts from 1 (the first token) or from -1 (the last), got '0'")
    return value


layer_arg = _within(whole(0, LAYER_MAX))  # the model's own count is the handler's check


def text_arg(text: str) -> str:
    if not text:
        raise ArgError("needs some text to score")
    return text


def command_arg(lookup: Lookup) -> Callable[[str], Command]:
    """The converter of a command's name (/help CMD, the "/" optional) to the command, found through lookup."""

    def convert(text: str) -> Command:
        name = _one_word(text).lstrip("/").lower()
        command = lookup(name)
        if command is None:
            raise ArgError(f"there is no command {quoted_typed('/' + name)}")
        return command

    return convert
