"""`scratchgpt-repl`'s one-shot mode: stdin piped (or -p/--prompt-file), the prompt continued once.

The prompt is read (a file, all of stdin, then -p) before the model loads; the continuation is
written to stdout, and nothing else is drawn: what the input lost goes to stderr, and stats with
--verbose only. app.py's `main` decides which mode runs; this module knows nothing of a terminal UI,
and imports no torch (the session does, after app.py has set OMP_WAIT_POLICY for a short job).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..cli.common import EXIT_OK
from ..core.errors import ScratchGPTError
from ..core.interrupt import InterruptFlag
from ..core.text import terminal_safe

if TYPE_CHECKING:
    from .session import Session


def _read_text(data: bytes) -> str:
    """Piped or file text: invalid UTF-8 replaced, NUL bytes dropped."""
    return data.decode("utf-8", errors="replace").replace("\0", "")


def read_prompt(args: argparse.Namespace, stdin_is_tty: bool) -> str:
    """The text to continue: the --prompt-file text, then piped stdin, then -p, joined."""
    parts = []
    if args.prompt_file:
        try:
            with open(os.path.expanduser(args.prompt_file), "rb") as f:
                parts.append(_read_text(f.read()))
        except OSError as e:
            raise ScratchGPTError(f"cannot read --prompt-file {args.prompt_file}: {e.strerror or e}") from None
    if not stdin_is_tty and sys.stdin is not None:
        parts.append(_read_text(sys.stdin.buffer.read()))
    if args.prompt:
        parts.append(args.prompt)
    return "".join(parts)


def run_once(session: Session, prompt: str, *, echo: bool = False, verbose: bool = False) -> int:
    """Continue prompt once: the continuation (after the prompt with echo) and a newline on stdout;
    on stderr, what the input lost (characters the vocabulary lacks) and, with verbose, the other
    notices and stats."""
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="replace")
    tty = out.isatty()
    clean = terminal_safe if tty else (lambda text: text)
    last = "\n"  # the last character on the terminal's line
    try:
        if echo:
            out.write(clean(prompt))
            last = prompt[-1:] or last
        reply = session.reply(prompt)
        for note in session.take_notices(unknown_only=True):  # what the input lost (é -> e), as the prompt says it
            print(f"note: {note}", file=sys.stderr)
        with InterruptFlag().active(raise_now=True) as ctrl_c:
            for piece in reply:
                ctrl_c.check()
                out.write(clean(piece))
                out.flush()
                last = piece[-1:] or last
        out.write("\n")  # as `scratchgpt sample` does: the shell prompt, or a stats line, starts a line of its own
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        return EXIT_OK
    except BaseException:  # failed mid-reply (a compile error, Ctrl-C): the error line starts a line of its own
        if tty and last != "\n":
            out.write("\n")
            out.flush()
        raise
    if verbose:
        from .session import stats_line

        for note in session.take_notices():
            print(f"note: {note}", file=sys.stderr)
        print(stats_line(session, reply, verbose=True), file=sys.stderr)
    return EXIT_OK
