"""Sampling speed: the KV-cache engine against the seeds' full-recompute generate, one run.

    python bench/sample_speed.py [--new-tokens 500] [--repeats 3]

Model: 6 layers, 6 heads, 384 wide, 256 context (random weights: speed does not depend on them).
Full recompute is what the seeds do per token: crop the context to block_size, run the whole
window, take the last logits. Prints medians; the last line is `kv_speedup=<ratio>`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scratchgpt.model.engine import Engine, sample_next
from scratchgpt.model.gpt import GPTConfig, build_model


@torch.inference_mode()
def full_recompute(model, context: list[int], n: int, generator: torch.Generator) -> list[int]:
    idx = torch.tensor([context])
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size :])  # the whole window, every token
        idx = torch.cat((idx, sample_next(logits[:, -1, :], temperature=1.0, generator=generator)), dim=1)
    return idx[0, len(context) :].tolist()


def kv_cached(model, context: list[int], n: int, generator: torch.Generator) -> list[int]:
    return list(Engine(model).generate(context, max_new_tokens=n, temperature=1.0, generator=generator))


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    model = build_model(config).eval()
    n, context = args.new_tokens, [0]
    kv_cached(model, context, 20, torch.Generator().manual_seed(0))  # warm up both paths
    full_recompute(model, context, 20, torch.Generator().manual_seed(0))

    kv_times, full_times = [], []
    for r in range(args.repeats):  # interleaved, so machine noise hits both alike
        kv_times.append(timed(kv_cached, model, context, n, torch.Generator().manual_seed(r)))
        full_times.append(timed(full_recompute, model, context, n, torch.Generator().manual_seed(r)))
    kv, full = statistics.median(kv_times), statistics.median(full_times)

    prompt = torch.randint(0, 65, (256,)).tolist()
    ttft = []
    for _ in range(5):
        engine = Engine(model)
        t0 = time.perf_counter()
        next(engine.generate(prompt, max_new_tokens=1, temperature=1.0))
        ttft.append(time.perf_counter() - t0)

    print(f"model: {model.num_params() / 1e6:.2f}M params, {config.n_layer}x{config.n_embd}, block {config.block_size}")
    print(f"threads: {torch.get_num_threads()}  new tokens: {n}  repeats: {args.repeats} (medians)")
    print(f"kv_cache:        {n / kv:8.1f} tok/s  ({kv:.2f} s)")
    print(f"full_recompute:  {n / full:8.1f} tok/s  ({full:.2f} s)")
    print(f"time_to_first_token_256_prompt_ms={statistics.median(ttft) * 1e3:.1f}")
    print(f"kv_speedup={full / kv:.1f}")


if __name__ == "__main__":
    main()
