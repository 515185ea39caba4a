"""Tab completion for the slash commands: names from the command table, then each command's argument.

Free of prompt_toolkit so that tests can call `complete` directly; the REPL wraps it in a Completer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..tokenizers import TOKENIZER_NAMES
from .commands import BY_NAME, COMMANDS, lookup


@dataclass(frozen=True)
class Candidate:
    text: str  # what replaces the word being completed
    start: int  # where that word starts, counted back from the cursor (<= 0)
    meta: str = ""


def _path_candidates(word: str) -> list[Candidate]:
    expanded = os.path.expanduser(word)
    folder, prefix = os.path.split(expanded)
    try:
        entries = sorted(os.scandir(folder or "."), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        out.append(Candidate(entry.name + ("/" if is_dir else ""), -len(prefix)))
    return out


def complete(text: str) -> list[Candidate]:
    """What Tab offers for the text before the cursor."""
    if not text.startswith("/"):
        return []
    head, space, rest = text[1:].partition(" ")
    if not space:
        names = sorted(BY_NAME)
        return [Candidate("/" + n, -len(text), lookup(n).summary) for n in names if n.startswith(head.lower())]
    command = lookup(head)
    if command is None or command.complete is None:
        return []
    word = rest
    if command.complete == "path":
        return _path_candidates(word)
    if command.complete == "corpus":
        if command.name == "train":  # the corpus comes after N
            _, sep, word = rest.partition(" ")
            if not sep:
                return []
        from ..data import CORPORA

        names = [Candidate(n, -len(word), "registered corpus") for n in sorted(CORPORA) if n.startswith(word)]
        return names + _path_candidates(word)
    if command.complete == "tokenizer":
        choices = list(TOKENIZER_NAMES)
    elif command.complete == "command":
        choices = [c.name for c in COMMANDS]
    else:  # chat
        choices = ["off"]
    return [Candidate(c, -len(word)) for c in choices if c.startswith(word)]
