"""Training step time with and without dropout on the attention weights, at 256 and 512 context.

    python bench/attn_dropout.py [--steps 6] [--compile]

The shipped char model's shape (6 layers, 4 heads, 256 wide), 4,096 tokens a step, Muon, dropout
0.2 on the residual branches in both. With `--attn-dropout 0` SDPA runs its flash kernel; with
attention dropout (the default: --dropout's) PyTorch's CPU SDPA has no flash kernel that drops
weights, so it takes the path that builds every T x T attention weight and a random mask of the
same size. Steps alternate between the variants, so machine noise hits all alike; figures are
medians. The last line is `attn_dropout_off_speedup=<ratio>` at 512.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from scratchgpt.model.gpt import GPTConfig, build_model, compile_blocks
from scratchgpt.training.loop import make_optimizer, train_loop

TOKENS = 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    ap.add_argument("--compile", action="store_true", help="compiled blocks, as train --compile")
    args = ap.parse_args()
    variants = {}
    for block in (256, 512):
        for attn in (0.2, 0.0):
            torch.manual_seed(0)
            config = GPTConfig(
                vocab_size=65, block_size=block, n_layer=6, n_head=4, n_embd=256, dropout=0.2, attn_dropout=attn
            )
            model = build_model(config)
            if args.compile:
                compile_blocks(model)
            variants[(block, attn)] = (model, make_optimizer(model, lr=1e-4, kind="muon"))

    def step(key) -> float:
        """One step of `scratchgpt train`'s loop (clipping, Muon, one sync), timed by the loop itself."""
        model, optimizer = variants[key]
        block, times = key[0], []

        def batch():
            x = torch.randint(0, 65, (TOKENS // block, block))
            return x, torch.roll(x, -1, dims=1)

        train_loop(
            model,
            optimizer,
            batch,
            steps=range(1),
            schedule=lambda _: 1e-4,
            on_step=lambda info: times.append(info.seconds),
        )
        return times[0]

    for key in variants:  # warm up (and compile)
        step(key), step(key)
    times = {key: [] for key in variants}
    for _ in range(args.steps):
        for key in variants:
            times[key].append(step(key))
    median = {key: statistics.median(t) for key, t in times.items()}
    print(f"threads {torch.get_num_threads()}, compile {args.compile}, {TOKENS} tokens a step (medians)")
    for (block, attn), t in median.items():
        print(f"block {block}, attention dropout {attn}: {t * 1e3:6.0f} ms  {TOKENS / t:6.0f} tok/s")
    print(f"attn_dropout_off_speedup_256={median[(256, 0.2)] / median[(256, 0.0)]:.2f}")
    print(f"attn_dropout_off_speedup={median[(512, 0.2)] / median[(512, 0.0)]:.2f}")


if __name__ == "__main__":
    main()
