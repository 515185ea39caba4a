"""The types the slash commands share: a `Command` (one row of the table), the `Host` its handler
talks through, the `Lookup` that finds a command by name, and `Exit`.

A leaf: arguments.py (the converters), commands.py (the table and its handlers) and
inspect_commands.py (the inspection handlers) all import it, and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from .session import Reply, Session


class Exit(Exception):
    """Raised by /bye: the REPL ends with exit code 0."""


class Host(Protocol):
    """What a handler needs from the front end."""

    session: Session
    console: Console

    def say(self, text: str, *, style: str | None = None) -> None: ...

    def stream(self, reply: Reply) -> None: ...

    def settle_unsaved(self) -> bool:
        """Whether the weights /train changed may go: none unsaved, or the user saved or discarded them."""
        ...


@dataclass(frozen=True, kw_only=True)
class Command:
    """One slash command: its names, its argument form and help, the converter of its argument and its handler."""

    name: str
    usage: str  # the argument form, "" when it takes none
    summary: str  # one line for /help
    details: str  # /help CMD
    convert: Callable[[str], Any]  # the stripped argument text -> the handler's value, or ArgError
    handler: Callable[[Host, Any], None]
    aliases: tuple[str, ...] = ()  # other names it answers to
    complete: str | None = None  # what Tab offers for the argument: "tokenizer", "path", "corpus", "command", "chat"

    @property
    def signature(self) -> str:
        return f"/{self.name} {self.usage}".rstrip()


Lookup = Callable[[str], "Command | None"]  # a command by name or alias, None when there is none
