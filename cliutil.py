"""What every entry point shares: one-line usage errors, and user errors turned into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import ScratchGPTError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (what is wrong, where to look) and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1)


def non_negative_int(text: str) -> int:
    return _int(text, 0)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


OUT_OF_MEMORY_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is an allocation failure: Python's MemoryError, or PyTorch's RuntimeError from its
    CPU allocator ("DefaultCPUAllocator: can't allocate memory"), CUDA or MPS (torch.OutOfMemoryError)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    first_line = str(error).partition("\n")[0].lower()
    return isinstance(error, RuntimeError) and any(marker in first_line for marker in OUT_OF_MEMORY_MARKERS)


def run_entry_point(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call main; a ScratchGPTError becomes `error: <message>` on stderr and exit 1, so does running
    out of memory, Ctrl-C exits 130, and only `--debug` lets a traceback through."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        return main(args)
    except ScratchGPTError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if debug or not is_out_of_memory(e):
            raise
        print("error: out of memory; reduce --batch-size, --block-size, --n-embd or --n-layer", file=sys.stderr)
        return EXIT_ERROR
