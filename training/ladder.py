"""The ladder from bigram to GPT: one part added per rung, every rung trained alike and measured side by side.

A ladder file (recipes/ladder.toml) lists the rungs as `scratchgpt train` settings. `plan` reads it and
checks everything a ladder needs before any training (the rungs named, the budget, the corpus, the
output folder); `climb` then trains rung after rung with `train` itself (this is not a second
trainer), each on the same corpus, with the same seed, batches and number of tokens, and scores each
rung's best checkpoint on the whole validation split. Rung N is saved as DIR/N-name.safetensors with its
metrics beside it, and the table (ladder.json and ladder.md in DIR) is written again after every rung, so
an interrupted ladder keeps what it finished and `resume` goes on from the rung it stopped in.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..core.errors import ScratchGPTError
from ..core.files import atomic_write_bytes
from ..core.interrupt import InterruptFlag
from ..core.text import closest
from ..data import iter_text, load_tokens, resolve_corpus, split_tokens
from ..model.device import autocast_dtype
from ..model.evaluate import evaluate_checkpoint
from ..model.gpt import build_model
from ..tokenizers import fit_tokenizer
from .config import FRESH_BATCH_SIZE, FRESH_BLOCK_SIZE, TrainConfig, checked, read_toml, recipe_path
from .loop import Schedule, make_optimizer, train_loop
from .run import RunDisplay, completed_step, train
from .run_files import RunPaths
from .start import model_config

LADDER_FILE = "ladder.json"  # the plan and each finished rung's figures
TABLE_FILE = "ladder.md"  # the same table as the command prints
EVALS_PER_RUNG = 5  # validation points per rung: its curve in `scratchgpt plot DIR`
EVAL_ITERS = 10  # batches per split at each of them (the table's figure scores the whole val split)
MIN_STEPS = 2 * EVALS_PER_RUNG  # fewer, and a rung has no curve to speak of
PACE_PRIOR = 20.0  # seconds at the estimated pace that the measured pace of the first rungs is blended with
RUNG_KEYS = ("name", "adds", "from", "lecture")  # a [[rung]]'s own keys; the rest are train settings


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: what it adds, and the complete train settings that make it."""

    index: int  # its place in the ladder file, from 1: DIR/{index}-{name}.safetensors
    name: str
    adds: str
    base: str | None  # the rung its figure is compared with (the one before, or its `from`); None for the first
    settings: dict  # `scratchgpt train` settings, the ladder's [common] with every change up to this rung applied
    lecture: float | None  # the lecture's validation loss at this step, where it quotes one

    @property
    def stem(self) -> str:
        return f"{self.index}-{self.name}"


@dataclass(frozen=True)
class LadderFile:
    path: Path
    rungs: tuple[Rung, ...]
    steps: int  # per rung, for the default ladder
    quick_steps: int  # per rung, for --quick


def read_ladder(name: str | Path) -> LadderFile:
    """A ladder file's rungs, each with its settings resolved and checked as `train` would check them."""
    path = recipe_path(name)
    data = read_toml(path, "ladder file", "recipes/ladder.toml is the shipped one")
    where = f"ladder file {path}"
    budget, common, rows = data.get("ladder", {}), data.get("common", {}), data.get("rung", [])
    if not rows:
        raise ScratchGPTError(f"{where} has no [[rung]] tables; add at least one")
    steps = {k: budget.get(k) for k in ("steps", "quick_steps")}
    for key, value in steps.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < MIN_STEPS:
            raise ScratchGPTError(f"{where}: [ladder] {key} must be a whole number of at least {MIN_STEPS}")
    settings = checked(common, where=f"{where} [common]")
    rungs: dict[str, Rung] = {}
    for index, row in enumerate(rows, 1):
        name = row.get("name")
        if not isinstance(name, str) or not name.replace("-", "").isalnum() or name in rungs:
            raise ScratchGPTError(f"{where}: rung {index} needs a name of its own (letters, digits and -)")
        base = row.get("from", rows[index - 2]["name"] if index > 1 else None)
        if base is not None and base not in rungs:
            raise ScratchGPTError(f"{where}: rung {name!r} starts from {base!r}, which no rung before it is")
        start = rungs[base].settings if base is not None else settings
        own = checked({k: v for k, v in row.items() if k not in RUNG_KEYS}, where=f"{where} rung {name!r}")
        rungs[name] = Rung(
            index=index,
            name=name,
            adds=str(row.get("adds", "")),
            base=base,
            settings={**start, **own},
            lecture=row.get("lecture"),
        )
    return LadderFile(path=path, rungs=tuple(rungs.values()), steps=steps["steps"], quick_steps=steps["quick_steps"])


def pick(rungs: Sequence[Rung], names: Sequence[str] | None) -> tuple[Rung, ...]:
    """The rungs named (in the ladder's order), or all of them; an unknown name is one line with the closest."""
    if not names:
        return tuple(rungs)
    known = [r.name for r in rungs]
    for name in names:
        if name not in known:
            meant = closest(name, known)
            hint = f"did you mean {meant!r}? " if meant else ""
            raise ScratchGPTError(f"no rung named {name!r}; {hint}the rungs are {', '.join(known)}")
    return tuple(r for r in rungs if r.name in names)


@dataclass(frozen=True)
class Plan:
    """A ladder as it will run: what ladder.json in its folder records, so `--resume` continues the same one."""

    corpus: str
    steps: int  # optimizer steps per rung
    seed: int
    rungs: tuple[Rung, ...]

    def config(self, rung: Rung, out: Path) -> TrainConfig:
        """The `train` settings of rung: the ladder's, with this plan's corpus, budget, seed and file."""
        settings = {
            **rung.settings,
            "corpus": self.corpus,
            "seed": self.seed,
            "max_iters": self.steps,
            "warmup_iters": min(rung.settings.get("warmup_iters", TrainConfig.warmup_iters), self.steps // 5),
            "eval_interval": max(1, self.steps // EVALS_PER_RUNG),
            "eval_iters": EVAL_ITERS,
            "save_every": 0.0,  # a rung saves at its evaluations; a stopped ladder resumes from the last one
            "out": str(out / f"{rung.stem}.safetensors"),
        }
        return TrainConfig(**settings)

    def tokens(self, rung: Rung) -> int:
        """The tokens a rung trains on: its steps of batch x window (x micro-batches)."""
        return self.steps * window(rung)[0] * window(rung)[1] * rung.settings.get("grad_accum", 1)

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "steps": self.steps, "seed": self.seed, "rungs": [asdict(r) for r in self.rungs]}

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        rungs = tuple(Rung(**r) for r in d["rungs"])
        return cls(corpus=d["corpus"], steps=d["steps"], seed=d["seed"], rungs=rungs)


def step_seconds(config: TrainConfig, vocab_size: int) -> float:
    """One training step of config's model (train_loop's, in the precision a run takes here), timed on
    random tokens after an untimed one: what --minutes divides by, and what the time left is estimated
    from before a rung has run."""
    torch.manual_seed(0)
    model = build_model(model_config(config, vocab_size))
    batch = config.batch_size or FRESH_BATCH_SIZE
    x = torch.randint(vocab_size, (batch, model.config.block_size))
    times: list[float] = []
    train_loop(
        model,
        make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay),
        lambda: (x, x),
        steps=range(3),
        schedule=Schedule(config.lr, 3, warmup=0),
        amp_dtype=autocast_dtype(torch.device("cpu")),
        on_step=lambda info: times.append(info.seconds),
    )
    return min(times[1:])


def overhead_seconds(step_s: float) -> float:
    """What a rung costs besides its steps: its evaluations and the whole-val score (a forward pass is about
    a third of a step; about 60 for Tiny Shakespeare's val split), and the set-up every run has."""
    return (EVALS_PER_RUNG * 2 * EVAL_ITERS + 60) * step_s / 3 + 2.0


def rung_seconds(plan: Plan, step_s: float) -> float:
    """A rung's estimated wall time."""
    return plan.steps * step_s + overhead_seconds(step_s)


def steps_for_minutes(minutes: float, step_times: Sequence[float]) -> int:
    """The steps per rung that fit the whole ladder in minutes, its evaluations and set-up included."""
    budget = minutes * 60 - sum(overhead_seconds(s) for s in step_times)
    return max(0, math.floor(budget / sum(step_times)))


def check_corpus(corpus: str, rungs: Sequence[Rung]) -> int:
    """The corpus's character vocabulary size; a corpus too short for the ladder's windows is one line."""
    data = resolve_corpus(corpus)
    tokenizer = fit_tokenizer("char", iter_text(data))
    train_ids, val = split_tokens(load_tokens(data, tokenizer))
    need = max(window(r)[1] for r in rungs) + 1
    if min(len(train_ids), len(val)) < need:
        raise ScratchGPTError(
            f"corpus {data.name!r} is too short for the ladder: its validation split (the last 10%) has "
            f"{len(val):,} characters and a rung reads {need - 1}-character windows; use a longer text "
            f"(about {10 * need:,} characters or more)"
        )
    return tokenizer.vocab_size


@dataclass
class RungResult:
    """What the table says about one rung."""

    name: str
    index: int
    adds: str
    base: str | None
    params: int
    val: float  # nats/char over the whole validation split
    lecture: float | None
    tokens: int
    seconds: float


def check_out(out: Path, *, resume: bool) -> list[RungResult]:
    """The rungs already finished in out (none for a new ladder). A folder that holds other files, another
    ladder, or this ladder without --resume is refused with one line: nothing in it is ever replaced."""
    record = out / LADDER_FILE
    if not resume:
        if record.exists():
            raise ScratchGPTError(
                f"{out} holds a ladder already; --resume continues it, or pick another --out (nothing was changed)"
            )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ScratchGPTError(f"{out} is not an empty folder; pick a new or empty --out for the ladder")
        return []
    try:
        return [RungResult(**r) for r in read_record(out)["results"]]
    except (KeyError, TypeError) as e:
        raise ScratchGPTError(f"{out / LADDER_FILE} is damaged ({e}); start the ladder in a new --out") from None


def read_record(out: Path) -> dict:
    if not (out / LADDER_FILE).is_file():
        raise ScratchGPTError(f"nothing to resume: {out} holds no {LADDER_FILE}; drop --resume to start a ladder")
    try:
        return json.loads((out / LADDER_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError) as e:
        raise ScratchGPTError(f"{out / LADDER_FILE} is damaged ({e}); start the ladder in a new --out") from None


def saved_plan(out: Path) -> Plan:
    """The plan of the ladder in out, to continue it."""
    try:
        return Plan.from_dict(read_record(out)["plan"])
    except (KeyError, TypeError) as e:
        raise ScratchGPTError(f"{out / LADDER_FILE} is damaged ({e}); start the ladder in a new --out") from None


def write_record(out: Path, plan: Plan, results: Sequence[RungResult]) -> None:
    """ladder.json and ladder.md, each written whole (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"plan": plan.to_dict(), "results": [asdict(r) for r in results]}
    atomic_write_bytes(out / LADDER_FILE, (json.dumps(record, indent=1) + "\n").encode())
    atomic_write_bytes(out / TABLE_FILE, (table_markdown(plan, results) + "\n").encode())


def window(rung: Rung) -> tuple[int, int]:
    """(sequences, tokens each) of a rung's batch, as a new model's run takes them."""
    s = rung.settings
    return s.get("batch_size") or FRESH_BATCH_SIZE, s.get("block_size") or FRESH_BLOCK_SIZE


def fairness_line(plan: Plan) -> str:
    rung = plan.rungs[0]
    batch, block = window(rung)
    return (
        f"{plan.corpus}, whole val split, nats/char. Every rung: {plan.steps:,} steps of {batch} x {block} "
        f"characters ({plan.tokens(rung):,} tokens), seed {plan.seed}, the same batches."
    )


def table_rows(results: Sequence[RungResult]) -> list[tuple[str, ...]]:
    """rung, what it adds, parameters, val nats/char, the change from its base rung, the lecture's figure."""
    by_name = {r.name: r for r in results}
    rows = []
    for r in results:
        base = by_name.get(r.base) if r.base else None
        change = f"{r.val - base.val:+.3f} vs {base.name}" if base else ""
        lecture = f"{r.lecture:.2f}" if r.lecture is not None else ""
        rows.append((f"{r.index}-{r.name}", r.adds, f"{r.params:,}", f"{r.val:.4f}", change, lecture))
    return rows


HEADER = ("rung", "adds", "params", "val", "change", "lecture")


def table_markdown(plan: Plan, results: Sequence[RungResult]) -> str:
    lines = [fairness_line(plan), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


@dataclass
class Climb:
    """What `climb` tells its front end as it goes."""

    starting: Callable[[Rung, int, float | None], None]  # (rung, its place in this ladder from 1, seconds left)
    display: Callable[[Rung], RunDisplay]  # where a rung's training progress goes
    finished: Callable[[RungResult], None]


def climb(
    plan: Plan,
    out: Path,
    done: Sequence[RungResult],
    step_times: dict[str, float],
    front: Climb,
    *,
    interrupt: InterruptFlag | None = None,
) -> tuple[list[RungResult], int]:
    """Train each rung of plan not in done, in order; the results so far and an exit status (a signal's when
    one stopped a rung: that rung is saved at its last evaluation and `resume` continues it)."""
    results = list(done)
    finished = {r.name for r in done}
    write_record(out, plan, results)  # from the start: a ladder killed in its first rung can be resumed
    estimates = {r.name: rung_seconds(plan, step_times.get(r.name, 0.0)) for r in plan.rungs}
    spent = estimated = PACE_PRIOR  # measured time over estimated, for the rungs run so far
    for place, rung in enumerate(plan.rungs, 1):
        if rung.name in finished:
            continue
        left = spent / estimated * sum(estimates[r.name] for r in plan.rungs[place - 1 :] if r.name not in finished)
        front.starting(rung, place, left if step_times else None)
        config = plan.config(rung, out)
        began = time.perf_counter()
        paths = RunPaths.from_out(config.out)
        # a rung stopped after a save resumes from it, one stopped before any starts again (its files are the
        # ladder's), and one that finished training before the stop is only scored
        if not paths.last.exists() or completed_step(paths, config) is None:
            resume = paths.last.exists()
            display = front.display(rung)
            summary = train(config, resume=resume, overwrite=not resume, display=display, interrupt=interrupt)
            if summary.interrupted:
                return results, summary.exit_status
        scored = evaluate_checkpoint(config.out, corpus=plan.corpus)
        result = RungResult(
            name=rung.name,
            index=rung.index,
            adds=rung.adds,
            base=rung.base if rung.base in {r.name for r in plan.rungs} else None,
            params=scored["params"],
            val=scored["val_nats_per_char"],
            lecture=rung.lecture,
            tokens=plan.tokens(rung),
            seconds=round(time.perf_counter() - began, 1),
        )
        results.append(result)
        finished.add(rung.name)
        write_record(out, plan, results)
        front.finished(result)
        spent += result.seconds
        estimated += estimates[rung.name]
    return results, 0
