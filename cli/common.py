"""What every entry point shares: one-line usage errors, and user errors turned into exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence

from ..core.bounds import Number
from ..core.errors import ScratchGPTError, is_compile_failure, is_out_of_memory
from ..core.text import closest, escape_controls

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + 2  # what a shell reports for a process SIGINT (Ctrl-C) ended
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process SIGPIPE ended


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (what is wrong, where to look, the flag it may have meant)
    and exits 2. A flag must be spelt whole: a prefix (--max-iter for --max-iters) would hide a typo."""

    BARE_CHECKPOINT = "checkpoint_path"  # dest of the positional spelling of --checkpoint

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        message = re.sub(r"^argument -\w/(--\S+):", r"argument \1:", message)  # "-n/--len" named as "--len"
        missing = re.fullmatch(r"argument (\S+): expected one argument", message)
        number = self._numeric_flags().get(missing.group(1)) if missing else None
        if number is not None:
            message += f" ({number.describe()})"
        if message.startswith("unrecognized arguments: "):
            typed = [w.split("=", 1)[0] for w in message.split()[2:] if w.startswith("--")]
            meant = [(w, m) for w in typed if (m := closest(w, list(self._option_string_actions)))]
            if len(meant) == 1:
                message += f"; did you mean {meant[0][1]}?"
            message += "".join(f"; {w}: did you mean {m}?" for w, m in meant if len(meant) > 1)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {escape_controls(message)} (see {self.prog} --help)\n")

    def _numeric_flags(self) -> dict[str, Number]:
        return {s: a.type for a in self._actions if isinstance(a.type, Number) for s in a.option_strings}

    def add_checkpoint_arguments(self, help: str) -> None:
        """--checkpoint PATH, or PATH alone as the one positional (as export and plot take theirs)."""
        self.add_argument(self.BARE_CHECKPOINT, nargs="?", metavar="CHECKPOINT", help=f"{help}; or as --checkpoint")
        self.add_argument("--checkpoint", help=help)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(self._negative_values_joined(args), namespace)
        if self.BARE_CHECKPOINT in vars(parsed):  # the two spellings of one argument become args.checkpoint
            path = vars(parsed).pop(self.BARE_CHECKPOINT)
            if path and parsed.checkpoint and path != parsed.checkpoint:
                self.error("two checkpoints given, one as CHECKPOINT and another as --checkpoint; give one")
            parsed.checkpoint = parsed.checkpoint or path
        return parsed, extras

    def _negative_values_joined(self, args: list[str]) -> list[str]:
        """`--lr -1e-3` as `--lr=-1e-3`, so the value reaches its type and the error says what is wrong.

        argparse takes any argument that starts with "-" and is not a plain negative integer for
        a flag, and would only say "expected one argument".
        """
        numeric = self._numeric_flags()
        joined, i = [], 0
        while i < len(args):
            if args[i] == "--":
                return joined + args[i:]
            if args[i] in numeric and i + 1 < len(args) and args[i + 1].startswith("-") and _is_float(args[i + 1]):
                joined.append(f"{args[i]}={args[i + 1]}")
                i += 2
            else:
                joined.append(args[i])
                i += 1
        return joined


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_entry_point(
    main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *, quiet: bool = False
) -> int:
    """Call main; a ScratchGPTError becomes `error: <message>` on stderr and exit 1, so do running
    out of memory and a failed torch.compile, Ctrl-C exits 130, and only `--debug` lets a traceback
    through. quiet (a torchrun rank but the first) exits 1 on a user error without printing it."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        return main(args)
    except ScratchGPTError as e:
        if debug:
            raise
        if not quiet:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (`| head -1`): stop quietly, as a tool killed by SIGPIPE does
        with contextlib.suppress(OSError):  # and let the interpreter's last flush write nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as e:
        if debug:
            raise
        if is_out_of_memory(e):
            print("error: out of memory; reduce --batch-size, --block-size, --n-embd or --n-layer", file=sys.stderr)
        elif is_compile_failure(e):
            reason = next(iter(str(e).strip().splitlines()), type(e).__name__)
            print(f"error: torch.compile failed ({reason}); drop --compile, or see --debug", file=sys.stderr)
        else:
            raise
        return EXIT_ERROR
