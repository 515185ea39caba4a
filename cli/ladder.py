"""`scratchgpt ladder`: train the rungs from bigram to GPT on one corpus and print what each part bought.

The rungs and budgets are data (recipes/ladder.toml); the training is `scratchgpt train`'s, rung by
rung (training/ladder.py). The figures this prints for Tiny Shakespeare are in the README's "Why each
part is there" and bench/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..core.bounds import SEED_MAX, real, whole
from ..core.cores import use_threads
from ..core.errors import ScratchGPTError
from ..core.interrupt import InterruptFlag
from ..training.config import STEPS_MAX, TrainConfig
from .common import Parser
from .console import make_console
from .flags import add_threads_flag
from .progress import RunProgress

DEFAULT_OUT = "out/ladder"


def ladder_parser() -> Parser:
    p = Parser(
        prog="scratchgpt ladder",
        description="Train the ladder from a bigram table to a GPT, one part added per rung, each rung on the same "
        "corpus, seed, batches and number of tokens, and print each rung's validation loss beside the one before "
        "and the figure Karpathy's lecture 'Let's build GPT' (2023) reports for the same step.",
    )
    a = p.add_argument
    a("--corpus", default=TrainConfig.corpus, help="registered corpus name or path to a UTF-8 text file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=whole(2, STEPS_MAX), help="optimizer steps per rung (default: the ladder file's)"
    )
    budget.add_argument(
        "--minutes", type=real(0, 10**6, low_open=True), help="fit the whole ladder in this many minutes"
    )
    budget.add_argument("--quick", action="store_true", help="a first look: the ladder file's quick_steps per rung")
    a("--out", default=DEFAULT_OUT, help=f"folder for the rungs' checkpoints and the table (default {DEFAULT_OUT})")
    a("--rungs", nargs="+", metavar="RUNG", help="train only these rungs (names from the ladder file)")
    a("--ladder", default="ladder", metavar="FILE.toml", help="the ladder file (default: recipes/ladder.toml)")
    a("--seed", type=whole(0, SEED_MAX), default=TrainConfig.seed, help="random seed of every rung")
    a("--resume", action="store_true", help="continue the ladder in --out where it stopped")
    add_threads_flag(p, decoding=False)
    a("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_ladder(argv: Sequence[str]) -> int:
    args = ladder_parser().parse_args(argv)
    use_threads(args.threads)
    from ..training import ladder

    out = Path(args.out).expanduser()
    console = make_console()
    if args.resume:
        given = [f for f in ("steps", "minutes", "rungs") if getattr(args, f)] + (["quick"] if args.quick else [])
        if given:
            raise ScratchGPTError(f"--resume continues the ladder as it was planned; drop --{given[0]}")
        plan = ladder.saved_plan(out)
    else:
        found = ladder.read_ladder(args.ladder)
        rungs = ladder.pick(found.rungs, args.rungs)
        steps = found.quick_steps if args.quick else found.steps
        plan = ladder.Plan(corpus=args.corpus, steps=steps, seed=args.seed, rungs=rungs)
    if args.steps is not None and args.steps < ladder.MIN_STEPS:
        raise ScratchGPTError(
            f"--steps {args.steps} is too few to evaluate a rung ({ladder.EVALS_PER_RUNG} evaluations each); "
            f"give at least {ladder.MIN_STEPS}"
        )
    vocab = ladder.check_corpus(plan.corpus, plan.rungs)  # what the user gave, before where it goes
    done = ladder.check_out(out, resume=args.resume)
    step_times = {r.name: ladder.step_seconds(plan.config(r, out), vocab) for r in plan.rungs}
    if args.minutes is not None:
        steps = ladder.steps_for_minutes(args.minutes, list(step_times.values()))
        if steps < ladder.MIN_STEPS:
            raise ScratchGPTError(
                f"--minutes {args.minutes:g} fits {steps} steps a rung, too few to evaluate ({ladder.MIN_STEPS} at "
                "least); give more minutes, fewer --rungs, or --steps"
            )
        plan = replace(plan, steps=steps)
    elif args.steps is not None:
        plan = replace(plan, steps=args.steps)
    console.print(ladder.fairness_line(plan))

    def starting(rung, place: int, left: float | None) -> None:
        eta = f" · the ladder about {minutes_text(left)} left" if left is not None else ""
        console.print(f"\nrung {place}/{len(plan.rungs)}: {rung.name}, {rung.adds}{eta}")

    def finished(result) -> None:
        console.print(f"{result.name}: val {result.val:.4f} nats/char, {result.seconds:.0f} s")

    front = ladder.Climb(
        starting=starting, display=lambda rung: RunProgress(every=50, console=console), finished=finished
    )
    results, status = ladder.climb(plan, out, done, step_times, front, interrupt=InterruptFlag())
    print_table(console, plan, results)
    if status:
        console.print(f"stopped in a rung, saved; `scratchgpt ladder --out {args.out} --resume` continues the ladder")
    else:
        console.print(
            f"checkpoints, {ladder.LADDER_FILE} and {ladder.TABLE_FILE} in {out}; "
            f"`scratchgpt plot {args.out}` draws the rungs' curves"
        )
    return status


def minutes_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def print_table(console, plan, results) -> None:
    from rich.table import Table

    from ..training import ladder

    if not console.is_terminal:  # piped or logged: the markdown of ladder.md, which no width squeezes
        console.print(ladder.table_markdown(plan, results))
        return
    table = Table(title=ladder.fairness_line(plan), title_justify="left")
    for name in ladder.HEADER:
        right = name in ("params", "val", "lecture")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "adds")  # only prose wraps
    for row in ladder.table_rows(results):
        table.add_row(*row)
    console.print(table)
