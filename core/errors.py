"""The one exception type for mistakes a user can make (bad file, bad flag, bad argument), and how
to recognise the two failures of the machine a user can act on: memory, and torch.compile."""

from __future__ import annotations

import errno


class ScratchGPTError(Exception):
    """A user-facing error: its message is one line saying what is wrong and what to do.

    Entry points print it as `error: <message>` on stderr and exit non-zero; tracebacks are
    for bugs (or `--debug`). What to do differs by front end when the fix is a flag: such an error
    is raised with the problem and a hint for each, ScratchGPTError(problem, cli_hint="pass --corpus
    PATH", repl_hint="/corpus PATH"); str(e) is the command line's line and e.repl_message the
    REPL's, so no front end rewrites another's words.
    """

    def __init__(self, message: str, *, cli_hint: str = "", repl_hint: str | None = None):
        super().__init__(f"{message}; {cli_hint}" if cli_hint else message)
        self.problem = message  # what is wrong, in words every front end shares
        self.cli_hint = cli_hint  # what to do, in the command line's flags ("" when the message says it all)
        self.repl_hint = cli_hint if repl_hint is None else repl_hint  # the same at the REPL's prompt

    @property
    def repl_message(self) -> str:
        """The line the REPL prints: the problem and what to do there."""
        if not self.cli_hint and not self.repl_hint:
            return str(self)  # one message for all; str(), not problem, so that a subclass's own __str__ counts
        return f"{self.problem}; {self.repl_hint}" if self.repl_hint else self.problem


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
