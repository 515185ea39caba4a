"""`scratchgpt`: train, sample and eval from the command line. Thin: parse flags, call the package."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cliutil import EXIT_USAGE, Parser, add_threads_flag, closest, run_entry_point, use_threads, whole
from .errors import ScratchGPTError
from .model.sampling_settings import LENGTH, SEED, TEMPERATURE, TOP_K, TOP_P, SamplingSettings, SettingError, stop_text
from .tokenizers import TOKENIZER_NAMES

if TYPE_CHECKING:
    from rich.console import Console

COMMANDS = ("train", "sample", "eval", "score", "inspect", "plot", "export", "import", "serve")
SOURCE_HELP = "a .safetensors checkpoint, a Hugging Face GPT-2 folder or a nanoGPT ckpt.pt"


def stop_flag(text: str) -> str:
    r"""--stop: the text with its escapes (\n, \t, \\) turned into the characters they stand for."""
    try:
        return stop_text(text)
    except SettingError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """The flags of SamplingSettings, and --tokenizer and --version: `scratchgpt sample` and
    `scratchgpt-repl` spell them alike, with the bounds and defaults of model/sampling_settings.py."""
    d = SamplingSettings
    a = p.add_argument
    a("--tokenizer", choices=TOKENIZER_NAMES,
      help="vocabulary: the shipped model for it, or (with a checkpoint) a check that the checkpoint has it")
    a("-n", "--len", type=LENGTH, default=d.max_new_tokens, help=f"new tokens to generate (default {d.max_new_tokens})")
    a("--temp", type=TEMPERATURE, default=d.temperature, help=f"temperature; 0 = greedy (default {d.temperature:g})")
    a("--top-k", type=TOP_K, default=None, help="sample among the k likeliest tokens (default: all)")
    a("--top-p", type=TOP_P, default=None, help="nucleus sampling: the smallest set with mass p (default: off)")
    a("--seed", type=SEED, default=None, help="random seed (default: a fresh one)")
    a("--stop", type=stop_flag, action="append", default=[],
      help=r"stop at this text (escapes like \n\n work); repeatable")  # fmt: skip
    a("--version", action="version", version=f"scratchgpt {__version__}")


def sampling_settings(args: argparse.Namespace, cls: type[SamplingSettings] = SamplingSettings, **extra):
    """The settings add_sampling_flags' flags ask for (a fresh seed unless --seed), as cls."""
    seed = {} if args.seed is None else {"seed": args.seed}
    return cls(temperature=args.temp, max_new_tokens=args.len, top_k=args.top_k, top_p=args.top_p,
               stop=list(args.stop), **seed, **extra)  # fmt: skip


def sample_parser() -> Parser:
    p = Parser(prog="scratchgpt sample", description="Continue a prompt with a trained model, streaming.")
    a = p.add_argument
    p.add_checkpoint_arguments(f"{SOURCE_HELP} (default: the shipped char model)")
    a("-p", "--prompt", default="", help="text to continue (default: a new line)")
    add_sampling_flags(p)
    a("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_flags(p)
    a("--logprobs", type=whole(0, 20), metavar="K",
      help="each token's own log-probability and its K likeliest alternatives (0 to 20): shaded text, or in --json")
    a("--json", action="store_true", help='print one JSON object, {"text", "logprobs": {"content": [...]}}, '
      "in OpenAI's field names, instead of streaming")  # fmt: skip
    a("--debug", action="store_true", help="show tracebacks")
    return p


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """How the engine decodes: shared by `scratchgpt sample` and `scratchgpt-repl`."""
    p.add_argument("--compile", action="store_true",
                   help="compile the one-token decode step (~30 s the first time, then faster tokens)")  # fmt: skip
    p.add_argument("--quantize", choices=("none", "int8"), default="none",
                   help="int8 weights and a bf16 KV cache for decoding (CPU; see eval --quantize)")  # fmt: skip
    add_threads_flag(p, decoding=True)


def eval_parser() -> Parser:
    p = Parser(prog="scratchgpt eval", description="Loss over the whole validation split (last 10%).")
    a = p.add_argument
    p.add_checkpoint_arguments(f"{SOURCE_HELP} (default: the shipped char model)")
    a("--corpus", help="evaluate on this corpus instead of the one the checkpoint was trained on")
    a("--batch-size", type=whole(1, 65_536), default=16, help="windows per forward pass")
    a("--amp", default="fp32", choices=("auto", "bf16", "fp32"), help="precision (default fp32: exact)")
    a("--device", default="auto", help="auto, cpu, cuda or mps")
    a("--lossy", action="store_true", help="read a corpus that is not valid UTF-8, replacing bad bytes")
    a("--quantize", choices=("none", "int8"), default="none", help="evaluate int8 weights, as the engine uses them")
    a("--stride", type=whole(1, 1 << 20),
      help="windows this many tokens apart, each scoring only tokens not yet scored, so every token has at "
           "least block_size - stride of context (default: block_size, non-overlapping windows)")  # fmt: skip
    a("--json", action="store_true", help="print one JSON object instead of a table")
    add_threads_flag(p, decoding=False)
    a("--debug", action="store_true", help="show tracebacks")
    return p


def plot_parser() -> Parser:
    p = Parser(prog="scratchgpt plot", description="Draw a run's train and val loss into a PNG.")
    p.add_argument("run", help="a run's checkpoint path (--out), its .metrics.jsonl, or a folder holding one run")
    p.add_argument("--png", help="output file (default: next to the metrics file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def export_parser() -> Parser:
    p = Parser(
        prog="scratchgpt export",
        description="Re-save a checkpoint with smaller weights (how checkpoints/ ships); given several, "
        "save the average of their weights. --format hf writes a Hugging Face GPT-2 folder instead.",
    )
    p.add_argument("checkpoint", nargs="+", help="the .safetensors checkpoint(s) to read; several are averaged")
    p.add_argument("out", help="the .safetensors file to write (atomically); with --format hf, a new folder")
    p.add_argument("--format", choices=("scratchgpt", "hf"), default="scratchgpt",
                   help="scratchgpt (default), or hf: config.json, model.safetensors and GPT-2's tokenizer files, "
                        "which transformers' GPT2LMHeadModel loads (GPT-2-layout models, full GPT-2 vocabulary)")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None,
                   help="weight type (default bf16; fp32 with --format hf)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace a checkpoint already at OUT (never another file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def import_parser() -> Parser:
    p = Parser(prog="scratchgpt import",
               description="Turn a Hugging Face GPT-2 or nanoGPT model into a ScratchGPT checkpoint.")  # fmt: skip
    p.add_argument("source", help="a Hugging Face GPT-2 folder (or its model.safetensors beside config.json), "
                                  "or a nanoGPT ckpt.pt (or its out_dir)")  # fmt: skip
    p.add_argument("out", help="the .safetensors checkpoint to write (atomically)")
    p.add_argument("--meta", help="nanoGPT: the meta.pkl of its char vocabulary (default: beside ckpt.pt, "
                                  "or data/<dataset>/meta.pkl; none found: GPT-2 BPE)")  # fmt: skip
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="fp32", help="weight type (default fp32)")
    p.add_argument("--force", action="store_true", help="replace a checkpoint already at OUT (never another file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def parsers() -> dict[str, Parser]:
    """Every command's parser, by command: what `COMMAND --help` shows and what the flag tests walk."""
    from .cli_inspect import inspect_parser, score_parser
    from .serve.cli import serve_parser
    from .train import build_parser

    return {
        "train": build_parser(),
        "sample": sample_parser(),
        "eval": eval_parser(),
        "score": score_parser(),
        "inspect": inspect_parser(),
        "plot": plot_parser(),
        "export": export_parser(),
        "import": import_parser(),
        "serve": serve_parser(),
    }


def open_source(checkpoint: str | None, vocabulary: str | None, device: str):
    """The Checkpoint a sampling or looking command works with: checkpoint (or a Hugging Face / nanoGPT
    model, imported in memory and said so on stderr), else the shipped model of vocabulary (char)."""
    from .model.checkpoint import check_tokenizer, shipped_checkpoint
    from .model.device import pick_device
    from .model.interop import open_model

    path = checkpoint or shipped_checkpoint(vocabulary or "char")
    if path is None:
        raise ScratchGPTError(f"no {vocabulary} model ships with ScratchGPT; train one "
                              f"(scratchgpt train --tokenizer {vocabulary}) and pass its checkpoint")  # fmt: skip
    ckpt, imported = open_model(Path(path).expanduser(), device=pick_device(device))
    if imported:
        print(imported, file=sys.stderr)
    check_tokenizer(ckpt, vocabulary)
    return ckpt


def cmd_sample(argv: Sequence[str]) -> int:
    args = sample_parser().parse_args(argv)  # before importing torch: a bad flag is told at once
    import torch

    from .interrupt import InterruptFlag
    from .model.engine import Completion, Engine
    from .model.threads import choose_decode_threads

    ckpt = open_source(args.checkpoint, args.tokenizer, args.device)
    settings = sampling_settings(args)
    context = ckpt.tokenizer.encode(args.prompt or "\n") or [0]
    engine = Engine(ckpt.model, compile=args.compile, quantize=args.quantize)
    choose_decode_threads(engine, args.threads)
    generator = torch.Generator(engine.device).manual_seed(settings.seed)
    completion = Completion(engine, ckpt.tokenizer, context, settings, generator=generator, logprobs=args.logprobs)
    if args.json or args.logprobs is not None:
        from .cli_inspect import sample_looking

        return sample_looking(completion, args.prompt, as_json=args.json)
    out = sys.stdout
    out.write(args.prompt)
    with InterruptFlag().active(raise_now=True) as ctrl_c:
        for piece in completion:
            ctrl_c.check()
            out.write(piece)
            out.flush()
    out.write("\n")
    return 0


def cmd_eval(argv: Sequence[str]) -> int:
    args = eval_parser().parse_args(argv)
    use_threads(args.threads)
    from .model.evaluate import evaluate_checkpoint
    from .progress import EvalProgress

    with EvalProgress() as progress:
        result = evaluate_checkpoint(
            args.checkpoint, corpus=args.corpus, batch_size=args.batch_size, amp=args.amp, device=args.device,
            lossy=args.lossy, quantize=args.quantize, stride=args.stride, on_progress=progress.update,
            notify=lambda text: print(text, file=sys.stderr),
        )  # fmt: skip
    if result["imported"]:
        print(result["imported"], file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console

    print_eval(result, Console(highlight=False), stride=bool(args.stride))
    return 0


def print_eval(result: dict, console: Console, *, stride: bool = False) -> None:
    """eval's result as a line naming what was measured (whole, never wrapped to the table's width) and a table."""
    from rich.table import Table

    windows = f", windows {result['stride']} apart" if stride else ""
    console.print(f"{result['checkpoint']} on {result['corpus']} (val split{windows})", soft_wrap=True)
    table = Table()
    for col in ("tokenizer", "params", "tokens", "nats/token", "nats/char"):
        table.add_column(col, justify="right")
    table.add_row(
        result["tokenizer"], f"{result['params']:,}", f"{result['tokens']:,}",
        f"{result['val_nats_per_token']:.4f}", f"{result['val_nats_per_char']:.4f}",
    )  # fmt: skip
    console.print(table)


def cmd_plot(argv: Sequence[str]) -> int:
    args = plot_parser().parse_args(argv)
    from .plot import plot_run

    print(plot_run(args.run, png=args.png))
    return 0


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def cmd_export(argv: Sequence[str]) -> int:
    args = export_parser().parse_args(argv)
    import torch

    from .model.checkpoint import average_checkpoints, check_replaceable, drop_estimates_of_averages, save_checkpoint

    ckpt = average_checkpoints(args.checkpoint)
    args.dtype = args.dtype or ("fp32" if args.format == "hf" else "bf16")
    dtype = getattr(torch, DTYPES[args.dtype])
    if args.format == "hf":
        from .model.interop import export_hf

        out = export_hf(ckpt, args.out, dtype=dtype)
        print(f"{out}/: a Hugging Face GPT-2 of {ckpt.model.num_params():,} parameters as {args.dtype}; "
              f"transformers' GPT2LMHeadModel.from_pretrained({str(out)!r}) loads it")  # fmt: skip
        return 0
    check_replaceable(args.out, force=args.force, how="add --force to replace it")
    sources = [str(p) for p in args.checkpoint]
    train = {**(ckpt.train or {}), "exported_from": sources[0] if len(sources) == 1 else sources, "dtype": args.dtype}
    train = drop_estimates_of_averages(train)
    out = save_checkpoint(args.out, ckpt.model, ckpt.tokenizer, corpus=ckpt.corpus, train=train, dtype=dtype)
    averaged = f"the average of {len(sources)} checkpoints, " if len(sources) > 1 else ""
    print(f"{out}: {averaged}{ckpt.model.num_params():,} parameters as {args.dtype}, {out.stat().st_size / 1e6:.1f} MB")
    return 0


def cmd_import(argv: Sequence[str]) -> int:
    args = import_parser().parse_args(argv)
    import torch

    from .model.checkpoint import check_replaceable, save_checkpoint
    from .model.interop import import_model

    check_replaceable(args.out, force=args.force, how="add --force to replace it")
    ckpt = import_model(args.source, meta=args.meta)
    dtype = getattr(torch, DTYPES[args.dtype])
    out = save_checkpoint(args.out, ckpt.model, ckpt.tokenizer, train=ckpt.train, dtype=dtype)
    info = ckpt.train["imported"]
    print(f"{out}: {info['format']} from {info['from']}, {ckpt.model.num_params():,} parameters as {args.dtype}, "
          f"{info['vocabulary']}; scratchgpt-repl {out} talks to it")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"scratchgpt {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(
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
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command == "train":
        from .train import main as train_main

        return train_main(rest)
    from .cli_inspect import cmd_inspect, cmd_score

    handlers = {"sample": cmd_sample, "eval": cmd_eval, "score": cmd_score, "inspect": cmd_inspect, "plot": cmd_plot,
                "export": cmd_export, "import": cmd_import}  # fmt: skip
    if command == "serve":
        from .serve.cli import cmd_serve

        return cmd_serve(rest)
    if command not in handlers:
        meant = closest(command, COMMANDS)
        print(f"scratchgpt: error: unknown command '{command}'; " + (f"did you mean '{meant}'? " if meant else "")
              + f"use one of {', '.join(COMMANDS)}", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    return handlers[command](rest)


def entry() -> int:
    return run_entry_point(main)


if __name__ == "__main__":
    raise SystemExit(entry())
