"""`scratchgpt eval`: loss over the whole validation split, per token and per character."""

from __future__ import annotations

import torch

from ..data import load_tokens, resolve_corpus, split_tokens, val_char_count, val_windows
from ..errors import ScratchGPTError
from .checkpoint import resolve_checkpoint
from .device import autocast_dtype, pick_device
from .interop import open_model
from .quant import quantize_int8
from .trainer import evaluate_windows


def evaluate_checkpoint(
    checkpoint: str | None, *, corpus: str | None = None, batch_size: int = 16, amp: str = "fp32",
    device: str | None = None, lossy: bool = False, quantize: str | None = None, stride: int | None = None,
) -> dict:
    """Every val token (the last 10%) scored once, by block_size windows stride apart.

    The default stride is block_size: non-overlapping windows, as nanoGPT's estimate averages
    over every position of a window. A smaller stride scores each token with at least
    block_size - stride tokens of context (see val_windows), so it gives a lower loss.

    nats/char divides the same summed loss by the characters the predicted tokens spell, so
    char, word and BPE models compare on one scale. lossy reads a corpus that is not UTF-8 (bad
    bytes become U+FFFD), as `train --lossy` does. quantize="int8" measures the weights the
    engine decodes with under `--quantize int8`. checkpoint may also be a Hugging Face GPT-2 or a
    nanoGPT ckpt.pt (imported in memory; with no corpus recorded, pass one).
    """
    path = resolve_checkpoint(checkpoint)
    dev = pick_device(device)
    ckpt, imported = open_model(path, device=dev)
    source = corpus or (ckpt.corpus or {}).get("source") or (ckpt.corpus or {}).get("name")
    if not source:
        raise ScratchGPTError(f"{path} does not record its corpus; pass --corpus")
    data = resolve_corpus(source)
    _, val = split_tokens(load_tokens(data, ckpt.tokenizer, lossy=lossy))
    amp_dtype = {"bf16": torch.bfloat16, "fp32": None}.get(amp, autocast_dtype(dev))
    model = quantize_int8(ckpt.model) if quantize == "int8" else ckpt.model
    block_size = ckpt.config.block_size
    if stride is not None and not 1 <= stride <= block_size:
        raise ScratchGPTError(f"--stride {stride} is outside 1..{block_size}, this model's context; "
                              f"pass a stride of at most {block_size}")  # fmt: skip
    total, count = evaluate_windows(
        model, val_windows(val, block_size, batch_size, stride), amp_dtype=amp_dtype
    )
    chars = val_char_count(ckpt.tokenizer, val[1:])
    return {
        "checkpoint": str(path),
        "corpus": data.name,
        "tokenizer": ckpt.tokenizer.name,
        "vocab_size": ckpt.tokenizer.vocab_size,
        "arch": ckpt.config.arch,
        "params": ckpt.model.num_params(),
        "tokens": count,
        "chars": chars,
        "val_nats_per_token": total / count,
        "val_nats_per_char": total / chars,
        "quantize": quantize or "none",
        "stride": stride or block_size,
        "imported": imported,  # the line saying a Hugging Face or nanoGPT model was imported in memory, or None
    }
