"""Key bindings of the prompt, each a small function, and the `\"\"\"` multi-line block.

Bracketed paste needs nothing here: prompt_toolkit inserts a pasted block, newlines and all.
Up-arrow history and Ctrl-R search are prompt_toolkit's own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.key_binding.bindings.mouse import load_mouse_bindings
from prompt_toolkit.keys import Keys

BLOCK_FENCE = '"""'


@Condition
def _buffer_empty() -> bool:
    from prompt_toolkit.application import get_app

    return not get_app().current_buffer.text


def newline(event: KeyPressEvent) -> None:
    """Esc-Enter (Alt-Enter): a new line inside the input instead of sending it."""
    event.current_buffer.insert_text("\n")


def interrupt_empty(event: KeyPressEvent) -> None:
    """Ctrl-C on an empty prompt: the REPL reminds how to leave (it catches the KeyboardInterrupt)."""
    event.app.exit(exception=KeyboardInterrupt())


def discard_line(event: KeyPressEvent) -> None:
    """Ctrl-C with text typed: throw the text away and stay at the prompt, as a shell does."""
    event.current_buffer.reset()


def exit_on_empty(event: KeyPressEvent) -> None:
    """Ctrl-D on an empty prompt: leave (the REPL catches the EOFError and exits 0)."""
    event.app.exit(exception=EOFError())


def _mouse_handler():
    (binding,) = [b for b in load_mouse_bindings().bindings if b.keys == (Keys.Vt100MouseEvent,)]
    return binding.handler


_prompt_toolkit_mouse = _mouse_handler()


def mouse_event(event: KeyPressEvent):
    """A mouse report, as prompt_toolkit handles it; but a typed or pasted escape sequence that only
    looks like one (ESC [ 3 1 m) is ignored instead of stopping the prompt with a traceback."""
    try:
        return _prompt_toolkit_mouse(event)
    except ValueError:
        return None


def key_bindings() -> KeyBindings:
    kb = KeyBindings()
    kb.add(Keys.Vt100MouseEvent)(mouse_event)
    kb.add("escape", "enter")(newline)
    kb.add("c-c", filter=_buffer_empty)(interrupt_empty)
    kb.add("c-c", filter=~_buffer_empty)(discard_line)
    kb.add("c-d", filter=_buffer_empty)(exit_on_empty)
    return kb


@contextlib.contextmanager
def typeahead_kept() -> Iterator[None]:
    """While a reply streams: keys typed are not echoed into it but wait, unread, for the next
    prompt, which then starts with them (Enter included), as a shell keeps type-ahead.

    Between prompts the terminal is in its cooked mode, which would echo the keys into the reply
    and hold them in a line the prompt never sees whole. Here echo and line editing are off;
    signals stay on, so Ctrl-C still stops the reply (without flushing the keys typed before it).
    Nothing happens when stdin is not a terminal.
    """
    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if sys.stdin.isatty() else None
    except (ImportError, AttributeError, OSError, ValueError):  # Windows, or no real stdin (tests)
        saved = None
    if saved is None:
        yield
        return
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)  # lflag
    quiet[3] |= termios.NOFLSH  # Ctrl-C stops the reply but keeps what was typed ahead
    termios.tcsetattr(fd, termios.TCSANOW, quiet)  # TCSANOW, not TCSAFLUSH: keys already typed stay
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


class TripleQuoteBlock:
    """Multi-line input as ollama takes it: a line starting with \"\"\" opens a block, the first line
    ending with \"\"\" closes it, and the block (without the fences) is one prompt.

    `feed(line)` returns the finished text, or None while the block is still open.
    """

    def __init__(self) -> None:
        self.lines: list[str] | None = None  # None: no block open

    @property
    def open(self) -> bool:
        return self.lines is not None

    def feed(self, line: str) -> str | None:
        if self.lines is None:
            if not line.startswith(BLOCK_FENCE):
                return line
            line = line[len(BLOCK_FENCE) :]
            self.lines = []
            if not line:
                return None
        if line.endswith(BLOCK_FENCE):
            self.lines.append(line[: -len(BLOCK_FENCE)])
            text, self.lines = "\n".join(self.lines), None
            return text
        self.lines.append(line)
        return None

    def cancel(self) -> None:
        self.lines = None
