"""`scratchgpt train` (and `torchrun -m scratchgpt.train`): flags to a TrainConfig, then training.

The flags are TrainConfig's fields (training/config.py); `--config RECIPE.toml` sets any of them
from a file, and flags typed beside it win. `--resume` continues the run saved at `--out` with its
saved config, changed only by the flags typed now. The pipeline is training/run.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.bounds import Number
from ..core.interrupt import InterruptFlag
from ..training import distributed as dist
from ..training.config import (
    FRESH_N_HEAD,
    PROCESS_SETTINGS,
    TrainConfig,
    checked,
    default_of,
    flag_name,
    heads_for,
    load_recipe,
)
from ..training.run import RunSummary, train
from ..training.run_files import RunPaths, saved_config
from ..training.start import check_inputs
from .common import Parser, run_entry_point
from .progress import RunProgress


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field. Defaults are SUPPRESSed, so parsing yields only the flags
    typed; the defaults come from the dataclass (and `--help` shows them)."""
    for f in fields(TrainConfig):
        meta = f.metadata
        default = default_of(f)
        help_text = meta["help"]
        if meta["show_default"] and default is not None and not isinstance(default, bool):
            help_text += f" (default {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(default, bool):  # --x and --no-x, so a flag can undo a recipe's setting either way
            kwargs["help"] += f" (default: {'on' if default else 'off'})"
            parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if meta["repeat"]:
            kwargs.update(action="append", metavar="CHECKPOINT")
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["type"] is not None:
            kwargs["type"] = meta["type"]
            if isinstance(meta["type"], Number):
                kwargs["metavar"] = "N" if meta["type"].whole else "X"
        if f.name == "init_from":
            kwargs["metavar"] = "CHECKPOINT"
        parser.add_argument(flag_name(f.name), **kwargs)


@dataclass(frozen=True)
class TrainCommand:
    """What one `scratchgpt train` command line asks for."""

    config: TrainConfig
    resume: bool = False
    overwrite: bool = False


def train_parser() -> Parser:
    p = Parser(
        prog="scratchgpt train",
        description="Train a GPT (or the bigram baseline) on a text corpus. Settings come from the defaults "
        "shown, then a recipe file (--config), then the flags typed.",
    )
    p.add_argument("--config", metavar="RECIPE.toml", help="read settings from this TOML file (see recipes/)")
    add_config_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved at --out, with its saved settings (flags typed now win)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already saved at --out (without it, training there is refused)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def parse_args(argv: Sequence[str] | None = None) -> TrainCommand:
    """The command line as a TrainCommand: defaults < recipe < flags (with --resume: saved run < flags)."""
    given = vars(train_parser().parse_args(argv))
    recipe, resume, overwrite = given.pop("config", None), given.pop("resume", False), given.pop("overwrite", False)
    given.pop("debug", None)
    if "teacher" in given:
        given["teacher"] = tuple(given["teacher"])
    settings = load_recipe(recipe) if recipe else {}
    if resume:
        out = given.get("out", settings.get("out", TrainConfig.out))
        saved = {k: v for k, v in saved_config(out).to_dict().items() if k not in PROCESS_SETTINGS}
        settings = {**saved, **settings}
    settings.update(checked(given, where="the command line"))
    return TrainCommand(TrainConfig(**settings), resume=resume, overwrite=overwrite)


def heads_notice(command: TrainCommand) -> str | None:
    """One line when a new model's head count was chosen to divide --n-embd, so the shape is never a surprise."""
    config = command.config
    if command.resume or config.init_from or config.n_head is not None:
        return None
    heads = heads_for(config.n_embd, None)
    if heads == FRESH_N_HEAD:
        return None
    return (
        f"--n-embd {config.n_embd}: {heads} heads of {config.n_embd // heads} ({FRESH_N_HEAD} do not divide it; "
        "--n-head sets them)"
    )


def run(command: TrainCommand, *, interrupt: InterruptFlag | None = None) -> RunSummary:
    """Train as command says, progress on the terminal; raising interrupt stops it between two steps, as Ctrl-C does."""
    notice = heads_notice(command)
    if notice and dist.from_environment().is_main:
        print(notice, flush=True)
    check_inputs(command.config, resume=command.resume)  # the corpus given, before what --out holds
    display = RunProgress(every=command.config.log_interval)
    made = missing_folders(RunPaths.from_out(command.config.out).best.parent)
    try:
        return train(
            command.config, resume=command.resume, overwrite=command.overwrite, display=display, interrupt=interrupt
        )
    except BaseException:
        remove_if_empty(made)  # a run that failed to start leaves no empty --out folder behind
        raise


def missing_folders(folder: Path) -> list[Path]:
    """folder and those of its parents that do not exist yet, innermost first: what a run would create."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of folders (innermost first) that is still empty; one that holds a file stays, as do its parents."""
    for folder in folders:
        try:
            folder.rmdir()  # only an empty folder: never anything the run or the user put there
        except OSError:
            return


def cmd_train(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv)).exit_status


def cli(argv: Sequence[str] | None = None) -> int:
    """The entry point. Under torchrun only rank 0 prints a user error: every rank meets the same one."""
    return run_entry_point(cmd_train, argv, quiet=not dist.from_environment().is_main)


if __name__ == "__main__":
    raise SystemExit(cli())
