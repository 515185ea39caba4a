"""`scratchgpt-repl`: talk to a model in a terminal, or continue piped text once.

stdin a terminal (and no -p/--prompt-file): the interactive `Repl`, here. Otherwise piped.py's
one-shot mode: the prompt continued once on stdout, and the program exits. prompt_toolkit and rich
are imported on the interactive path only, so a piped prompt starts as fast as torch allows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..cli.common import EXIT_OK, Parser, run_entry_point
from ..cli.console import make_console
from ..cli.flags import add_engine_flags, add_sampling_flags, add_version_flag, sampling_settings
from ..core.errors import ScratchGPTError
from ..core.interrupt import InterruptFlag
from ..core.paths import state_dir
from ..core.text import counted, quoted_typed, terminal_line, terminal_safe
from . import piped
from .commands import Exit, execute, is_command, parse

if TYPE_CHECKING:
    from rich.console import Console

    from .session import Reply, Session

EMPTY_INTERRUPT_MESSAGE = "Use Ctrl-D or /bye to exit."
COMMAND_WORDS = {"help", "quit", "exit", "bye", "?"}  # typed without their /, they are text to the model
FRAME_SECONDS = 1 / 60  # streamed text is printed at most this often: rich per token would slow decoding


class ReplParser(Parser):
    """The command line's parser, with what the user typed made one printable line in its errors."""

    def error(self, message: str):  # type: ignore[override]
        super().error(terminal_line(message))


def build_parser() -> Parser:
    p = ReplParser(
        prog="scratchgpt-repl",
        description="Talk to a model: type text and it continues it. Piped stdin: continue it once and exit.",
    )
    a = p.add_argument
    p.add_checkpoint_arguments(
        "a .safetensors checkpoint, a Hugging Face GPT-2 folder or a nanoGPT ckpt.pt (default: the shipped model)"
    )
    a("-p", "--prompt", help="text to continue once, then exit (after piped stdin, if any)")
    add_sampling_flags(p)
    add_version_flag(p)
    a("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    add_engine_flags(p)
    a("--prompt-file", help="a UTF-8 file whose text to continue once, then exit")
    a("--echo", action="store_true", help="write the prompt before its continuation")
    a("--verbose", action="store_true", help="stats and notes on stderr (piped); more stats per reply (interactive)")
    a("--debug", action="store_true", help="show tracebacks")
    return p


def open_session(args: argparse.Namespace) -> tuple[Session, str | None]:
    """Load the checkpoint the flags name (once) and wrap it in a Session; also any note about it."""
    from ..model.checkpoint import check_tokenizer, resolve_checkpoint, shipped_checkpoint
    from ..model.device import pick_device
    from ..model.interop import open_model
    from .session import Session, Settings

    device = pick_device(args.device)
    path = args.checkpoint or (shipped_checkpoint(args.tokenizer) if args.tokenizer else None)
    ckpt, imported = open_model(resolve_checkpoint(path), device=device)  # imported: a line saying so, or None
    if args.checkpoint:  # the checkpoint named is the one used
        check_tokenizer(ckpt, args.tokenizer)
    settings = sampling_settings(args, Settings, verbose=args.verbose)
    engine_options = {"compile": args.compile, "quantize": args.quantize}
    session = Session(ckpt, settings=settings, engine_options=engine_options, threads=args.threads)
    note = imported
    if args.tokenizer and args.tokenizer != ckpt.tokenizer.name:  # none ships for it: a fresh model, as /tokenizer
        note = session.switch_tokenizer(args.tokenizer)
    return session, note


def os_error_message(e: OSError) -> str:
    """What went wrong with a file, in words: "File name too long: '9999…'"."""
    where = f": {quoted_typed(str(e.filename))}" if e.filename is not None else ""
    return f"{e.strerror or type(e).__name__}{where}; check the path"


def make_history():
    """The prompt's history: a file in the user state dir, or memory only with SCRATCHGPT_NOHISTORY=1."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    if os.environ.get("SCRATCHGPT_NOHISTORY", "") not in ("", "0"):
        return InMemoryHistory()
    path = state_dir() / "history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


class Repl:
    """The interactive loop: a prompt_toolkit prompt in, the session's replies out through rich.

    input/output go to prompt_toolkit (tests pass create_pipe_input() and DummyOutput()); console
    is where everything else is printed (tests pass one writing to a StringIO).
    """

    def __init__(
        self,
        session: Session,
        *,
        input=None,
        output=None,
        console: Console | None = None,
        history=None,
        debug: bool = False,
    ):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion

        from .completion import complete
        from .keys import TripleQuoteBlock, key_bindings, typeahead_kept

        class TableCompleter(Completer):
            def get_completions(self, document, complete_event):
                for c in complete(document.text_before_cursor):
                    yield Completion(c.text, start_position=c.start, display_meta=c.meta)

        self.session = session
        self.console = console or make_console()
        self.debug = debug
        self._hinted = False  # the hint about bare command words was given
        # keys typed during a reply or a command wait for the next prompt (only a real terminal needs holding)
        self._keys_held = typeahead_kept if input is None else contextlib.nullcontext
        self.block = TripleQuoteBlock()
        self.prompt_session = PromptSession(
            input=input,
            output=output,
            history=history if history is not None else make_history(),
            completer=TableCompleter(),
            key_bindings=key_bindings(),
            complete_while_typing=True,
            reserve_space_for_menu=0,  # no blank lines under the prompt; the menu opens above it if need be
        )

    # --- output ---------------------------------------------------------------------------------

    def say(self, text: str, *, style: str | None = None) -> None:
        # paths and names the user typed may hold escapes; on a terminal long lines wrap between words
        self.console.print(terminal_safe(text), style=style, soft_wrap=not self.console.is_terminal)

    def error(self, text: str) -> None:
        self.say(terminal_line(text), style="red")

    def notices(self) -> None:
        for note in self.session.take_notices():
            self.say(f"note: {note}", style="yellow")

    def banner(self, note: str | None = None) -> None:
        s = self.session
        name = s.ckpt.path.name if s.ckpt.path else "a fresh model"
        self.say(f"ScratchGPT · {name} · {s.describe_model()} · {s.device}", style="bold")
        if note:
            self.say(note)
        self.say(
            "Type text and the model continues it; Enter on an empty line continues further. "
            "/? lists the commands, Ctrl-D exits.",
            style="dim",
        )

    def _print_pieces(self, pieces: list) -> str:
        """Print and forget pieces of model text (str, or rich Text shaded under /probs); returns the last
        character printed."""
        if pieces and not isinstance(pieces[0], str):
            from rich.text import Text

            text = Text().join(pieces)  # already printable (inspect_view.shaded)
            last = text.plain[-1:]
        else:
            text = terminal_safe("".join(pieces))
            last = text[-1:]
        pieces.clear()
        if last:
            self.console.print(text, end="")
        return last

    def stream(self, reply: Reply) -> None:
        """Print a reply as it is sampled. Ctrl-C stops it; what was printed stays in the conversation."""
        self.notices()
        if reply.header:
            self.say(reply.header, style="bold")
        pending: list = []  # pieces not yet printed: one print per frame, not per token
        last, shown = "\n", 0.0  # the first piece shows at once
        shade = None
        if self.session.settings.probs:
            from ..cli.inspect_view import ShadedStream

            shade = ShadedStream(reply.completion).shade
        try:
            with InterruptFlag().active(raise_now=True) as ctrl_c, self._keys_held(), reply:
                for piece in reply:
                    ctrl_c.check()
                    pending.append(shade(piece) if shade else piece)
                    if time.perf_counter() - shown >= FRAME_SECONDS:
                        last = self._print_pieces(pending) or last
                        shown = time.perf_counter()
        except KeyboardInterrupt:
            pass  # the reply marks itself interrupted and commits what it produced
        last = self._print_pieces(pending) or last
        if last != "\n":
            self.console.print()
        from .session import stats_line

        self.say(stats_line(self.session, reply, verbose=self.session.settings.verbose), style="dim")
        self.notices()

    # --- input ----------------------------------------------------------------------------------

    def prompt_text(self) -> str:
        if self.block.open:
            return "... "
        if self.session.chat:
            return f"{self.session.chat[0]}: "
        return ">>> "

    def handle(self, text: str, *, literal: bool = False) -> None:
        """One finished input: a slash command, or text to continue (literal: never a command)."""
        try:
            if not literal and is_command(text):
                parsed = parse(text)
                if isinstance(parsed, str):
                    self.error(parsed)
                else:
                    with self._keys_held():  # /train and /load take seconds: typed keys wait, as in a reply
                        execute(self, parsed)
                return
            if text.lstrip().startswith("//"):
                text = text.replace("/", "", 1)
            self.stream(self.session.reply(text))
            self._hint_commands(text)
        except ScratchGPTError as e:
            self.error(f"error: {e.repl_message}")
        except KeyboardInterrupt:
            self.error("interrupted")
        except MemoryError:
            self.error("error: out of memory; try a smaller /len or a smaller model")
        except OSError as e:  # a file the user named: too long a name, no permission, disk full
            self.error(f"error: {os_error_message(e)}")
        except Exit:
            raise
        except Exception as e:  # a bug: say so in one line and keep the session (--debug: the traceback)
            if self.debug:
                self.console.print_exception()
            else:
                self.error(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")

    def _hint_commands(self, text: str) -> None:
        """Once a session, after a reply to a bare command word (quit, help, ...): commands start with /."""
        word = text.strip().lower()
        if word in COMMAND_WORDS and not self._hinted:
            self._hinted = True
            self.say(
                f"('{word}' went to the model as text; commands start with /: /help lists them, /bye or Ctrl-D leaves)",
                style="dim",
            )

    def warm_up(self) -> threading.Thread:
        """Import what the first /train needs in the background while the banner is read: the first
        use of a torch optimizer imports torch._dynamo, which takes seconds and would otherwise come
        before /train's first step. Started once per REPL; the thread is returned for tests and bench/."""
        thread = threading.Thread(
            target=importlib.import_module, args=("torch._dynamo",), daemon=True, name="scratchgpt-warm-up"
        )
        thread.start()
        return thread

    def run(self, *, note: str | None = None) -> int:
        """Read and handle inputs until Ctrl-D or /bye; returns the exit code."""
        self.banner(note)
        self.warm_up()
        while True:
            try:
                line = self.prompt_session.prompt(self.prompt_text())
            except EOFError:
                if self.settle_unsaved():
                    return EXIT_OK
                continue
            except KeyboardInterrupt:
                if self.block.open:
                    self.block.cancel()
                    self.say("multi-line input discarded", style="dim")
                else:
                    self.say(EMPTY_INTERRUPT_MESSAGE, style="dim")
                continue
            was_block = self.block.open or line.startswith('"""')
            text = self.block.feed(line)
            if text is None:
                continue
            try:
                self.handle(text, literal=was_block)
            except Exit:
                if self.settle_unsaved():
                    return EXIT_OK

    def settle_unsaved(self) -> bool:
        """Whether the weights in memory may go (the session end, or another model replace them): nothing
        unsaved, or /train's weights saved or discarded on asking.

        As an editor asks about an unsaved file: save [PATH], discard, or cancel (Enter, Ctrl-C) to keep
        them. Ctrl-D at the question counts as discard, so a second Ctrl-D always exits.
        """
        while steps := self.session.steps_trained:
            try:
                answer = self.prompt_session.prompt(
                    f"{counted(steps, 'step')} of /train {'is' if steps == 1 else 'are'} not saved: "
                    "save [PATH], discard or cancel? "
                )
            except EOFError:
                return True
            except KeyboardInterrupt:
                return False
            word, _, path = answer.strip().partition(" ")
            if word in ("s", "save"):
                self.handle(f"/save {path}".rstrip())  # the command itself: its errors, its line, then ask again
            elif word in ("d", "discard"):
                return True
            elif word in ("", "c", "cancel"):
                return False
            else:
                self.error(f"{quoted_typed(answer.strip())}: answer save [PATH], discard or cancel")
        return True


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    stdin_is_tty = sys.stdin is not None and sys.stdin.isatty()
    one_shot = not stdin_is_tty or args.prompt is not None or args.prompt_file is not None
    prompt = piped.read_prompt(args, stdin_is_tty) if one_shot else ""  # read before the model loads
    if one_shot:  # (before torch loads OpenMP) a short job whose threads sleep rather than spin when idle:
        # spinning threads on a machine busy with other work delay the first token (bench/threads.py)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    session, note = open_session(args)
    if one_shot:
        if note and args.verbose:
            print(f"note: {note}", file=sys.stderr)
        return piped.run_once(session, prompt, echo=args.echo, verbose=args.verbose)
    return Repl(session, debug=args.debug).run(note=note)


def _main_printable_errors(argv: Sequence[str] | None) -> int:
    """_main, its user errors made one printable line (they quote paths and names as typed), and
    an OSError on a file the user named (a name too long, no permission) one of them."""
    try:
        return _main(argv)
    except ScratchGPTError as e:
        raise ScratchGPTError(terminal_line(str(e))) from e
    except OSError as e:
        raise ScratchGPTError(os_error_message(e)) from e


def main(argv: Sequence[str] | None = None) -> int:
    return run_entry_point(_main_printable_errors, argv)


if __name__ == "__main__":
    raise SystemExit(main())
