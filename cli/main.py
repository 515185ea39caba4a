"""`scratchgpt`: train, sample, eval, score, inspect, plot, export, import and serve from the command
line. Thin: each command is a module of this folder that parses its flags and calls the package."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..core.text import closest
from .common import EXIT_USAGE, Parser, run_entry_point

# each command, the module of this folder that holds it, and its parser and handler there
COMMANDS = {
    "train": ("train", "build_parser", "main"),
    "sample": ("sample", "sample_parser", "cmd_sample"),
    "eval": ("eval", "eval_parser", "cmd_eval"),
    "score": ("look", "score_parser", "cmd_score"),
    "inspect": ("look", "inspect_parser", "cmd_inspect"),
    "plot": ("plot", "plot_parser", "cmd_plot"),
    "export": ("interop", "export_parser", "cmd_export"),
    "import": ("interop", "import_parser", "cmd_import"),
    "serve": ("serve", "serve_parser", "cmd_serve"),
}
USAGE = (
    "usage: scratchgpt {train,sample,eval,score,inspect,plot,export,import,serve} [flags]\n\n"
    "  train   train a GPT or the bigram baseline on a corpus\n"
    "  sample  continue a prompt with a checkpoint, streaming to stdout\n"
    "  eval    loss over the whole validation split, in nats per token and per char\n"
    "  score   how surprised a model is by your text, token by token\n"
    "  inspect where a prompt's last position looks (attention) and what each layer predicts\n"
    "  plot    draw a run's loss curves into a PNG\n"
    "  export  re-save a checkpoint with bf16 (or fp16) weights, average several, or write a HF GPT-2\n"
    "  import  a Hugging Face GPT-2 or nanoGPT ckpt.pt as a ScratchGPT checkpoint\n"
    "  serve   serve models over HTTP to OpenAI and ollama clients\n\n"
    "`scratchgpt COMMAND --help` lists a command's flags; `scratchgpt --version` prints the version;\n"
    "`scratchgpt-repl` talks to a model."
)


def _part(command: str, which: int) -> Callable:
    """A command's parser (which=1) or handler (which=2), importing only that command's module."""
    module = importlib.import_module(f".{COMMANDS[command][0]}", __package__)
    return getattr(module, COMMANDS[command][which])


def parsers() -> dict[str, Parser]:
    """Every command's parser, by command: what `COMMAND --help` shows and what the flag tests walk."""
    return {command: _part(command, 1)() for command in COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"scratchgpt {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        meant = closest(command, list(COMMANDS))
        print(f"scratchgpt: error: unknown command '{command}'; " + (f"did you mean '{meant}'? " if meant else "")
              + f"use one of {', '.join(COMMANDS)}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    return _part(command, 2)(rest)


def entry() -> int:
    return run_entry_point(main)


if __name__ == "__main__":
    raise SystemExit(entry())
