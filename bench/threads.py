"""Decode speed by thread count: ScratchGPT's default (measured at load) against torch's 2 threads,
on a quiet machine and with one busy process per core, side by side.

    python bench/threads.py [--models char word] [--new-tokens 300] [--repeats 3]

For each shipped model (or checkpoint path) and each condition, the two settings take turns
`--repeats` times; each turn decodes --new-tokens tokens after "ROMEO:" through the engine, as a
reply does. The default re-measures its thread count every turn (threads.py), under whatever
load there is then. "loaded" starts one `while True: pass` process per core first. Prints the
median tokens/s of each and their ratio (default / 2 threads) in one table; the other figures are
the thread counts the default chose. On a machine shared with other work "quiet" is only as quiet
as the others let it be: say so beside the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from scratchgpt.core.cores import cpu_threads
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.model.engine import Engine
from scratchgpt.model.threads import choose_decode_threads


def decode_tokens_per_second(engine: Engine, context: list[int], n: int, seed: int) -> float:
    engine.reset()
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in engine.generate(context, max_new_tokens=n, temperature=0.8, generator=generator):
        pass
    return n / (time.perf_counter() - t0)


def busy_processes(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def measure(engine: Engine, context: list[int], n: int, repeats: int) -> dict:
    default, two, chosen = [], [], []
    for r in range(repeats):
        choice = choose_decode_threads(engine)  # what a session does at load
        chosen.append(choice.count)
        default.append(decode_tokens_per_second(engine, context, n, seed=r))
        torch.set_num_threads(2)
        two.append(decode_tokens_per_second(engine, context, n, seed=r))
    return {"default": statistics.median(default), "two": statistics.median(two), "chosen": chosen}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["char", "word"], help="shipped vocabularies or checkpoint paths")
    p.add_argument("--new-tokens", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)  # the default must be free to measure (torch read it at import)
    cores = cpu_threads()
    print(
        f"cores {cores}, torch's default threads {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, {args.new_tokens} tokens, "
        f"{args.repeats} turns each (medians)"
    )
    engines = {}
    for name in args.models:
        path = shipped_checkpoint(name) or Path(name)
        ckpt = load_checkpoint(path)
        engines[name] = (Engine(ckpt.model), ckpt.tokenizer.encode("ROMEO:"))
    rows = []
    for condition in ("quiet", "loaded"):
        busy = busy_processes(cores) if condition == "loaded" else []
        try:
            if busy:
                time.sleep(0.5)  # let them start spinning
            for name, (engine, context) in engines.items():
                rows.append((name, condition, measure(engine, context, args.new_tokens, args.repeats)))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    print(f"{'model':<10} {'condition':<9} {'default tok/s':>13} {'2 threads':>10} {'ratio':>7}  default chose")
    for name, condition, m in rows:
        print(
            f"{name:<10} {condition:<9} {m['default']:>13.1f} {m['two']:>10.1f} {m['default'] / m['two']:>7.2f}  "
            f"{m['chosen']}"
        )


if __name__ == "__main__":
    main()
