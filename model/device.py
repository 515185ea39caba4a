"""Device choice (cuda > mps > cpu unless the user says) and whether bf16 autocast pays off there."""

from __future__ import annotations

import contextlib
import functools

import torch

from ..core.errors import ScratchGPTError


def pick_device(name: str | None = None) -> torch.device:
    """`None` or "auto" picks cuda, then mps, then cpu; anything else must be available."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ScratchGPTError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScratchGPTError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ScratchGPTError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matmuls (AVX-512 BF16 or AMX), where bf16 is ~4x fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training and evaluation on device, or None to stay in fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
