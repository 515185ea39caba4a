"""`scratchgpt`: train, sample, eval, score, inspect, plot, export, import and serve from the command
line. Thin: each command is a module of this folder that parses its flags and calls the package."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .. import __version__
from ..core.text import closest, quoted_arg
from .common import EXIT_USAGE, Parser, run_entry_point


class Command(NamedTuple):
    """A command: the module of this folder that holds it, the names of its parser and handler there,
    and what it does in a line (the usage text)."""

    module: str
    parser: str
    handler: str
    summary: str

    def load(self, name: str) -> Callable:
        """Its parser or handler, by attribute name, importing only this command's module."""
        return getattr(importlib.import_module(f".{self.module}", __package__), name)


COMMANDS = {
    "train": Command("train", "train_parser", "cmd_train", "train a GPT or the bigram baseline on a corpus"),
    "sample": Command(
        "sample", "sample_parser", "cmd_sample", "continue a prompt with a checkpoint, streaming to stdout"
    ),
    "eval": Command(
        "eval", "eval_parser", "cmd_eval", "loss over the whole validation split, in nats per token and per char"
    ),
    "score": Command("look", "score_parser", "cmd_score", "how surprised a model is by your text, token by token"),
    "inspect": Command(
        "look",
        "inspect_parser",
        "cmd_inspect",
        "where a prompt's last position looks (attention) and what each layer predicts",
    ),
    "plot": Command("plot", "plot_parser", "cmd_plot", "draw a run's loss curves into a PNG"),
    "ladder": Command(
        "ladder", "ladder_parser", "cmd_ladder", "train the rungs from bigram to GPT and measure what each part buys"
    ),
    "export": Command(
        "interop",
        "export_parser",
        "cmd_export",
        "re-save a checkpoint with bf16 (or fp16) weights, average several, or write a HF GPT-2",
    ),
    "import": Command(
        "interop", "import_parser", "cmd_import", "a Hugging Face GPT-2 or nanoGPT ckpt.pt as a ScratchGPT checkpoint"
    ),
    "tokenizer": Command(
        "tokenizer",
        "tokenizer_parser",
        "cmd_tokenizer",
        "learn a BPE vocabulary from your text, or see how a vocabulary splits one",
    ),
    "serve": Command("serve", "serve_parser", "cmd_serve", "serve models over HTTP to OpenAI and ollama clients"),
}
USAGE = (
    f"usage: scratchgpt {{{','.join(COMMANDS)}}} [flags]\n\n"
    + "".join(f"  {name:<9} {command.summary}\n" for name, command in COMMANDS.items())
    + "\n`scratchgpt COMMAND --help` lists a command's flags; `scratchgpt --version` prints the version;\n"
    "`scratchgpt-repl` talks to a model."
)


def parsers() -> dict[str, Parser]:
    """Every command's parser, by command: what `COMMAND --help` shows and what the flag tests walk."""
    return {name: command.load(command.parser)() for name, command in COMMANDS.items()}


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
        hint = f"did you mean '{meant}'? " if meant else ""
        print(
            f"scratchgpt: error: unknown command {quoted_arg(command)}; {hint}use one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return COMMANDS[command].load(COMMANDS[command].handler)(rest)


def entry() -> int:
    return run_entry_point(main)


if __name__ == "__main__":
    raise SystemExit(entry())
