"""Training throughput: ScratchGPT's training step against nanoGPT's, run at its best on this machine.

    python bench/train_speed.py [--steps 8] [--rounds 3] [--small] [--compile] [--device cuda --batch 64]

Ours is `train_loop` with the settings `scratchgpt train` picks here (bf16 autocast where the CPU
has native bf16, fused AdamW, clipping at 1.0); with --compile, as `scratchgpt train --compile`
(its blocks compiled during the untimed warm-up steps). The peer is nanoGPT's model and step
(bench/nanogpt_peer.py) run each way a nanoGPT user could: fp32 eager, bf16 autocast eager, and
each under torch.compile of the whole model, as train.py's --compile does. The best of the four
is the baseline. All train the same shape on the same batches, one step of each path in turn so
machine noise hits all alike; figures are medians of per-step times (each step ends with a host
sync). The last line is `peer_speedup=<ours over the best peer>`.

The same run times what bounds any step: the matmuls of our step alone (every Linear's forward
product and its two backward ones over the same tokens, in the dtype ours computes them in),
causal attention alone, forward and backward per layer, as ours runs it (compiled on a bf16 CPU:
`blocked_causal_attention`, bf16 products and a fused fp32 softmax; else fp32 SDPA, whose time
is also printed for the record), and the update alone (clipping and the optimizer step).
`matmul_share` is the matmuls' fraction of our step; `bound_matmuls` is the peer_speedup of a
step that did nothing but its matmuls, `bound_matmuls_attention` of one that also attends,
`bound_matmuls_attention_update` of one that also updates the weights: a step with no norms,
activations, loss or embedding at all. Where ours attends in blocks, the products inside that
attention are timed alone too: `bound_all_matmuls` is a step doing nothing but matmuls, and the
line before it says how many ms everything else could take at `--target` times the peer.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from nanogpt_peer import PeerConfig, PeerGPT, peer_optimizer, peer_step

from scratchgpt.model.attention_kernels import ATTENTION_BLOCK, blocked_causal_attention
from scratchgpt.model.device import autocast_dtype, pick_device
from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import Schedule, make_optimizer, train_loop


def scratchgpt_steps(model, optimizer, batches, steps: int) -> list[float]:
    times = []
    train_loop(
        model,
        optimizer,
        lambda: next(batches),
        steps=range(steps),
        schedule=Schedule(1e-3, steps, warmup=1),
        amp_dtype=autocast_dtype(next(model.parameters()).device),
        on_step=lambda info: times.append(info.seconds),
    )
    return times


def peer_steps(model, optimizer, batches, steps: int, amp_dtype) -> list[float]:
    times = []
    for x, y in itertools.islice(batches, steps):
        t0 = time.perf_counter()
        peer_step(model, optimizer, x, y, amp_dtype=amp_dtype)
        times.append(time.perf_counter() - t0)
    return times


def gemm_operands(model, tokens: int, dtype: torch.dtype, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, input) for each Linear of model, in dtype, over `tokens` rows."""
    return [
        (layer.weight.detach().to(dtype), torch.randn(tokens, layer.in_features, dtype=dtype, device=device))
        for layer in model.modules()
        if isinstance(layer, torch.nn.Linear)
    ]


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_seconds(operands, device) -> float:
    """Time of one step's Linear-layer GEMMs: y = x W^T, then dx = dy W and dW = dy^T x."""
    sync(device)
    t0 = time.perf_counter()
    for w, x in operands:
        dy = x @ w.T
        dy @ w, dy.T @ x
    sync(device)
    return time.perf_counter() - t0


def sdpa(q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_seconds(attend, qkv: torch.Tensor, layers: int, device) -> float:
    """Time of `layers` causal attention forwards and backwards on q, k, v stacked in qkv (3, B, nh, T, hs)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(layers):
        q, k, v = qkv.detach().requires_grad_().unbind(0)
        y = attend(q, k, v)
        y.backward(torch.ones_like(y))
    sync(device)
    return time.perf_counter() - t0


def attention_matmul_seconds(qkv: torch.Tensor, layers: int, device) -> float:
    """Time of the products alone inside `layers` of blocked_causal_attention, forward and
    backward: per query block, the scores q k^T and p v, then dp = dy v^T, dv = p^T dy, dq = ds k
    and dk = ds^T q, with no softmax, masking or casts between them."""
    q, k, v = qkv.unbind(0)
    T = q.size(-2)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(layers):
        for start in range(0, T, ATTENTION_BLOCK):
            end = min(start + ATTENTION_BLOCK, T)
            qb, kb, vb = q[:, :, start:end], k[:, :, :end], v[:, :, :end]
            p = qb @ kb.transpose(-2, -1)  # stands in for the probabilities too: same shape and dtype
            dy = p @ vb
            dp = dy @ vb.transpose(-2, -1)
            p.transpose(-2, -1) @ dy, dp @ kb, dp.transpose(-2, -1) @ qb
    sync(device)
    return time.perf_counter() - t0


def update_seconds(model, optimizer) -> float:
    """Time of what follows backward in our step: clip the gradient norm at 1.0, then the optimizer."""
    t0 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    sync(next(model.parameters()).device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round and path, taken in turn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="nanoGPT's CPU recipe shape (4x128, block 64, batch 12)")
    ap.add_argument("--compile", action="store_true", help="ours with --compile (compiled blocks)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: every path runs there")
    ap.add_argument("--target", type=float, default=1.3, help="a peer_speedup whose time budget to print")
    ap.add_argument("--batch", type=int, help="sequences per step (default 16; 12 with --small)")
    args = ap.parse_args()
    device = pick_device(args.device)
    shape = (
        dict(block_size=64, n_layer=4, n_head=4, n_embd=128)
        if args.small
        else dict(block_size=256, n_layer=6, n_head=6, n_embd=384)
    )
    config, batch = GPTConfig(vocab_size=65, **shape), args.batch or (12 if args.small else 16)
    tokens = batch * config.block_size

    def batches():
        g = torch.Generator().manual_seed(0)
        while True:
            x = torch.randint(0, config.vocab_size, (batch, config.block_size), generator=g).to(device)
            yield x, torch.roll(x, -1, dims=1)

    torch.manual_seed(0)
    ours = build_model(config).to(device)
    ours_opt = make_optimizer(ours, lr=1e-3)
    if args.compile:
        compile_blocks(ours)
    peers = {}  # name -> (model, optimizer, autocast dtype)
    for compiled, amp in itertools.product((False, True), (None, torch.bfloat16)):
        torch.manual_seed(0)
        model = PeerGPT(PeerConfig(vocab_size=65, **shape)).to(device)
        opt = peer_optimizer(model)
        name = f"{'bf16' if amp else 'fp32'}_{'compiled' if compiled else 'eager'}"
        peers[name] = (torch.compile(model) if compiled else model, opt, amp)

    scratchgpt_steps(ours, ours_opt, batches(), 2)  # warm up allocators and kernels (and compile)
    for model, opt, amp in peers.values():
        peer_steps(model, opt, batches(), 2, amp)
    amp = autocast_dtype(device)
    gemm_dtype = amp or torch.float32
    gemms = gemm_operands(ours, tokens, gemm_dtype, device)
    # the attention ours runs: compiled on a bf16 CPU, blocked_causal_attention; else fp32 SDPA
    blocked = args.compile and device.type == "cpu" and amp == torch.bfloat16
    attend, attn_name = (torch.compile(blocked_causal_attention), "bf16 blocked") if blocked else (sdpa, "fp32 SDPA")
    qkv = torch.randn(3, batch, config.n_head, config.block_size, config.head_size, device=device)
    qkv = qkv.to(torch.bfloat16) if blocked else qkv
    attention_seconds(attend, qkv, 1, device)  # compiled before it is timed
    if blocked:  # and the kernel it replaced, for the record
        sdpa_t = [attention_seconds(sdpa, qkv.float(), config.n_layer, device) for _ in range(3)]
    # a copy of ours with gradients in place, so the update alone can be timed without touching ours
    update_model = build_model(config).to(device)
    update_opt = make_optimizer(update_model, lr=1e-3)
    for p in update_model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    ours_t, mm_t, attn_t, upd_t, attn_mm_t = [], [], [], [], []
    peer_t: dict[str, list[float]] = {name: [] for name in peers}
    ours_batches, peer_batches = batches(), {name: batches() for name in peers}
    for _ in range(args.rounds * args.steps):  # one step of each path in turn: load spikes hit all alike
        ours_t += scratchgpt_steps(ours, ours_opt, ours_batches, 1)
        for name, (model, opt, peer_amp) in peers.items():
            peer_t[name] += peer_steps(model, opt, peer_batches[name], 1, peer_amp)
        mm_t.append(matmul_seconds(gemms, device))
        attn_t.append(attention_seconds(attend, qkv, config.n_layer, device))
        upd_t.append(update_seconds(update_model, update_opt))
        if blocked:
            attn_mm_t.append(attention_matmul_seconds(qkv, config.n_layer, device))
    ours_s, mm, attn, upd = (statistics.median(t) for t in (ours_t, mm_t, attn_t, upd_t))
    peer_s = {name: statistics.median(t) for name, t in peer_t.items()}
    best = min(peer_s, key=peer_s.get)
    print(
        f"model: {config.n_layer}x{config.n_embd}, block {config.block_size}, batch {batch}, device {device}, "
        f"threads {torch.get_num_threads()}, amp {amp}, compile {args.compile}"
    )
    print(f"scratchgpt_train:      {tokens / ours_s:9.0f} tok/s  {ours_s * 1e3:6.0f} ms/step")
    for name, s in peer_s.items():
        print(
            f"nanogpt_{name + ':':14s}{tokens / s:9.0f} tok/s  {s * 1e3:6.0f} ms/step"
            f"{'  <- best peer' if name == best else ''}"
        )
    print(
        f"a step's matmuls alone ({str(gemm_dtype).removeprefix('torch.')}): {mm * 1e3:.0f} ms; "
        f"its attention alone ({attn_name}): {attn * 1e3:.0f} ms; clipping and optimizer alone: {upd * 1e3:.0f} ms"
    )
    if blocked:
        sdpa_ms = statistics.median(sdpa_t) * 1e3
        print(f"fp32 SDPA's attention, which the compiled step no longer runs: {sdpa_ms:.0f} ms")
        attn_mm = statistics.median(attn_mm_t)
        print(f"the blocked attention's own products alone: {attn_mm * 1e3:.0f} ms of its {attn * 1e3:.0f}")
    print(
        f"matmul_share={mm / ours_s:.0%} of our step; attention {attn / ours_s:.0%}; update {upd / ours_s:.0%}; "
        f"the rest (norms, RoPE, activations, residuals, loss, embedding) {1 - (mm + attn + upd) / ours_s:.0%}"
    )
    print(
        f"bound_matmuls={peer_s[best] / mm:.2f} bound_matmuls_attention={peer_s[best] / (mm + attn):.2f} "
        f"bound_matmuls_attention_update={peer_s[best] / (mm + attn + upd):.2f}: "
        f"the peer_speedup of a step doing only those"
    )
    if blocked:
        budget, spent = peer_s[best] / args.target - mm - attn_mm, ours_s - mm - attn_mm
        print(
            f"bound_all_matmuls={peer_s[best] / (mm + attn_mm):.2f}: a step doing only matmuls, attention's too; "
            f"at {args.target:g}x the peer, all else (softmax, norms, RoPE, activations, loss, update) would have "
            f"{budget * 1e3:.0f} ms, against {spent * 1e3:.0f} now"
        )
    print(f"peer_speedup={peer_s[best] / ours_s:.2f}")


if __name__ == "__main__":
    main()
