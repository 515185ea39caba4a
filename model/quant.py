"""Weight-only int8 for decoding: each output row of a Linear keeps its own fp scale.

Decoding one token is a matrix-vector product per layer, bound by reading the weights. On this
PyTorch the bf16 GEMV is slower than fp32 on CPU, while the int8 weight-only kernel
(`aten._weight_int8pack_mm`, bf16 activations) reads a quarter of fp32's bytes and is the fastest
(bench/sample_speed.py prints all three). Prefill and training keep the full-precision model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class Int8Linear(nn.Module):
    """y = (x @ q.T) * scale, q int8 (out, in), scale (out,): symmetric, one scale per row."""

    def __init__(self, linear: nn.Linear, act_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
        self.register_buffer("q", torch.round(w / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale.to(act_dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(act_dtype))
        self.act_dtype = act_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, shape[-1]).to(self.act_dtype), self.q, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], -1).to(x.dtype)


def int8_supported(device: torch.device) -> bool:
    return device.type == "cpu"


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of model, in eval mode, whose Linear layers are Int8Linear (the original is untouched)."""
    quantized = copy.deepcopy(model).eval()
    for parent in list(quantized.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child))
    return quantized
