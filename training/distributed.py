"""torchrun support: process-group set-up, DDP wrapping and gradient-accumulation bookkeeping.

A plain `scratchgpt train` is world size 1 and every helper here is then a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as td

from ..core.errors import ScratchGPTError
from ..core.interrupt import InterruptFlag

T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    index: int = 0  # global rank
    local: int = 0  # rank on this node (picks the GPU)
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0


def from_environment() -> Rank:
    """This process's rank as torchrun's environment gives it (Rank() outside torchrun); joins nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Rank()
    return Rank(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)


def setup(device_arg: str | None) -> Rank:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    rank = from_environment()
    if rank.world_size == 1:
        return rank
    use_cuda = torch.cuda.is_available() and (device_arg or "auto") in ("auto", "cuda")
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank


def current() -> Rank:
    if not td.is_initialized():
        return Rank()
    return Rank(td.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), td.get_world_size())


def device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and td.is_initialized():
        device = torch.device("cuda", current().local)
        torch.cuda.set_device(device)
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not td.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def local_grad_accum(grad_accum: int, rank: Rank) -> int:
    """Micro-batches per rank, so that the global batch (batch x grad_accum) is the same for any N."""
    if grad_accum % rank.world_size:
        raise ScratchGPTError(
            f"--grad-accum {grad_accum} is not divisible by {rank.world_size} processes; use a multiple "
            f"of {rank.world_size}, or leave it out for one micro-batch per process"
        )
    return grad_accum // rank.world_size


def own_micro_batches(next_batch: Callable[[], T], grad_accum: int, rank: Rank) -> Iterator[T]:
    """This rank's share of every step's micro-batches.

    Every rank draws the whole step (grad_accum micro-batches) from the same generator and keeps
    micro-batches rank, rank + N, ...: N processes train on exactly the batches one process with
    the same --grad-accum would, and the generator's state means the same on every rank, so a
    run resumes exactly with any number of processes.
    """
    while True:
        step = [next_batch() for _ in range(grad_accum)]  # all at once: a checkpoint after this step
        yield from step[rank.index :: rank.world_size]  # saves the state past all of its draws


def no_sync_context(model: torch.nn.Module, grad_accum: int):
    """For DDP: skip the gradient all-reduce on every micro-batch but the last of a step."""
    if not hasattr(model, "no_sync"):
        return None
    return lambda micro: model.no_sync() if micro < grad_accum - 1 else contextlib.nullcontext()


class AgreedInterrupt:
    """An InterruptFlag as every process sees it: requested once any of them was signalled.

    Each read is one all-reduce of a flag, so every rank stops after the same step and no rank is
    left waiting in a gradient all-reduce the others never join. train_loop reads it once a step;
    `stop_agreed` is what the last read found, for after the loop (no collective there).
    """

    def __init__(self, flag: InterruptFlag, device: torch.device):
        self.flag, self.device = flag, device
        self.stop_agreed = False

    @property
    def requested(self) -> bool:
        if not td.is_initialized():
            self.stop_agreed = self.flag.requested
            return self.stop_agreed
        asked = torch.tensor([int(self.flag.requested)], device=self.device)
        td.all_reduce(asked, op=td.ReduceOp.MAX)
        self.stop_agreed = bool(asked.item())
        return self.stop_agreed


def agreed_min(value: int, device: torch.device) -> int:
    """The least of every process's value (each must call it at the same point); value itself alone."""
    if not td.is_initialized():
        return value
    least = torch.tensor([value], device=device)
    td.all_reduce(least, op=td.ReduceOp.MIN)
    return int(least.item())


def teardown() -> None:
    if td.is_initialized():
        td.destroy_process_group()
