"""The server under load: one client against `scratchgpt sample`, eight clients against one, and the bound.

    python bench/serve_load.py [--tokens 200] [--rounds 2] [--clients 8] [--checkpoint PATH]

Starts `scratchgpt serve` on the shipped char model (a subprocess on a free loopback port) and streams
completions from it, each client its own connection. Prints, per round, interleaved:
  sample      tokens/s of `scratchgpt sample`'s path (Engine + Completion, in this process, same prompt and length)
  1 client    tokens/s of one streamed completion through the server, first byte to last
  N clients   aggregate tokens/s of N streamed at once, and their median time to the first token
Then, as medians of each round's ratio, `one_client_vs_sample=<ratio>` (target >= 0.9) and
`clients_vs_one=<ratio>` (target >= 4 at 8 clients), `median_ttft_ms=<ms>` (target <= 150), and the bound:
the decode step at batch N against batch 1, timed on the model directly, `bound=<N * t1 / tN>` (what N
clients could get over one at best).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import torch

from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.model.engine import Completion, Engine
from scratchgpt.model.sampling_settings import SamplingSettings
from scratchgpt.model.threads import choose_decode_threads

PROMPT = "ROMEO:\n"


def sample_rate(ckpt, tokens: int, seed: int) -> float:
    """tokens/s of what `scratchgpt sample` runs: prefill, then the engine's decode steps through Completion."""
    engine = Engine(ckpt.model)
    choose_decode_threads(engine)
    settings = SamplingSettings(max_new_tokens=tokens, seed=seed)
    t0 = time.perf_counter()
    completion = Completion(
        engine, ckpt.tokenizer, ckpt.tokenizer.encode(PROMPT), settings, generator=torch.Generator().manual_seed(seed)
    )
    for _ in completion:
        pass
    return len(completion.ids) / (time.perf_counter() - t0)


async def stream_one(client: httpx.AsyncClient, tokens: int, seed: int) -> tuple[int, float, float]:
    """(completion tokens, seconds to the first text, seconds in all) of one streamed completion."""
    body = {
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0.8,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0, first, count = time.perf_counter(), None, 0
    async with client.stream("POST", "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"] and first is None:
                first = time.perf_counter() - t0
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
    return count, first or 0.0, time.perf_counter() - t0


async def load(url: str, clients: int, tokens: int) -> tuple[float, float]:
    """(aggregate tokens/s, median seconds to first token) of clients streaming at once."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(stream_one(client, tokens, seed) for seed in range(clients)))
        wall = time.perf_counter() - t0
    return sum(n for n, _, _ in results) / wall, statistics.median(f for _, f, _ in results)


def step_inputs(model, batch: int, position: int = 100) -> tuple:
    """A decode step's inputs at batch rows, each at its own position near `position`, as the batched engine
    passes them: the cache's rows in use up to the longest row's end."""
    cfg = model.config
    shape = (batch, cfg.n_head, cfg.block_size, cfg.head_size)
    end = position + batch
    layers = [(torch.randn(shape)[:, :, :end], torch.randn(shape)[:, :, :end]) for _ in range(cfg.n_layer)]
    return torch.zeros((batch, 1), dtype=torch.long), torch.arange(position, end), layers


@torch.inference_mode()
def step_times(model, batches: tuple[int, ...], repeats: int = 60) -> list[float]:
    """Median seconds of one decode step at each batch size, the sizes interleaved so load hits them alike."""
    inputs = [step_inputs(model, b) for b in batches]
    times: list[list[float]] = [[] for _ in batches]
    for _ in range(repeats):
        for args, out in zip(inputs, times, strict=True):
            t0 = time.perf_counter()
            model.decode_step(*args)
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def start_server(checkpoint: str, clients: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchgpt", "serve", checkpoint, "--port", str(port), "--parallel", str(clients)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not come up within 2 minutes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200, help="new tokens per completion")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--checkpoint", default=str(shipped_checkpoint("char")))
    args = ap.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    proc, url = start_server(args.checkpoint, args.clients)
    samples, ones, manys, ttfts = [], [], [], []
    try:
        asyncio.run(load(url, args.clients, 20))  # warm-up: the first requests pay for lazy set-up
        for r in range(args.rounds):
            samples.append(sample_rate(ckpt, args.tokens, seed=r))
            ones.append(asyncio.run(load(url, 1, args.tokens))[0])
            many, ttft = asyncio.run(load(url, args.clients, args.tokens))
            manys.append(many)
            ttfts.append(ttft)
            print(
                f"round {r + 1}: sample {samples[-1]:6.1f} tok/s | 1 client {ones[-1]:6.1f} tok/s | "
                f"{args.clients} clients {many:6.1f} tok/s, median first token {ttft * 1e3:5.1f} ms",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(15)
    t1, tn = step_times(ckpt.model, (1, args.clients))
    # each round's ratios side by side (the load of the moment hits both alike), then their median
    one_vs_sample = statistics.median(o / s for o, s in zip(ones, samples, strict=True))
    many_vs_one = statistics.median(m / o for m, o in zip(manys, ones, strict=True))
    print(
        f"decode step: batch 1 {t1 * 1e3:.2f} ms, batch {args.clients} {tn * 1e3:.2f} ms "
        f"(threads {torch.get_num_threads()}, cpu count {os.cpu_count()})"
    )
    print(
        f"one_client_vs_sample={one_vs_sample:.2f} clients_vs_one={many_vs_one:.2f} "
        f"median_ttft_ms={statistics.median(ttfts) * 1e3:.0f} bound={args.clients * t1 / tn:.2f}"
    )


if __name__ == "__main__":
    main()
