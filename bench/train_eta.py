"""How close the time a run announces after its first steps comes to the time it then takes.

    python bench/train_eta.py [--steps 10] [--eval-interval 5] [--eval-iters 50] [--rounds 3]

Each round trains a small char model (4 layers x 128, context 128, batch 16) on Tiny Shakespeare
for --steps steps, evaluating every --eval-interval steps and at the end on 2 x --eval-iters
batches, through `training.run.train` with a display that records the time left the run reckons
at each step. Reported per round: what it said after its third step, what the rest then took,
and their ratio; the last line is `eta_ratio=<median of announced / taken>` (1.0 is exact).
SCRATCHGPT_DATA must reach the corpus.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from scratchgpt.cli.train import parse_args
from scratchgpt.training.run import SilentDisplay, train

MODEL = "--n-layer 4 --n-head 4 --n-embd 128 --block-size 128 --batch-size 16 --device cpu".split()


class Recorded(SilentDisplay):
    def __init__(self):
        self.etas: list[tuple[float, float]] = []  # (perf_counter, seconds left)

    def set_eta(self, seconds: float) -> None:
        self.etas.append((time.perf_counter(), seconds))


def one_round(args: argparse.Namespace, out: Path) -> tuple[float, float]:
    command = parse_args(
        [
            *MODEL,
            "--max-iters",
            str(args.steps),
            "--eval-interval",
            str(args.eval_interval),
            "--eval-iters",
            str(args.eval_iters),
            "--out",
            str(out),
            "--overwrite",
        ]
    )
    shown = Recorded()
    train(command.config, overwrite=True, display=shown)
    taken = time.perf_counter() - shown.etas[0][0]
    return shown.etas[0][1], taken


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eval-interval", type=int, default=5)
    p.add_argument("--eval-iters", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            said, taken = one_round(args, Path(tmp) / "run.safetensors")
            ratios.append(said / taken)
            print(f"round {n + 1}: announced {said:.1f} s after step 3, took {taken:.1f} s ({said / taken:.2f})")
    print(f"eta_ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
