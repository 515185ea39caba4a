"""Where our training step's time goes: torch.profiler over `train_loop`, ops grouped by kind.

    python bench/train_profile.py [--compile] [--steps 3] [--top 25]

The model, batch and settings are bench/train_speed.py's (6x384, block 256, batch 16, the
settings `scratchgpt train` picks here). Prints the ops with the most self time, then each
kind's share of the profiled steps: matmuls, attention (SDPA forward and backward), the
optimizer, gradient clipping, compiled (fused elementwise) kernels, and everything else.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from scratchgpt.model.device import autocast_dtype
from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import Schedule, make_optimizer, train_loop

KINDS = {  # first match wins, on the op's lower-cased name
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "mkldnn", "onednn"),
    "attention": ("flash_attention", "scaled_dot_product"),
    "optimizer": ("adam", "optimizer"),
    "clipping": ("foreach_norm", "_foreach_mul", "clip_grad"),
    "compiled kernels": ("cpp_fused", "triton", "compiled"),
}


def kind_of(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KINDS.items() if any(k in low for k in keys)), "other")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile", action="store_true", help="as scratchgpt train --compile")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps")
    ap.add_argument("--top", type=int, default=25, help="ops listed")
    args = ap.parse_args()
    config, batch = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 16
    g = torch.Generator().manual_seed(0)

    def next_batch():
        x = torch.randint(0, config.vocab_size, (batch, config.block_size), generator=g)
        return x, torch.roll(x, -1, dims=1)

    torch.manual_seed(0)
    model = build_model(config)
    optimizer = make_optimizer(model, lr=1e-3)
    if args.compile:
        compile_blocks(model)
    amp = autocast_dtype(torch.device("cpu"))

    def run(steps: int) -> None:
        train_loop(
            model, optimizer, next_batch, steps=range(steps), schedule=Schedule(1e-3, steps, warmup=1), amp_dtype=amp
        )

    run(2)  # warm-up (and compilation)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(args.steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.steps} steps, {total / 1e3 / args.steps:.0f} ms of self time per step, compile {args.compile}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        share, per_step = e.self_cpu_time_total / total, e.count // args.steps
        print(f"{share:6.1%} {per_step:5d}/step  {kind_of(e.key):16s} {e.key[:90]}")
    shares: dict[str, float] = {}
    for e in events:
        shares[kind_of(e.key)] = shares.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / total
    print("  ".join(f"{kind}={share:.0%}" for kind, share in sorted(shares.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
