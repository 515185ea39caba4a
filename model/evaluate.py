"""`scratchgpt eval`: loss over the whole validation split, per token and per character."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from ..core.errors import ScratchGPTError
from ..data import IGNORE, load_tokens, resolve_corpus, split_tokens, val_char_count, val_windows
from .checkpoint import resolve_checkpoint
from .device import autocast_context, autocast_dtype, pick_device
from .interop import open_model
from .quant import quantize_int8


def evaluate_checkpoint(
    checkpoint: str | None,
    *,
    corpus: str | None = None,
    batch_size: int = 16,
    amp: str = "fp32",
    device: str | None = None,
    lossy: bool = False,
    quantize: str | None = None,
    stride: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict:
    """Every val token (the last 10%) scored once, by block_size windows stride apart.

    The default stride is block_size: non-overlapping windows, as nanoGPT's estimate averages
    over every position of a window. A smaller stride scores each token with at least
    block_size - stride tokens of context (see val_windows), so it gives a lower loss.

    nats/char divides the same summed loss by the characters the predicted tokens spell, so
    char, word and BPE models compare on one scale. lossy reads a corpus that is not UTF-8 (bad
    bytes become U+FFFD), as `train --lossy` does. quantize="int8" measures the weights the
    engine decodes with under `--quantize int8`. checkpoint may also be a Hugging Face GPT-2 or a
    nanoGPT ckpt.pt (imported in memory; with no corpus recorded, pass one). on_progress(scored,
    total) is called after each batch with the val tokens scored so far and how many there are;
    notify hears of a token cache rebuilt.
    """
    path = resolve_checkpoint(checkpoint)
    dev = pick_device(device)
    ckpt, imported = open_model(path, device=dev)
    source = corpus or (ckpt.corpus or {}).get("source") or (ckpt.corpus or {}).get("name")
    if not source:
        raise ScratchGPTError(f"{path} does not record its corpus", cli_hint="pass --corpus")
    data = resolve_corpus(source)
    _, val = split_tokens(load_tokens(data, ckpt.tokenizer, lossy=lossy, notify=notify))
    amp_dtype = {"bf16": torch.bfloat16, "fp32": None}.get(amp, autocast_dtype(dev))
    model = quantize_int8(ckpt.model) if quantize == "int8" else ckpt.model
    block_size = ckpt.config.block_size
    if stride is not None and not 1 <= stride <= block_size:
        raise ScratchGPTError(
            f"--stride {stride} is outside 1..{block_size}, this model's context; pass a stride of at most {block_size}"
        )
    windows = val_windows(val, block_size, batch_size, stride)
    if on_progress is not None:
        windows = _reporting(windows, max(len(val) - 1, 0), on_progress)
    total, count = evaluate_windows(model, windows, amp_dtype=amp_dtype)
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


def _reporting(
    windows: Iterable[tuple[torch.Tensor, torch.Tensor]], total: int, report: Callable[[int, int], None]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """windows as they are, calling report(scored, total) once each batch has been scored."""
    scored = 0
    for x, y in windows:
        yield x, y  # the next one is asked for once this one is scored
        scored += int((y >= 0).sum())  # targets an earlier window scored are IGNORE (-100)
        report(scored, total)


@torch.no_grad()
def evaluate_windows(
    model: torch.nn.Module,
    windows: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    amp_dtype: torch.dtype | None = None,
) -> tuple[float, int]:
    """Summed loss (nats) and number of predicted tokens over every window given.

    Targets equal to IGNORE (-100: scored by an earlier, overlapping window) count in neither.
    """
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for x, y in windows:
        x, y = x.to(device), y.to(device)
        with autocast_context(device, amp_dtype):
            logits, _ = model(x)
        total += torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.size(-1)), y.reshape(-1), reduction="sum", ignore_index=IGNORE
        ).item()
        count += int((y != IGNORE).sum())
    return total, count
