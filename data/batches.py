"""Batches of (input, target) windows drawn from token ids, and the windows that cover a whole split."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..errors import ScratchGPTError
from ..tokenizers import Tokenizer
from .tokens import split_tokens

DECODE_CHUNK = 1 << 16  # tokens decoded at a time by val_char_count


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
                    f"block_size+1={block_size + 1}; use a longer corpus or a smaller --block-size"
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
        data = self.split(split)
        offsets = torch.randint(len(data) - self.block_size, (self.batch_size,), generator=generator)  # (B,)
        windows = np.asarray(data[offsets.numpy()[:, None] + self._window], dtype=np.int64)  # (B, T+1)
        x = torch.from_numpy(np.ascontiguousarray(windows[:, :-1]))  # (B, T)
        y = torch.from_numpy(np.ascontiguousarray(windows[:, 1:]))  # (B, T)
        return x.to(self.device), y.to(self.device)


def val_windows(
    tokens_val: np.ndarray, block_size: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every non-overlapping block_size window of tokens_val as (x, y) batches on the CPU, int64.

    Window i predicts tokens_val[i*T + 1 : (i+1)*T + 1] from the T tokens before each; the windows
    are yielded batch_size at a time as (B, T), then the remainder shorter than T, if any, as one
    (1, r) window. So the targets, concatenated, are exactly tokens_val[1:]: every token but the
    first is predicted once (each window from its own context only).
    """
    if block_size < 1 or batch_size < 1:
        raise ValueError("block_size and batch_size must be positive")
    n_targets = max(len(tokens_val) - 1, 0)
    full, rest = divmod(n_targets, block_size)
    for first in range(0, full, batch_size):
        last = min(first + batch_size, full)
        x = tokens_val[first * block_size : last * block_size].reshape(-1, block_size)  # (B, T)
        y = tokens_val[first * block_size + 1 : last * block_size + 1].reshape(-1, block_size)  # (B, T)
        yield _tensor(x), _tensor(y)
    if rest:
        start = full * block_size
        yield _tensor(tokens_val[start : start + rest][None]), _tensor(tokens_val[start + 1 : start + rest + 1][None])


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
