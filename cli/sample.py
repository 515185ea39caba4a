"""`scratchgpt sample`: continue a prompt with a model, streaming to stdout."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..core.interrupt import InterruptFlag
from .common import Parser
from .flags import (
    SOURCE_HELP,
    TOP_LOGPROBS,
    add_engine_flags,
    add_sampling_flags,
    add_version_flag,
    open_source,
    sampling_settings,
)


def sample_parser() -> Parser:
    p = Parser(prog="scratchgpt sample", description="Continue a prompt with a trained model, streaming.")
    a = p.add_argument
    p.add_checkpoint_arguments(f"{SOURCE_HELP} (default: the shipped char model)")
    a("-p", "--prompt", default="", help="text to continue (default: a new line)")
    add_sampling_flags(p)
    add_version_flag(p)
    a("--device", default="auto", help="auto, cpu, cuda or mps")
    add_engine_flags(p)
    a(
        "--logprobs",
        type=TOP_LOGPROBS,
        metavar="K",
        help="each token's own log-probability and its K likeliest "
        f"alternatives ({TOP_LOGPROBS.span()}): shaded text, or in --json",
    )
    a(
        "--json",
        action="store_true",
        help='print one JSON object, {"text", "logprobs": {"content": [...]}}, '
        "in OpenAI's field names, instead of streaming",
    )
    a("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_sample(argv: Sequence[str]) -> int:
    args = sample_parser().parse_args(argv)  # before importing torch: a bad flag is told at once
    import torch

    from ..model.engine import Completion, Engine
    from ..model.threads import choose_decode_threads

    ckpt = open_source(args.checkpoint, args.tokenizer, args.device)
    settings = sampling_settings(args)
    context = ckpt.tokenizer.encode(args.prompt or "\n") or [0]
    engine = Engine(ckpt.model, compile=args.compile, quantize=args.quantize)
    choose_decode_threads(engine, args.threads)
    generator = torch.Generator(engine.device).manual_seed(settings.seed)
    completion = Completion(engine, ckpt.tokenizer, context, settings, generator=generator, logprobs=args.logprobs)
    if args.json or args.logprobs is not None:
        from .look import sample_looking

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
