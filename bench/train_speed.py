"""Training throughput: ScratchGPT's training step against a plain fp32 eager PyTorch loop.

    python bench/train_speed.py [--steps 12] [--rounds 3] [--small] [--compile] [--device cuda --batch 64]

Both train the same model on the same batches. The baseline is what nanoGPT's trainer does on a
CPU: fp32 forward, backward, gradient clipping, a default AdamW step. Ours is `train_loop` with
the settings `scratchgpt train` picks on this machine (bf16 autocast where the CPU has native
bf16, fused AdamW); with --compile, as `scratchgpt train --compile` (its blocks compiled during
the untimed warm-up steps). Rounds alternate between the two so machine noise hits both alike;
figures are medians of per-step times (each step ends with a host sync, so on a GPU too a step's
time is its work). The last line is `train_speedup=<ratio>`.

Before it, the same run times the step's matrix multiplies alone (every Linear's forward product
and its two backward ones, over the same tokens) in fp32 and in bf16: `bf16_matmul_speedup` is
what bf16 buys where it helps most, and `ceiling` is the plain loop's step time over the matmuls
alone in the dtype ours computes them in (bf16 where the CPU has it, else fp32): the train_speedup
of a step that did nothing else.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from scratchgpt.model.device import autocast_dtype, pick_device
from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import Schedule, make_optimizer, train_loop


def plain_fp32_steps(model, batches, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for x, y in itertools.islice(batches, steps):
        t0 = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - t0)
    return times


def scratchgpt_steps(model, batches, steps: int) -> list[float]:
    optimizer = make_optimizer(model, lr=1e-3)
    times = []
    train_loop(
        model, optimizer, lambda: next(batches), steps=range(steps), schedule=Schedule(1e-3, steps, warmup=1),
        amp_dtype=autocast_dtype(next(model.parameters()).device), on_step=lambda info: times.append(info.seconds),
    )  # fmt: skip
    return times


def gemm_operands(model, tokens: int, dtype: torch.dtype, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, input) for each Linear of model, in dtype, over `tokens` rows."""
    return [
        (layer.weight.detach().to(dtype), torch.randn(tokens, layer.in_features, dtype=dtype, device=device))
        for layer in model.modules()
        if isinstance(layer, torch.nn.Linear)
    ]


def matmul_seconds(operands, device) -> float:
    """Time of one step's Linear-layer GEMMs: y = x W^T, then dx = dy W and dW = dy^T x."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    sync()
    t0 = time.perf_counter()
    for w, x in operands:
        dy = x @ w.T
        dy @ w, dy.T @ x
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12, help="timed steps per round and path")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="nanoGPT's CPU recipe shape (4x128, block 64, batch 12)")
    ap.add_argument("--compile", action="store_true", help="ours with --compile (compiled blocks)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: both paths run there")
    ap.add_argument("--batch", type=int, help="sequences per step (default 16; 12 with --small)")
    args = ap.parse_args()
    device = pick_device(args.device)
    if args.small:
        config, batch = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128), 12
    else:
        config, batch = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 16
    batch = args.batch or batch

    def batches():
        g = torch.Generator().manual_seed(0)
        while True:
            x = torch.randint(0, config.vocab_size, (batch, config.block_size), generator=g).to(device)
            yield x, torch.roll(x, -1, dims=1)

    torch.manual_seed(0)
    ours, plain = build_model(config).to(device), build_model(config).to(device)
    plain.load_state_dict(ours.state_dict())
    if args.compile:
        compile_blocks(ours)
    scratchgpt_steps(ours, batches(), 2)  # warm up allocators and kernels (and compile)
    plain_fp32_steps(plain, batches(), 2)
    tokens = batch * config.block_size
    ours_t, plain_t, mm16_t, mm32_t = [], [], [], []
    bf16_gemms, fp32_gemms = (gemm_operands(plain, tokens, dtype, device) for dtype in (torch.bfloat16, torch.float32))
    for _ in range(args.rounds):
        ours_t += scratchgpt_steps(ours, batches(), args.steps)
        plain_t += plain_fp32_steps(plain, batches(), args.steps)
        for _ in range(args.steps):
            mm16_t.append(matmul_seconds(bf16_gemms, device))
            mm32_t.append(matmul_seconds(fp32_gemms, device))
    ours_tps, plain_tps = tokens / statistics.median(ours_t), tokens / statistics.median(plain_t)
    mm16, mm32 = statistics.median(mm16_t), statistics.median(mm32_t)
    amp = autocast_dtype(device)
    mm_ours = mm16 if amp == torch.bfloat16 else mm32
    print(f"model: {config.n_layer}x{config.n_embd}, block {config.block_size}, batch {batch}, device {device}, "
          f"threads {torch.get_num_threads()}, amp {amp}, compile {args.compile}")
    print(f"scratchgpt_train: {ours_tps:9.0f} tok/s")
    print(f"plain_fp32_loop:  {plain_tps:9.0f} tok/s")
    print(f"a step's matmuls alone: bf16 {mm16 * 1e3:.0f} ms, fp32 {mm32 * 1e3:.0f} ms "
          f"(bf16_matmul_speedup={mm32 / mm16:.2f})")
    print(f"ceiling={statistics.median(plain_t) / mm_ours:.2f}: the plain loop's step over the matmuls alone in ours' "
          f"dtype ({mm_ours / (tokens / ours_tps):.0%} of ours' step)")
    print(f"train_speedup={ours_tps / plain_tps:.2f}")


if __name__ == "__main__":
    main()
