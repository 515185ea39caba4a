"""`/train N` in the REPL against the loop `scratchgpt train` runs, side by side in one run.

    python bench/repl_train.py [--rounds 5] [--steps 5] [--checkpoint PATH]

A REPL is started as `scratchgpt-repl` starts it (its background warm-up included, timed apart: it
runs while the user reads the banner). Each round types `/train N` into it (through `Repl.handle`,
output to /dev/null) and then runs
N steps of `train_loop` on a copy of the same model with the same batches, the way `scratchgpt
train` does (same optimizer, autocast and batch size). Reported: the time from the command to the
end of /train's first step, and the median tokens/s of each path's steps. The default checkpoint
is the shipped char model, whose corpus must be reachable (SCRATCHGPT_DATA). The last lines are
`train_first_step_s=` (the slowest round) and `repl_vs_cli_tokens_per_s=<ratio>`.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from scratchgpt.cli.console import make_console
from scratchgpt.data import Batches, load_tokens, resolve_corpus
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.model.device import autocast_dtype
from scratchgpt.repl.app import Repl
from scratchgpt.repl.session import Session, Settings, corpus_source
from scratchgpt.training.finetune import FINE_TUNE_LR
from scratchgpt.training.loop import Schedule, StepInfo, make_optimizer, train_loop
from scratchgpt.training.start import batch_size_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="N of each /train N")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped char model")
    args = ap.parse_args()

    ckpt = load_checkpoint(args.checkpoint or shipped_checkpoint("char"))
    session = Session(ckpt, settings=Settings(seed=1))
    corpus = resolve_corpus(corpus_source(ckpt))
    batch_size = batch_size_for(ckpt.config.block_size)  # what /train uses
    batches = Batches(load_tokens(corpus, ckpt.tokenizer), ckpt.config.block_size, batch_size)
    amp = autocast_dtype(torch.device("cpu"))

    first_step: list[float] = []
    repl_tps: list[float] = []
    train = session.train

    def timed_train(steps, corpus=None, *, on_step=None, **kw):  # what /train calls, clocked
        t0 = time.perf_counter()

        def step_done(info: StepInfo) -> None:
            if info.step == 0:
                first_step.append(time.perf_counter() - t0)
            repl_tps.append(info.tokens / info.seconds)
            on_step(info)

        return train(steps, corpus, on_step=step_done, **kw)

    session.train = timed_train
    cli_tps: list[float] = []
    with open(os.devnull, "w") as devnull, create_pipe_input() as pipe:
        repl = Repl(session, input=pipe, output=DummyOutput(), console=make_console(devnull))
        t0 = time.perf_counter()
        repl.warm_up().join()
        warm_up_s = time.perf_counter() - t0
        for r in range(args.rounds):
            repl.handle(f"/train {args.steps}")
            model = copy.deepcopy(session.ckpt.model)
            generator = torch.Generator().manual_seed(r)
            train_loop(
                model,
                make_optimizer(model, lr=FINE_TUNE_LR),
                lambda g=generator: batches.get("train", g),
                steps=range(args.steps),
                schedule=Schedule(FINE_TUNE_LR, args.steps, warmup=0),
                amp_dtype=amp,
                on_step=lambda info: cli_tps.append(info.tokens / info.seconds),
            )

    print(f"model: {session.describe_model()}; batch {batch_size}; threads {torch.get_num_threads()}")
    print(f"REPL warm-up in the background after the banner: {warm_up_s:.2f} s")
    print(
        f"/train {args.steps}, {args.rounds} rounds: command to end of first step "
        f"median {statistics.median(first_step):.2f} s, max {max(first_step):.2f} s"
    )
    print(f"/train steps:           {statistics.median(repl_tps):9,.0f} tokens/s (median)")
    print(f"scratchgpt train steps: {statistics.median(cli_tps):9,.0f} tokens/s (median)")
    print(f"train_first_step_s={max(first_step):.2f}")
    print(f"repl_vs_cli_tokens_per_s={statistics.median(repl_tps) / statistics.median(cli_tps):.2f}")


if __name__ == "__main__":
    main()
