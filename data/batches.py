"""Batches of (input, target) windows drawn from token ids, and the windows that cover a whole split."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..core.errors import ScratchGPTError
from ..tokenizers import Tokenizer
from .tokens import split_tokens

DECODE_CHUNK = 1 << 16  # tokens decoded at a time by val_char_count
IGNORE = -100  # a target val_windows has already scored: cross_entropy's default ignore_index


class Batches:
    """Random training and validation batches from one tokenized corpus.

    Offsets come from torch.randint with the generator passed to get(), so saving and restoring
    that generator's state resumes the exact sequence of batches.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        batch_size: int,
        device: str | torch.device = "cpu",
        *,
        name: str | None = None,
    ):
        if block_size < 1 or batch_size < 1:
            raise ScratchGPTError(
                f"block size and batch size must be at least 1 (got {block_size} and {batch_size}); raise them"
            )
        self.train, self.val = split_tokens(tokens)  # views: a memmap stays on disk
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        corpus = f"corpus {name!r}" if name else "the corpus"
        for split in ("train", "val"):
            n = len(self.split(split))
            if n < block_size + 1:
                raise ScratchGPTError(
                    f"{corpus} is too short: its {split} split has {n} tokens, a block needs "
                    f"block_size+1={block_size + 1}",
                    cli_hint="use a longer corpus or a smaller --block-size",
                    # /train's window is the loaded model's (or shorter for a slow one): only the text can change
                    repl_hint=f"/train needs a longer corpus (it reads {block_size}-token windows)",
                )
        self._window = np.arange(block_size + 1)  # (T+1,)

    def split(self, split: str) -> np.ndarray:
        """The tokens of "train" or "val"."""
        if split == "train":
            return self.train
        if split == "val":
            return self.val
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")

    def get(self, split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), each (batch_size, block_size) int64 on the device; y is x shifted one token left."""
        x, y, _ = self._draw(split, generator)
        return x.to(self.device), y.to(self.device)

    def get_at(self, split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, offsets): get()'s batch, drawn the same way, and where in the split each window
        starts (B,), so y[b, t] is token offsets[b] + t + 1 of the split."""
        return tuple(t.to(self.device) for t in self._draw(split, generator))

    def _draw(self, split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        data = self.split(split)
        offsets = torch.randint(len(data) - self.block_size, (self.batch_size,), generator=generator)  # (B,)
        windows = np.asarray(data[offsets.numpy()[:, None] + self._window], dtype=np.int64)  # (B, T+1)
        x = torch.from_numpy(np.ascontiguousarray(windows[:, :-1]))  # (B, T)
        y = torch.from_numpy(np.ascontiguousarray(windows[:, 1:]))  # (B, T)
        return x, y, offsets


def val_windows(
    tokens_val: np.ndarray, block_size: int, batch_size: int, stride: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """block_size windows of tokens_val, stride apart, as (x, y) batches on the CPU, int64.

    The window at s predicts tokens_val[s+1 : s+T+1] from the tokens before each. Every target
    is scored exactly once: a window's targets that an earlier window already scored are set to
    IGNORE (-100, cross_entropy's ignore_index). With stride = block_size (the default) the
    windows do not overlap and each token sees only its own window's context, T/2 on average;
    a smaller stride gives every token after the first window at least T - stride tokens of
    context (the sliding-window perplexity of Hugging Face's docs and llama.cpp's perplexity
    tool), at T/stride times the compute. Full windows come batch_size at a time as (B, T),
    then the last one, if shorter, as (1, r). Concatenated, the scored targets are exactly
    tokens_val[1:].
    """
    stride = block_size if stride is None else stride
    if block_size < 1 or batch_size < 1 or not 1 <= stride <= block_size:
        raise ValueError("block_size and batch_size must be positive, stride between 1 and block_size")
    n_targets = max(len(tokens_val) - 1, 0)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    scored = 0  # targets 0 .. scored-1 (tokens_val[1 : scored+1]) have been scored
    short = None  # the last window, when it is shorter than block_size
    for start in range(0, n_targets, stride):
        end = min(start + block_size, n_targets)
        x, y = tokens_val[start:end], tokens_val[start + 1 : end + 1].astype(np.int64)
        y[: scored - start] = IGNORE
        scored = end
        if end - start < block_size:
            short = x[None], y[None]
            break
        xs.append(x)
        ys.append(y)
        if len(xs) == batch_size:
            yield _tensor(np.stack(xs)), _tensor(np.stack(ys))
            xs, ys = [], []
        if end == n_targets:
            break
    if xs:
        yield _tensor(np.stack(xs)), _tensor(np.stack(ys))
    if short is not None:
        yield _tensor(short[0]), _tensor(short[1])


def val_char_count(tokenizer: Tokenizer, tokens_val: np.ndarray) -> int:
    """len(tokenizer.decode(tokens_val)), decoding a chunk at a time.

    Chunks are cut before a token whose bytes begin a character, so a BPE character split over
    several tokens is never split between chunks and the count equals one whole decode.
    """
    count, start = 0, 0
    while start < len(tokens_val):
        end = min(start + DECODE_CHUNK, len(tokens_val))
        for _ in range(4):  # a UTF-8 character spans at most 4 tokens (one byte each)
            if end >= len(tokens_val) or not _continues_character(tokenizer, int(tokens_val[end])):
                break
            end += 1
        count += len(tokenizer.decode(tokens_val[start:end].tolist()))
        start = end
    return count


def _continues_character(tokenizer: Tokenizer, token_id: int) -> bool:
    """Whether token_id's bytes start with a UTF-8 continuation byte (0b10xxxxxx)."""
    data = tokenizer.token_bytes(token_id)
    return bool(data) and data[0] & 0xC0 == 0x80


def _tensor(ids: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
