"""The REPL under load: a long session of turns, then many back-to-back `/train` calls.

    python bench/repl_load.py [--turns 1000] [--trains 100] [--train-steps 5] [--len 16] [--checkpoint PATH]

Every input goes through `Repl.handle`, the path a typed line takes, with the console writing to
/dev/null. Each phase reports memory (resident set size) and time per input early and late in the
phase, as medians over 10 inputs: the first 10 (after one warm-up input) and the last 10. A leak
shows as growing memory, a slowdown as a late/early time ratio above 1. (bench/repl_train.py
times /train's steps against `scratchgpt train`'s.)

The default checkpoint is the shipped char model; its corpus (Tiny Shakespeare) must be reachable
(SCRATCHGPT_DATA). The last lines are `turn_time_ratio=`, `turn_rss_growth_mb=`,
`train_time_ratio=` and `train_rss_growth_mb=`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from scratchgpt.cli.console import make_console
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.repl.app import Repl
from scratchgpt.repl.session import Session, Settings

WINDOW = 10  # inputs per median


def rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def phase(repl: Repl, lines: list[str]) -> tuple[list[float], list[float]]:
    """Handle each line; the seconds each took and the RSS after each."""
    seconds, rss = [], []
    for line in lines:
        t0 = time.perf_counter()
        repl.handle(line)
        seconds.append(time.perf_counter() - t0)
        rss.append(rss_mb())
    return seconds, rss


def early_late(values: list[float]) -> tuple[float, float]:
    """Medians of the first WINDOW values after a warm-up one, and of the last WINDOW."""
    return statistics.median(values[1 : 1 + WINDOW]), statistics.median(values[-WINDOW:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--trains", type=int, default=100)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--len", type=int, default=16, help="tokens per reply")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped char model")
    args = ap.parse_args()
    if min(args.turns, args.trains) < 2 * WINDOW + 1:
        ap.error(f"--turns and --trains must be at least {2 * WINDOW + 1}")

    path = args.checkpoint or shipped_checkpoint("char")
    session = Session(load_checkpoint(path), settings=Settings(seed=1, max_new_tokens=args.len))
    with open(os.devnull, "w") as devnull, create_pipe_input() as pipe:
        repl = Repl(session, input=pipe, output=DummyOutput(), console=make_console(devnull))

        prompts = ["ROMEO:", "", "What light through yonder window breaks?", "JULIET:\nAy me!"]
        turn_s, turn_rss = phase(repl, [prompts[i % len(prompts)] for i in range(args.turns)])

        train_s, train_rss = phase(repl, [f"/train {args.train_steps}"] * args.trains)

    print(f"model: {session.describe_model()}; threads {torch.get_num_threads()}")
    t_early, t_late = early_late(turn_s)
    r_early, r_late = turn_rss[WINDOW], turn_rss[-1]
    print(f"turns: {args.turns} of up to {args.len} tokens")
    print(f"  turn {WINDOW}: {t_early * 1e3:8.1f} ms/turn  {r_early:7.1f} MB RSS")
    print(f"  turn {args.turns}: {t_late * 1e3:8.1f} ms/turn  {r_late:7.1f} MB RSS")
    c_early, c_late = early_late(train_s)
    tr_early, tr_late = train_rss[WINDOW], train_rss[-1]
    print(f"/train {args.train_steps}: {args.trains} calls back to back")
    print(f"  call {WINDOW}: {c_early:8.2f} s/call  {tr_early:7.1f} MB RSS")
    print(f"  call {args.trains}: {c_late:8.2f} s/call  {tr_late:7.1f} MB RSS")
    print(f"turn_time_ratio={t_late / t_early:.2f}")
    print(f"turn_rss_growth_mb={r_late - r_early:.1f}")
    print(f"train_time_ratio={c_late / c_early:.2f}")
    print(f"train_rss_growth_mb={tr_late - tr_early:.1f}")


if __name__ == "__main__":
    main()
