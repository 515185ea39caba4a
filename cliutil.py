"""What every entry point shares: one-line usage errors, and user errors turned into exit codes."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ScratchGPTError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process SIGPIPE ended
SHOWN_MAX = 40  # characters of a bad value quoted back in an error
SEED_MAX = 2**32 - 1  # of training and of sampling


def closest(word: str, choices: Sequence[str], *, cutoff: float = 0.6) -> str | None:
    """The choice a misspelt word most likely meant (`sampel` -> `sample`), or None when none is close."""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


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


def escape_controls(text: str) -> str:
    """text with every non-printable character (newline, escape, ...) written as its escape: one safe line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(text: str) -> str:
    """A user's value as it goes into an error message: quoted, one printable line, not too long."""
    text = escape_controls(text)
    return "'" + (text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 1] + "…") + "'"


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
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {shown(text)}")
        return value

    def _parse(self, text: str) -> int | float | None:
        if not text.isascii() or "_" in text:
            return None
        try:
            value = int(text) if self.whole else float(text)
        except ValueError:  # not a number, or an int of more than 4300 digits
            return None
        return value if math.isfinite(value) else None

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


def cpu_threads() -> int:
    """The cores this process may run on: the most threads --threads takes."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def add_threads_flag(p: argparse.ArgumentParser, *, decoding: bool) -> None:
    """--threads N, for every command that runs the model; decoding ones measure when it is not given."""
    default = "measured at load, 1 or one per core (see bench/threads.py)" if decoding else "one per core"
    p.add_argument("--threads", type=whole(1, cpu_threads()), default=None,
                   help=f"CPU threads torch uses (default: {default})")  # fmt: skip


def use_threads(count: int | None) -> None:
    """What --threads does for train and eval: torch's thread count, when given (else torch's default)."""
    if count is not None:
        import torch

        torch.set_num_threads(count)


OUT_OF_MEMORY_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is an allocation failure: Python's MemoryError, an OSError with ENOMEM (mmap of
    the token cache, a new thread), or PyTorch's RuntimeError from its CPU allocator
    ("DefaultCPUAllocator: can't allocate memory"), CUDA or MPS (torch.OutOfMemoryError)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    if isinstance(error, OSError):
        return error.errno == errno.ENOMEM
    first_line = str(error).partition("\n")[0].lower()
    return isinstance(error, RuntimeError) and any(marker in first_line for marker in OUT_OF_MEMORY_MARKERS)


def is_compile_failure(error: BaseException) -> bool:
    """An error raised by torch.compile's machinery (Dynamo, Inductor): no C++ compiler, say.
    Judged by the module of its type, so that recognising one does not import torch._dynamo."""
    return type(error).__module__.startswith(("torch._dynamo", "torch._inductor"))


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
        return 130
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
