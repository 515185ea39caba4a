"""Flags several commands spell alike (sampling, the engine, threads), and the model a sampling
or looking command opens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..core.bounds import whole
from ..core.cores import cpu_threads
from ..core.errors import ScratchGPTError
from ..model.sampling_settings import LENGTH, SEED, TEMPERATURE, TOP_K, TOP_P, SamplingSettings, SettingError, stop_text
from ..tokenizers import TOKENIZER_NAMES

SOURCE_HELP = "a .safetensors checkpoint, a Hugging Face GPT-2 folder or a nanoGPT ckpt.pt"
# alternatives per token: model/logprobs.py's MAX_TOP_LOGPROBS, OpenAI's bound (kept here so --help imports no torch)
TOP_LOGPROBS = whole(0, 20)


def stop_flag(text: str) -> str:
    r"""--stop: the text with its escapes (\n, \t, \\) turned into the characters they stand for."""
    try:
        return stop_text(text)
    except SettingError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """The flags of SamplingSettings, and --tokenizer: `scratchgpt sample` and
    `scratchgpt-repl` spell them alike, with the bounds and defaults of model/sampling_settings.py."""
    d = SamplingSettings
    a = p.add_argument
    a(
        "--tokenizer",
        choices=TOKENIZER_NAMES,
        help="vocabulary: the shipped model for it, or (with a checkpoint) a check that the checkpoint has it",
    )
    a("-n", "--len", type=LENGTH, default=d.max_new_tokens, help=f"new tokens to generate (default {d.max_new_tokens})")
    a("--temp", type=TEMPERATURE, default=d.temperature, help=f"temperature; 0 = greedy (default {d.temperature:g})")
    a("--top-k", type=TOP_K, default=None, help="sample among the k likeliest tokens (default: all)")
    a("--top-p", type=TOP_P, default=None, help="nucleus sampling: the smallest set with mass p (default: off)")
    a("--seed", type=SEED, default=None, help="random seed (default: a fresh one)")
    a(
        "--stop",
        type=stop_flag,
        action="append",
        default=[],
        help=r"stop at this text (escapes like \n\n work); repeatable",
    )


def add_version_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", action="version", version=f"scratchgpt {__version__}")


def sampling_settings(args: argparse.Namespace, cls: type[SamplingSettings] = SamplingSettings, **extra):
    """The settings add_sampling_flags' flags ask for (a fresh seed unless --seed), as cls."""
    seed = {} if args.seed is None else {"seed": args.seed}
    return cls(
        temperature=args.temp,
        max_new_tokens=args.len,
        top_k=args.top_k,
        top_p=args.top_p,
        stop=list(args.stop),
        **seed,
        **extra,
    )


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """How the engine decodes: shared by `scratchgpt sample` and `scratchgpt-repl`."""
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the one-token decode step (~30 s the first time, then faster tokens)",
    )
    p.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8 weights and a bf16 KV cache for decoding (CPU; see eval --quantize)",
    )
    add_threads_flag(p, decoding=True)


def add_threads_flag(p: argparse.ArgumentParser, *, decoding: bool) -> None:
    """--threads N, for every command that runs the model; decoding ones measure when it is not given."""
    default = "measured at load, 1 or one per core (see bench/threads.py)" if decoding else "one per core"
    p.add_argument(
        "--threads", type=whole(1, cpu_threads()), default=None, help=f"CPU threads torch uses (default: {default})"
    )


def open_source(checkpoint: str | None, vocabulary: str | None, device: str):
    """The Checkpoint a sampling or looking command works with: checkpoint (or a Hugging Face / nanoGPT
    model, imported in memory and said so on stderr), else the shipped model of vocabulary (char)."""
    from ..model.checkpoint import check_tokenizer, shipped_checkpoint
    from ..model.device import pick_device
    from ..model.interop import open_model

    path = checkpoint or shipped_checkpoint(vocabulary or "char")
    if path is None:
        raise ScratchGPTError(
            f"no {vocabulary} model ships with ScratchGPT; train one "
            f"(scratchgpt train --tokenizer {vocabulary}) and pass its checkpoint"
        )
    ckpt, imported = open_model(Path(path).expanduser(), device=pick_device(device))
    if imported:
        print(imported, file=sys.stderr)
    check_tokenizer(ckpt, vocabulary)
    return ckpt
