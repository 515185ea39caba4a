"""Sampling speed: the KV-cache engine against the seeds' full-recompute generate, one run.

    python bench/sample_speed.py [--new-tokens 500] [--repeats 3] [--device cuda]

Model: 6 layers, 6 heads, 384 wide, 256 context (random weights: speed does not depend on them).
Full recompute is what the seeds do per token: crop the context to block_size, run the whole
window, take the last logits. The engine is timed three ways: the eager decode step, compiled,
and compiled with int8 weights (what `--compile --quantize int8` gives; CPU only). Also times picking one
token from GPT-2-sized logits, our sampler against torch.multinomial. Prints medians; the last
line is `kv_speedup=<ratio>` for the fastest engine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scratchgpt.model.device import pick_device
from scratchgpt.model.engine import Engine
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.quant import int8_supported
from scratchgpt.model.sampling import sample_next


@torch.inference_mode()
def full_recompute(model, context: list[int], n: int, generator: torch.Generator) -> list[int]:
    idx = torch.tensor([context], device=next(model.parameters()).device)
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size :])  # the whole window, every token
        idx = torch.cat((idx, sample_next(logits[:, -1, :], temperature=1.0, generator=generator)), dim=1)
    return idx[0, len(context) :].tolist()


def kv_cached(engine: Engine, context: list[int], n: int, generator: torch.Generator) -> list[int]:
    engine.reset()
    return list(engine.generate(context, max_new_tokens=n, temperature=1.0, generator=generator))


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: every path runs there")
    args = ap.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    model = build_model(config).to(device).eval()
    n, context = args.new_tokens, [0]
    engines = {"eager": Engine(model), "compiled": Engine(model, compile=True)}
    if int8_supported(device):
        engines["compiled_int8"] = Engine(model, compile=True, quantize="int8")
    fastest_path = list(engines)[-1]

    def seeded(seed: int) -> torch.Generator:
        return torch.Generator(device).manual_seed(seed)

    compile_s = {}
    for name, engine in engines.items():  # warm up (and compile) every path
        t0 = time.perf_counter()
        kv_cached(engine, context, 20, seeded(0))
        compile_s[name] = time.perf_counter() - t0
    full_recompute(model, context, 20, seeded(0))

    times: dict[str, list[float]] = {name: [] for name in [*engines, "full"]}
    for r in range(args.repeats):  # interleaved, so machine noise hits every path alike
        for name, engine in engines.items():
            times[name].append(timed(kv_cached, engine, context, n, seeded(r)))
        times["full"].append(timed(full_recompute, model, context, n, seeded(r)))
    median = {name: statistics.median(t) for name, t in times.items()}

    prompt = torch.randint(0, 65, (256,)).tolist()
    ttft = []
    for _ in range(5):
        engine = engines[fastest_path]
        engine.reset()
        t0 = time.perf_counter()
        next(engine.generate(prompt, max_new_tokens=1, temperature=1.0))
        ttft.append(time.perf_counter() - t0)

    # picking one token from GPT-2-sized logits: ours (one uniform, inverse CDF) vs torch.multinomial
    big = torch.randn(1, 50257, device=device)
    pick_us = {"inverse_cdf": [], "multinomial": []}
    g = seeded(0)
    for _ in range(300):
        t0 = time.perf_counter()
        int(sample_next(big, temperature=1.0, generator=g))
        t1 = time.perf_counter()
        int(torch.multinomial(torch.softmax(big, dim=-1), 1, generator=g))
        pick_us["inverse_cdf"].append(t1 - t0)
        pick_us["multinomial"].append(time.perf_counter() - t1)

    print(f"model: {model.num_params() / 1e6:.2f}M params, {config.n_layer}x{config.n_embd}, block {config.block_size}")
    print(f"device: {device}  threads: {torch.get_num_threads()}  new tokens: {n}  repeats: {args.repeats} (medians)")
    for name in engines:
        print(
            f"kv_{name + ':':15s} {n / median[name]:8.1f} tok/s"
            f"  ({median[name]:.2f} s; first call {compile_s[name]:.1f} s)"
        )
    print(f"full_recompute:    {n / median['full']:8.1f} tok/s  ({median['full']:.2f} s)")
    print(f"kv_speedup_eager={median['full'] / median['eager']:.1f}")
    print(f"kv_speedup_compiled={median['full'] / median['compiled']:.1f}")
    for name, t in pick_us.items():
        print(f"sample_one_of_50257_{name}_us={statistics.median(t) * 1e6:.1f}")
    print(f"time_to_first_token_256_prompt_ms={statistics.median(ttft) * 1e3:.1f}")
    print(f"kv_speedup={median['full'] / min(median[name] for name in engines):.1f}")


if __name__ == "__main__":
    main()
