"""Muon's update: Newton–Schulz in fp32 against bf16, and its share of a training step.

    python bench/muon_speed.py [--shape 4x4x192] [--repeats 10]

Times `Muon.step` on a model of the given layers x heads x width (block 256, gradients in place)
with the iterations in fp32 and in bf16, interleaved, medians; and the same model's whole compiled
training step (16 x 256 tokens, bf16 autocast where native) with the update it takes now. The last
line is `ns_bf16_speedup=<fp32 update time over bf16's>`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scratchgpt.model.device import autocast_dtype
from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import Schedule, make_optimizer, train_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="4x4x192", help="layers x heads x width (the 10-minute recipe's)")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    n_layer, n_head, n_embd = map(int, args.shape.split("x"))
    config = GPTConfig(vocab_size=65, block_size=256, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    torch.manual_seed(0)
    model = build_model(config)
    opt = make_optimizer(model, lr=1e-3, kind="muon")
    compile_blocks(model)
    g = torch.Generator().manual_seed(0)

    def batch():
        x = torch.randint(0, config.vocab_size, (16, config.block_size), generator=g)
        return x, torch.roll(x, -1, dims=1)

    steps: list[float] = []
    amp = autocast_dtype(torch.device("cpu"))
    train_loop(
        model,
        opt,
        batch,
        steps=range(args.repeats + 3),
        schedule=Schedule(1e-3, 100, warmup=1),
        amp_dtype=amp,
        on_step=lambda info: steps.append(info.seconds),
    )
    for p in model.parameters():  # the gradients a step leaves, for the update alone
        p.grad = torch.randn_like(p) * 1e-3
    times: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
    for _ in range(args.repeats + 1):
        for dtype, t in times.items():
            opt.ns_dtype = dtype
            t0 = time.perf_counter()
            opt.step()
            t.append(time.perf_counter() - t0)
    fp32, bf16 = (statistics.median(t[1:]) for t in times.values())
    step = statistics.median(steps[3:])
    print(f"model {args.shape}, block 256, batch 16, threads {torch.get_num_threads()}, amp {amp}")
    print(f"Muon update: Newton-Schulz fp32 {fp32 * 1e3:.1f} ms, bf16 {bf16 * 1e3:.1f} ms")
    print(
        f"compiled training step (update as this machine takes it): {step * 1e3:.0f} ms; "
        f"the fp32 update would be {fp32 / step:.0%} of it, bf16 {bf16 / step:.0%}"
    )
    print(f"ns_bf16_speedup={fp32 / bf16:.2f}")


if __name__ == "__main__":
    main()
