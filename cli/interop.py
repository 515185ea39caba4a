"""`scratchgpt export` and `scratchgpt import`: checkpoints to smaller or averaged ones, to and from
Hugging Face GPT-2 and nanoGPT."""

from __future__ import annotations

from collections.abc import Sequence

from .common import Parser


def export_parser() -> Parser:
    p = Parser(
        prog="scratchgpt export",
        description="Re-save a checkpoint with smaller weights (how checkpoints/ ships); given several, "
        "save the average of their weights. --format hf writes a Hugging Face GPT-2 folder instead.",
    )
    p.add_argument("checkpoint", nargs="+", help="the .safetensors checkpoint(s) to read; several are averaged")
    p.add_argument("out", help="the .safetensors file to write (atomically); with --format hf, a new folder")
    p.add_argument(
        "--format",
        choices=("scratchgpt", "hf"),
        default="scratchgpt",
        help="scratchgpt (default), or hf: config.json, model.safetensors and GPT-2's tokenizer files, "
        "which transformers' GPT2LMHeadModel loads (GPT-2-layout models, full GPT-2 vocabulary)",
    )
    p.add_argument(
        "--dtype",
        choices=("bf16", "fp16", "fp32"),
        default=None,
        help="weight type (default bf16; fp32 with --format hf)",
    )
    p.add_argument("--force", action="store_true", help="replace a checkpoint already at OUT (never another file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def cmd_export(argv: Sequence[str]) -> int:
    args = export_parser().parse_args(argv)
    import torch

    from ..model.checkpoint import average_checkpoints, check_replaceable, drop_estimates_of_averages, save_checkpoint

    ckpt = average_checkpoints(args.checkpoint)
    args.dtype = args.dtype or ("fp32" if args.format == "hf" else "bf16")
    dtype = getattr(torch, DTYPES[args.dtype])
    if args.format == "hf":
        from ..model.interop import export_hf

        out = export_hf(ckpt, args.out, dtype=dtype)
        print(
            f"{out}/: a Hugging Face GPT-2 of {ckpt.model.num_params():,} parameters as {args.dtype}; "
            f"transformers' GPT2LMHeadModel.from_pretrained({str(out)!r}) loads it"
        )
        return 0
    check_replaceable(args.out, force=args.force, how="add --force to replace it")
    sources = [str(p) for p in args.checkpoint]
    exported_from = sources[0] if len(sources) == 1 else sources
    provenance = {**(ckpt.provenance or {}), "exported_from": exported_from, "dtype": args.dtype}
    provenance = drop_estimates_of_averages(provenance)
    out = save_checkpoint(args.out, ckpt.model, ckpt.tokenizer, corpus=ckpt.corpus, provenance=provenance, dtype=dtype)
    averaged = f"the average of {len(sources)} checkpoints, " if len(sources) > 1 else ""
    print(f"{out}: {averaged}{ckpt.model.num_params():,} parameters as {args.dtype}, {out.stat().st_size / 1e6:.1f} MB")
    return 0


def import_parser() -> Parser:
    p = Parser(
        prog="scratchgpt import", description="Turn a Hugging Face GPT-2 or nanoGPT model into a ScratchGPT checkpoint."
    )
    p.add_argument(
        "source",
        help="a Hugging Face GPT-2 folder (or its model.safetensors beside config.json), "
        "or a nanoGPT ckpt.pt (or its out_dir)",
    )
    p.add_argument("out", help="the .safetensors checkpoint to write (atomically)")
    p.add_argument(
        "--meta",
        help="nanoGPT: the meta.pkl of its char vocabulary (default: beside ckpt.pt, "
        "or data/<dataset>/meta.pkl; none found: GPT-2 BPE)",
    )
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="fp32", help="weight type (default fp32)")
    p.add_argument("--force", action="store_true", help="replace a checkpoint already at OUT (never another file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_import(argv: Sequence[str]) -> int:
    args = import_parser().parse_args(argv)
    import torch

    from ..model.checkpoint import check_replaceable, save_checkpoint
    from ..model.interop import import_model

    check_replaceable(args.out, force=args.force, how="add --force to replace it")
    ckpt = import_model(args.source, meta=args.meta)
    dtype = getattr(torch, DTYPES[args.dtype])
    out = save_checkpoint(args.out, ckpt.model, ckpt.tokenizer, provenance=ckpt.provenance, dtype=dtype)
    info = ckpt.provenance["imported"]
    print(
        f"{out}: {info['format']} from {info['from']}, {ckpt.model.num_params():,} parameters as {args.dtype}, "
        f"{info['vocabulary']}; scratchgpt-repl {out} talks to it"
    )
    return 0
