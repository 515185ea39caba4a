"""Muon for the hidden matrices, AdamW for the rest, as one torch optimizer.

Muon keeps SGD momentum per matrix, but steps along the nearest semi-orthogonal matrix to it
(every singular value pushed to about 1), found by a few Newton–Schulz iterations. Embeddings,
the LM head and the norm gains are not hidden matrices and keep AdamW.

Each Muon update is rescaled by 0.2·√max(rows, cols), which gives it about the RMS of an AdamW
update, so one `--lr` and one `--weight-decay` serve both kinds of parameter. The fused q/k/v
projection is orthogonalised as three separate square matrices (`split`), one per projection.

Everything lives in one optimizer so the trainer, `--resume` and the REPL's /train see the usual
interface: param_groups, state_dict, step, zero_grad.
"""

from __future__ import annotations

import torch

# the quintic iteration's coefficients: steep near 0 so small singular values grow fast
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """About U·Vᵀ for g = U·S·Vᵀ (…, m, n): the singular values land near 1 (within ~0.7–1.2).

    dtype is what the iterations run in. bf16 is enough, as the iteration only has to land the
    singular values in that band, and where bf16 matmuls are native it is the fast choice: in fp32
    Newton–Schulz would be a large share of a small model's training step (`python bench/muon_speed.py`
    prints both).
    """
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the wide side: X·Xᵀ is then the smaller square
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm ≤ Frobenius norm ≤ 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(g.dtype)


def newton_schulz_dtype(device: torch.device) -> torch.dtype:
    """bf16 where this device multiplies bf16 natively (CUDA with bf16, a CPU with AVX-512 BF16 or
    AMX), else fp32: emulated bf16 matmuls would be slower than fp32 ones."""
    from ..model.device import cpu_has_fast_bf16

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else torch.float32


class Muon(torch.optim.Optimizer):
    """Groups with `muon=True` get orthogonalised Nesterov momentum; the others get AdamW.

    Group keys: lr, weight_decay (decoupled, both kinds), and for Muon groups momentum and split
    (how many stacked matrices each parameter holds along its first dimension); for AdamW groups
    betas and eps. ns_dtype: what Newton–Schulz runs in (default: `newton_schulz_dtype` of the
    parameters' device).
    """

    def __init__(
        self,
        groups,
        *,
        lr: float,
        momentum: float = 0.95,
        betas=(0.9, 0.99),
        eps: float = 1e-8,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
    ):
        defaults = dict(lr=lr, weight_decay=0.0, muon=False, momentum=momentum, split=1, betas=betas, eps=eps)
        self.ns_steps, self.ns_dtype = ns_steps, ns_dtype
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("Muon does not take a closure")
        pending = []  # (param, group, its momentum update as (split, m, n))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["muon"]:
                    pending.append((p, group, self._momentum_update(p, group)))
                else:
                    self._adamw_update(p, group)

        # every layer's matrices of one shape go through Newton–Schulz as one stack: a few
        # batched matmuls instead of one small product per matrix and iteration
        # (a tall matrix joins the wide ones of its transposed shape: it is iterated wide anyway)
        def wide(mats):
            return mats.mT if mats.size(-2) > mats.size(-1) else mats

        by_shape: dict[tuple, list[int]] = {}
        for i, (p, _, mats) in enumerate(pending):
            by_shape.setdefault((wide(mats).shape[-2:], p.device), []).append(i)
        for (_, device), members in by_shape.items():
            dtype = self.ns_dtype or newton_schulz_dtype(device)
            stack = torch.cat([wide(pending[i][2]) for i in members])
            done = orthogonalize(stack, self.ns_steps, dtype)
            for i, ortho in zip(members, done.split([pending[i][2].size(0) for i in members]), strict=True):
                p, group, mats = pending[i]
                ortho = ortho if ortho.shape == mats.shape else ortho.mT
                scale = 0.2 * max(ortho.shape[-2:]) ** 0.5  # about AdamW's update RMS
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(ortho.reshape(p.shape), alpha=-group["lr"] * scale)

    def _momentum_update(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """Advance p's momentum; return the Nesterov update as (split, m, n) matrices."""
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf, beta = state["momentum_buffer"], group["momentum"]
        buf.lerp_(p.grad, 1 - beta)
        update = p.grad.lerp(buf, beta)  # Nesterov: look one momentum step ahead
        split = group["split"]
        return update.view(split, p.size(0) // split, *p.shape[1:])

    def _adamw_update(self, p: torch.Tensor, group: dict) -> None:
        state = self.state[p]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]  # a tensor: the bias corrections stay on the device, no host sync
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(group["eps"])
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.sub_(group["lr"] * state["exp_avg"] / ((1 - beta1**t) * denom))


def muon_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Hidden matrices (2-D weights inside the transformer blocks) for Muon; the rest for AdamW."""
    hidden, qkv, matrices, vectors = [], [], [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # a tied LM head is the embedding, once
            continue
        seen.add(id(p))
        if name.startswith("blocks.") and p.dim() == 2:
            (qkv if name.endswith("attn.c_attn.weight") else hidden).append(p)
        elif p.dim() >= 2:
            matrices.append(p)
        else:
            vectors.append(p)
    groups = [
        {"params": qkv, "muon": True, "split": 3, "weight_decay": weight_decay},
        {"params": hidden, "muon": True, "split": 1, "weight_decay": weight_decay},
        {"params": matrices, "muon": False, "weight_decay": weight_decay},
        {"params": vectors, "muon": False, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
