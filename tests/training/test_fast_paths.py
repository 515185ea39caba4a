"""The training step's fast paths leave the losses where the plain step puts them.

Each fast path computes the same thing in a cheaper way (narrower matmuls, skipped masked work),
so its losses are compared with the plain path's over a few steps of a tiny model, at a stated
tolerance, ten times the largest difference measured when they were written (1.6e-4 nats for
the blocked attention, 1.3e-4 for bf16 Newton–Schulz).
"""

from __future__ import annotations

import pytest
import torch

import scratchgpt.model.attention_kernels as kernels
from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import Schedule, make_optimizer, train_loop

LOSS_TOLERANCE = 2e-3  # nats per token, on every step's loss


def losses(*, compiled: bool, optimizer: str = "adamw", ns_dtype=None, steps: int = 8) -> list[float]:
    """A tiny char-sized GPT trained `steps` steps under bf16 autocast on learnable batches."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=17, block_size=96, n_layer=2, n_head=2, n_embd=32)  # two attention blocks
    model = build_model(config)
    opt = make_optimizer(model, lr=3e-3, kind=optimizer)
    if ns_dtype is not None:
        opt.ns_dtype = ns_dtype
    if compiled:
        compile_blocks(model)
    g = torch.Generator().manual_seed(0)

    def batch():
        x = torch.randint(0, 17, (4, 96), generator=g)
        return x, (x * 3 + 1) % 17  # the next token follows from this one: a loss that falls

    out = []
    train_loop(
        model,
        opt,
        batch,
        steps=range(steps),
        schedule=Schedule(3e-3, steps, warmup=1),
        amp_dtype=torch.bfloat16,
        on_step=lambda info: out.append(info.loss),
    )
    return out


@pytest.mark.parametrize("T", [1, 40, 64, 100, 130])
def test_blocked_causal_attention_is_causal_attention_forward_and_backward(T, monkeypatch):
    monkeypatch.setattr(kernels, "ATTENTION_BLOCK", 32)  # several blocks, the last one short
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 16, requires_grad=True) for _ in range(3))
    grad = torch.randn(2, 3, T, 16)
    y = kernels.blocked_causal_attention(q, k, v)
    dq, dk, dv = torch.autograd.grad(y, (q, k, v), grad)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    rq, rk, rv = torch.autograd.grad(ref, (q, k, v), grad)
    for got, want in ((y, ref), (dq, rq), (dk, rk), (dv, rv)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_the_compiled_step_attends_blocked_in_bf16_and_trains_as_the_eager_step(monkeypatch):
    torch._dynamo.reset()
    traced = []
    plain = kernels.blocked_causal_attention
    monkeypatch.setattr(kernels, "blocked_causal_attention", lambda *a: traced.append(1) or plain(*a))
    eager = losses(compiled=False)
    assert not traced  # eager, fp32 SDPA
    compiled = losses(compiled=True)
    assert traced  # the compiled blocks traced the blocked path
    assert eager[-1] < eager[0] - 0.5  # it learns, so agreeing is not agreeing on noise
    assert compiled == pytest.approx(eager, abs=LOSS_TOLERANCE)


def test_muon_with_bf16_newton_schulz_trains_as_with_fp32():
    fp32 = losses(compiled=False, optimizer="muon", ns_dtype=torch.float32, steps=12)
    bf16 = losses(compiled=False, optimizer="muon", ns_dtype=torch.bfloat16, steps=12)
    assert fp32[-1] < fp32[0] - 0.5
    assert bf16 == pytest.approx(fp32, abs=LOSS_TOLERANCE)
