"""Which vocabulary suits Tiny Shakespeare: characters against BPE vocabularies learned from it, at a few model sizes.

    python bench/vocab_sweep.py [--vocabs char,512,1024,2048,4096] [--models 2x4x64,4x4x128,6x4x192]
                                [--steps 700] [--threads 1] [--work DIR]

Every run is the same recipe but for the vocabulary and the model: --steps optimizer steps of 16 sequences
of 128 tokens, Muon, warmup-stable-decay at a peak lr of 2e-3, no dropout, on --threads threads. So each
row sees the same number of tokens; a BPE row sees more text (its characters per token times as much),
and pays for a larger embedding table and head. Each model is then scored by `scratchgpt eval` over the
whole validation split, in nats per character so that the vocabularies compare. Prints one line per run
as it ends, then the table. A row is a few minutes on one thread of a 2-core machine; the default grid
about 75 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return done.stdout


def train_and_score(vocab: str, model: str, steps: int, threads: int, work: Path) -> dict:
    n_layer, n_head, n_embd = model.split("x")
    out = work / f"{vocab}-{model}.safetensors"
    tokenizer = "--tokenizer char" if vocab == "char" else f"--tokenizer bpe --vocab-size {vocab}"
    recipe = (
        f"{tokenizer} --n-layer {n_layer} --n-head {n_head} --n-embd {n_embd} --block-size 128 --batch-size 16"
        f" --max-iters {steps} --warmup-iters 50 --optimizer muon --schedule wsd --lr 2e-3 --dropout 0"
        f" --eval-interval {steps} --eval-iters 10 --threads {threads} --seed 1337 --overwrite"
    )
    start = time.perf_counter()
    run([sys.executable, "-m", "scratchgpt", "train", *recipe.split(), "--out", str(out)])  # out may hold spaces
    minutes = (time.perf_counter() - start) / 60
    scored = json.loads(
        run([sys.executable, "-m", "scratchgpt", "eval", str(out), "--json", "--threads", str(threads)])
    )
    return {
        "vocab": vocab,
        "model": model,
        "ids": scored["vocab_size"],
        "params": scored["params"],
        "chars_per_token": scored["chars"] / scored["tokens"],
        "minutes": minutes,
        "nats_per_char": scored["val_nats_per_char"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocabs", default="char,512,1024,2048,4096")
    p.add_argument("--models", default="2x4x64,4x4x128,6x4x192", help="layers x heads x width, comma-separated")
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="where the models go (default: a temporary folder)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vocab-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s); "
        f"{args.steps} steps x 16 x 128 tokens each; models in {work}",
        flush=True,
    )
    rows = []
    for model in args.models.split(","):
        for vocab in args.vocabs.split(","):
            row = train_and_score(vocab, model, args.steps, args.threads, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'model':>9} {'vocab':>6} {'params':>8} {'chars/token':>11} {'minutes':>7} {'nats/char':>9}")
    for r in rows:
        print(
            f"{r['model']:>9} {r['vocab']:>6} {r['params'] / 1e6:>7.2f}M {r['chars_per_token']:>11.3f} "
            f"{r['minutes']:>7.1f} {r['nats_per_char']:>9.4f}"
        )
    for model in args.models.split(","):
        best = min((r for r in rows if r["model"] == model), key=lambda r: r["nats_per_char"])
        print(f"best at {model}: {best['vocab']} ({best['nats_per_char']:.4f} nats/char)")


if __name__ == "__main__":
    main()
