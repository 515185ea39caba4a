"""What each training example of the README costs on a 2-core laptop: a few steps timed, extrapolated.

Each example runs as the README writes it, with `--max-iters` cut to a few steps, one short evaluation and
its own --out; the speed of its last logged steps (tokens/s in its metrics file) times the tokens the full
run would train on gives the time of its steps here. Evaluations (eval_iters batches per split every
eval_interval steps, and at the end) add roughly their share of forward passes, a few percent, not counted.

A shared machine's speed swings with its load, so each example is also given relative to nanoGPT's CPU
recipe timed in the same run, and that ratio times the recipe's wall time on a quiet 2-core machine
(RECIPE_SECONDS, `python bench/nanogpt_recipe.py`, bench/RESULTS.md) is the laptop figure the README quotes.

    python bench/readme_costs.py [THREADS]   # all examples, ~2 minutes on 2 cores; THREADS 1 by default
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratchgpt.cli.train import parse_args
from scratchgpt.core.durations import duration
from scratchgpt.training.config import FRESH_BATCH_SIZE, FRESH_BLOCK_SIZE
from scratchgpt.training.start import batch_size_for

RECIPE_SECONDS = 51.5  # recipes/nanogpt-cpu.toml's whole run on 2 quiet cores (bench/RESULTS.md)
TIMED_STEPS = 12  # the first logged speed is at step 10 (log_interval), warm by then
# One thread: on cores other processes share, a second OpenMP thread spins against them (10x slower here);
# on a quiet 2-core laptop two threads are faster, so the times printed are an upper bound for one.
THREADS = sys.argv[1] if len(sys.argv) > 1 else "1"
# (what the README calls it, its flags); the corpus of the word example is Tiny Shakespeare here
EXAMPLES = [
    ("scratchgpt train (no flags)", []),
    ("--config recipes/nanogpt-cpu.toml", ["--config", "recipes/nanogpt-cpu.toml"]),
    ("--n-layer 4 --n-embd 256 --max-iters 2000", ["--n-layer", "4", "--n-embd", "256", "--max-iters", "2000"]),
    ("--tokenizer word", ["--tokenizer", "word"]),
    (
        "--init-from shakespeare-char --max-iters 500",
        ["--init-from", "checkpoints/shakespeare-char.safetensors", "--max-iters", "500"],
    ),
]


def tokens_per_step(flags: list[str]) -> tuple[int, int]:
    """(steps, tokens a step) of the full run the flags describe."""
    config = parse_args(flags).config
    if config.init_from:
        from scratchgpt.model.checkpoint import load_checkpoint

        block = load_checkpoint(config.init_from).config.block_size
        return config.max_iters, batch_size_for(block) * block
    block = config.block_size or FRESH_BLOCK_SIZE
    return config.max_iters, (config.batch_size or FRESH_BATCH_SIZE) * block * (config.grad_accum or 1)


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    print(f"{cpu}, {os.cpu_count()} cores; {TIMED_STEPS} steps timed per example, --threads {THREADS}")
    recipe_seconds_per_token = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in sorted(EXAMPLES, key=lambda e: "nanogpt-cpu" not in e[0]):  # the recipe first
            out = Path(tmp) / f"{len(name)}.safetensors"
            started = time.perf_counter()
            short = ["--max-iters", str(TIMED_STEPS), "--eval-iters", "1", "--threads", THREADS, "--out", str(out)]
            subprocess.run(
                [sys.executable, "-m", "scratchgpt.train", *flags, *short], cwd=root, check=True, capture_output=True
            )
            wall = time.perf_counter() - started
            speed = [json.loads(line) for line in out.with_suffix(".metrics.jsonl").read_text().splitlines()]
            tok_s = [e["tok_per_s"] for e in speed if "tok_per_s" in e][-1]
            steps, per_step = tokens_per_step(flags)
            here = steps * per_step / tok_s
            if recipe_seconds_per_token is None:
                recipe_seconds_per_token = here / RECIPE_SECONDS  # this machine now, per second of a quiet laptop
            print(
                f"{name:46s} {tok_s:7,} tok/s  {steps:5,} x {per_step:5,} tokens = {duration(here):>10s} here, "
                f"{here / recipe_seconds_per_token / RECIPE_SECONDS:5.1f}x the recipe: "
                f"laptop ~{duration(here / recipe_seconds_per_token):>9s}  ({TIMED_STEPS} steps in {wall:.0f} s)"
            )


if __name__ == "__main__":
    main()
