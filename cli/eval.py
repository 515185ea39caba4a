"""`scratchgpt eval`: a model's loss over the whole validation split, as a table or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.bounds import whole
from ..core.cores import use_threads
from .common import Parser
from .console import make_console
from .flags import SOURCE_HELP, add_threads_flag

if TYPE_CHECKING:
    from rich.console import Console


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
    a(
        "--stride",
        type=whole(1, 1 << 20),
        help="windows this many tokens apart, each scoring only tokens not yet scored, so every token has at "
        "least block_size - stride of context (default: block_size, non-overlapping windows)",
    )
    a("--json", action="store_true", help="print one JSON object instead of a table")
    add_threads_flag(p, decoding=False)
    a("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_eval(argv: Sequence[str]) -> int:
    args = eval_parser().parse_args(argv)
    use_threads(args.threads)
    from ..model.evaluate import evaluate_checkpoint
    from .progress import EvalProgress

    with EvalProgress() as progress:
        result = evaluate_checkpoint(
            args.checkpoint,
            corpus=args.corpus,
            batch_size=args.batch_size,
            amp=args.amp,
            device=args.device,
            lossy=args.lossy,
            quantize=args.quantize,
            stride=args.stride,
            on_progress=progress.update,
            notify=lambda text: print(text, file=sys.stderr),
        )
    if result["imported"]:
        print(result["imported"], file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    print_eval(result, make_console(soft_wrap=False), stride=bool(args.stride))
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
        result["tokenizer"],
        f"{result['params']:,}",
        f"{result['tokens']:,}",
        f"{result['val_nats_per_token']:.4f}",
        f"{result['val_nats_per_char']:.4f}",
    )
    console.print(table)
