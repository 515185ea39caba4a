"""A training run: `train(config)`, what `scratchgpt train` and `torchrun -m scratchgpt.train` call.

The run is assembled from named parts: where it starts from (start.py), its files, the order a
save writes them and the lock that makes this process their owner (run_files.py), its pace and
`--max-minutes` end (pacer.py), and the plain loop beneath (loop.py). Its mutable counters live in
one `RunState`; what the run did comes back as a `RunSummary`. The run prints nothing: progress
reaches the screen through a `RunDisplay` the caller passes. The REPL's /train is finetune.py.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from ..core.cores import use_threads
from ..core.durations import clock, duration
from ..core.errors import ScratchGPTError, is_out_of_memory
from ..core.interrupt import TRAINING_SIGNALS, InterruptFlag
from ..core.text import counted
from ..data import Batches, load_tokens
from ..model.checkpoint import load_train_state
from ..model.device import autocast_dtype, pick_device
from ..model.gpt import compile_blocks
from . import distributed as dist
from .budget import evaluations_in
from .config import FRESH_BATCH_SIZE, TrainConfig
from .distill import Teacher, distillation
from .loggers import MetricsLog, check_installed, open_metrics_log
from .loop import Schedule, StepInfo, estimate_loss, make_optimizer, train_loop
from .pacer import Pacer
from .run_files import (
    RunLock,
    RunPaths,
    RunWriter,
    SavedStep,
    check_writable,
    claim_out,
    clear_run,
    resume_state_path,
    saved_state,
)
from .start import batch_size_for, corpus_record, load_teacher, start_from

SCORES_MAX = 4 << 30  # bytes of --teacher-pass once's table of scores
ETA_AFTER_STEPS = 3  # the run's first steps, timed to say how long the rest will take
EVAL_SHOWN_SECONDS = 2.0  # an evaluation expected to take longer is announced and shows its progress
EVAL_TIMED = 2  # evaluation batches timed to reckon an evaluation's cost, after one that warms up


class RunDisplay(Protocol):
    """Where a run's progress goes: a terminal's bar, a log's lines, or nowhere."""

    def begin(self, total: int, start: int) -> None: ...  # steps start+1..total are about to run
    def step(self, step: int, loss: float, tokens: int) -> None: ...  # step (0-based) done on `tokens` tokens
    def set_total(self, total: int) -> None: ...  # the run now ends after `total` steps
    def set_eta(self, seconds: float) -> None: ...  # the time left, evaluations included
    def evaluating(self, done: int, total: int) -> None: ...  # batches of an evaluation scored so far
    def note(self, text: str) -> None: ...  # a line that stays
    def end(self) -> None: ...


class SilentDisplay:
    """Shows nothing: the display of ranks other than the first, and of a run nobody watches."""

    def begin(self, total: int, start: int) -> None: ...
    def step(self, step: int, loss: float, tokens: int) -> None: ...
    def set_total(self, total: int) -> None: ...
    def set_eta(self, seconds: float) -> None: ...
    def evaluating(self, done: int, total: int) -> None: ...
    def note(self, text: str) -> None: ...
    def end(self) -> None: ...


@dataclass
class RunState:
    """What changes as a run goes: everything a save records about the loop."""

    step: int  # steps finished, the resumed ones included: the next step's 0-based index
    end: int  # the run ends after this many steps (--max-iters, or what --max-minutes fitted)
    decay_iters: int | None  # the steps the lr decays over (--lr-decay-iters, or its refit); None: over `end`
    fitted: bool = False  # --max-minutes fitted end (and decay_iters): saves record them in place of the budget
    best_val: float = math.inf  # the best validation loss evaluated
    tokens_seen: int = 0  # training tokens, all processes together
    last_eval: dict[str, float] = field(default_factory=dict)  # {"train", "val"} of the latest evaluation
    saved_at: float = field(default_factory=time.monotonic)  # time.monotonic() of the latest save
    train_losses: list[float] = field(default_factory=list)  # each step's loss, this process's steps only
    began: float = field(default_factory=time.perf_counter)  # perf_counter() when this process's first step started


@dataclass(frozen=True)
class RunSummary:
    """What one run did."""

    steps: int  # steps finished, the resumed ones included
    train_losses: list[float]  # each step's training loss, this invocation's steps only
    val: float | None  # the latest validation loss, None when never evaluated
    best: str  # where the best model is saved
    seconds: float  # wall time of the steps, evaluations and saves
    tokens_per_second: float
    interrupted: bool  # stopped by a signal, saved, resumable
    exit_status: int  # 0, or the signal's exit status
    model: torch.nn.Module | None  # the trained model; None when a finished run had nothing to do


class Run:
    """One run, built whole from its parts by `assemble`, and what it does at each step."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        rank: dist.Rank,
        device: torch.device,
        amp: torch.dtype | None,
        paths: RunPaths,
        display: RunDisplay,
        state: RunState,
        started: float,
        model: torch.nn.Module,
        batches: Batches,
        optimizer: torch.optim.Optimizer,
        ddp_model: torch.nn.Module,
        own_batches: Iterator[tuple[torch.Tensor, ...]],
        loss_fn: Callable[..., torch.Tensor] | None,
        metrics: MetricsLog,
        writer: RunWriter | None,
    ):
        self.config, self.rank, self.device, self.amp, self.paths = config, rank, device, amp, paths
        self.display, self.state, self.started = display, state, started
        self.model = model
        self.batches = batches
        self.optimizer = optimizer
        self.ddp_model = ddp_model  # model, wrapped for gradient all-reduce when there are several processes
        self.own_batches = own_batches  # this process's micro-batches
        self.grad_accum = dist.local_grad_accum(config.grad_accum, rank)  # this process's micro-batches per step
        self.loss_fn = loss_fn  # distillation's loss, or None: the model's own
        self.metrics = metrics  # logs on the first rank only
        self.writer = writer  # None on ranks other than the first: only the first saves
        self.start, self.tokens_before = state.step, state.tokens_seen  # where this invocation started
        deadline = started + config.max_minutes * 60 if config.max_minutes else None
        self.pacer = Pacer(config.eval_interval, deadline=deadline, most=config.max_iters)
        # --max-minutes fits the lr decay to the fitted end, keeping a pinned lr_decay_iters' share
        self.decay_share = config.lr_decay_iters / config.max_iters if deadline and config.lr_decay_iters else None

    # --- during the loop --------------------------------------------------------------------

    def lr(self, step: int) -> float:
        """The learning rate at step, on the schedule over the run's length as it now stands (a refit moves it)."""
        return schedule_of(self.config, self.state.decay_iters or self.state.end)(step)

    def planned_steps(self) -> Iterator[int]:
        step = self.state.step
        while step < self.state.end:  # a --max-minutes refit may bring the end closer
            yield step
            step += 1

    def on_step(self, info: StepInfo) -> None:
        """After each step: count it, show it, pace it; log, evaluate and save when due."""
        state, config = self.state, self.config
        if info.step > self.start:  # the first step carries set-up and compilation: not a step's pace
            self.pacer.step_done(info.seconds)
        done, tokens = info.step + 1, info.tokens * self.rank.world_size
        state.step, state.tokens_seen = done, state.tokens_seen + tokens
        state.train_losses.append(info.loss)
        self.display.step(info.step, info.loss, tokens)
        if len(state.train_losses) == ETA_AFTER_STEPS and done < state.end:
            self.first_pace(done)
        elif self.pacer.deadline is not None and self.pacer.eval_seconds is not None:
            if done % config.log_interval == 0 and done < state.end:
                self.refit(done)
        if done % config.log_interval == 0:
            self.metrics.log(
                {
                    "step": done,
                    "tokens": state.tokens_seen,
                    "loss": info.loss,
                    "lr": info.lr,
                    "tok_per_s": round(self.tokens_per_second()),
                }
            )
        if done % config.eval_interval == 0 or done == state.end:
            self.evaluate(info.step)
            self.save(info.step)
        elif config.save_every and time.monotonic() - state.saved_at >= config.save_every * 60:
            self.save(info.step, evaluated=False)
        if self.pacer.eval_seconds is not None:  # what is left once this step's evaluation is done
            self.display.set_eta(self.pacer.seconds_left(done, state.end) if done < state.end else 0.0)

    def first_pace(self, done: int) -> None:
        """After the first steps: an evaluation's cost measured, then the end fitted to
        --max-minutes, or the time the rest will take said."""
        self.pacer.eval_seconds = 2 * self.config.eval_iters * self.eval_batch_seconds()
        if self.pacer.deadline is not None:
            self.refit(done, first=True)
            return
        left, evaluations = self.state.end - done, evaluations_in(done, self.state.end, self.config.eval_interval)
        seconds = duration(self.pacer.seconds_left(done, self.state.end))
        self.display.note(
            f"{counted(left, 'step')} left at {self.pacer.step_seconds:.2f} s a step and "
            f"{counted(evaluations, 'evaluation')} at {self.pacer.eval_seconds:.1f} s: about {seconds}"
        )

    def refit(self, done: int, *, first: bool = False) -> None:
        """--max-minutes: end at the steps that still fit, at the pace of the recent steps; first
        after ETA_AFTER_STEPS, then at each --log-interval step, as the pace moves."""
        total = dist.agreed_min(self.pacer.fit(done), self.device)  # every rank ends on the same step
        if total != self.state.end:
            self.end_at(total)
        if first:
            capped = " (--max-iters)" if total == self.pacer.most else ""
            self.display.note(
                f"{self.pacer.step_seconds:.2f} s a step: {total:,} steps{capped} in all fit "
                f"--max-minutes {self.config.max_minutes:g}, evaluations included "
                f"(one {self.pacer.eval_seconds:.1f} s)"
            )
            if self.decay_share is not None:
                self.display.note(
                    f"the lr decays over {self.state.decay_iters:,} steps: lr_decay_iters keeps "
                    "its share of --max-iters in the fitted run"
                )
        elif total == done:
            self.display.note(f"step {done}: --max-minutes {self.config.max_minutes:g} is up; ending here")

    def end_at(self, total: int) -> None:
        """The run now ends after step `total`, a pinned lr decay keeping its share: saved so (see
        `config_to_save`), so that a resume keeps to both."""
        self.state.end, self.state.fitted = total, True
        if self.decay_share is not None:
            self.state.decay_iters = max(1, round(self.decay_share * total))
        self.display.set_total(total)

    def config_to_save(self) -> TrainConfig:
        """The config as given, or once --max-minutes has fitted the run, with the fitted end and lr
        decay in place of the budget: a resume continues that run rather than fitting anew."""
        if not self.state.fitted:
            return self.config
        return replace(self.config, max_iters=self.state.end, max_minutes=None, lr_decay_iters=self.state.decay_iters)

    def eval_losses(self, iters: int, splits=("train", "val"), on_batch=None) -> dict[str, float]:
        # --compile: evaluation runs eager rather than building a second, no-grad graph
        with torch.compiler.set_stance("force_eager") if self.config.compile else contextlib.nullcontext():
            return estimate_loss(
                self.model,
                self.batches.get,
                iters=iters,
                seed=self.config.seed,
                amp_dtype=self.amp,
                splits=splits,
                on_batch=on_batch,
            )

    def eval_batch_seconds(self) -> float:
        """One evaluation batch's time, measured on EVAL_TIMED batches after a first that warms up."""
        ends: list[float] = []
        self.eval_losses(1 + EVAL_TIMED, splits=("val",), on_batch=lambda done, total: ends.append(time.perf_counter()))
        return (ends[-1] - ends[0]) / EVAL_TIMED

    def evaluate(self, step: int) -> None:
        losses = self.eval_losses(self.config.eval_iters, on_batch=EvalWatch(self.display, step))
        self.state.last_eval.update({"train": losses["train"], "val": losses["val"]})
        self.display.note(f"step {step + 1}: train {losses['train']:.4f}  val {losses['val']:.4f}")
        self.metrics.log(
            {
                "step": step + 1,
                "tokens": self.state.tokens_seen,
                "train_loss": losses["train"],
                "val_loss": losses["val"],
            }
        )

    def save(self, step: int, *, evaluated: bool = True) -> None:
        state = self.state
        state.saved_at = time.monotonic()
        if self.writer is None:  # only the first rank saves
            return
        val = state.last_eval.get("val", math.inf)
        improved = evaluated and (val < state.best_val or not self.paths.best.exists())
        if evaluated:
            state.best_val = min(state.best_val, val)
        saved = SavedStep(step, state.tokens_seen, state.best_val, state.last_eval, self.config_to_save())
        self.writer.save(saved, best=improved)
        if improved:
            self.display.note(f"step {step + 1}: saved {self.paths.best} (val {val:.4f})")
        if not evaluated:
            self.display.note(f"step {step + 1}: saved {self.paths.last} ({self.config.save_every:g}-minute save)")

    def tokens_per_second(self) -> float:
        return self.tokens_here / max(1e-9, time.perf_counter() - self.state.began)

    @property
    def tokens_here(self) -> int:
        return self.state.tokens_seen - self.tokens_before

    # --- around the loop --------------------------------------------------------------------

    def run_loop(self, interrupt: dist.AgreedInterrupt) -> int | None:
        """The steps; returns the last one finished. Out of memory is one line saying what to reduce."""
        self.state.began = time.perf_counter()  # the pacer's clock starts after step 1 (set-up, compilation)
        try:
            return train_loop(
                self.ddp_model,
                self.optimizer,
                lambda: next(self.own_batches),
                steps=self.planned_steps(),
                schedule=self.lr,
                grad_clip=self.config.grad_clip,
                grad_accum=self.grad_accum,
                amp_dtype=self.amp,
                on_step=self.on_step,
                interrupt=interrupt,
                loss_fn=self.loss_fn,
                backward_context=dist.no_sync_context(self.ddp_model, self.grad_accum),
            )
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            raise ScratchGPTError(
                f"out of memory training on {self.batches.batch_size} sequences of {self.batches.block_size} tokens "
                "at a time; reduce --batch-size (a larger --grad-accum keeps the batch) or --block-size, or the model"
            ) from e

    def finish(self, last: int | None, stopped: bool) -> None:
        if stopped and last is not None:
            self.evaluate(last)
            self.save(last)
            self.display.end()  # the bar stops where it is: the way to go on is the last line on the screen
            self.display.note(f"interrupted after step {last + 1}; continue with --resume --out {self.config.out}")
        elif last is not None:
            took = clock(time.perf_counter() - self.started)
            self.display.note(
                f"finished {last + 1 - self.start:,} steps in {took} "
                f"(best val {self.state.best_val:.4f}, in {self.paths.best})"
            )

    def summary(self, last: int | None, stopped: bool, exit_status: int) -> RunSummary:
        return RunSummary(
            steps=(last + 1) if last is not None else self.start,
            train_losses=self.state.train_losses,
            val=self.state.last_eval.get("val"),
            best=str(self.paths.best),
            seconds=time.perf_counter() - self.state.began,
            tokens_per_second=self.tokens_per_second(),
            interrupted=stopped,
            exit_status=exit_status if stopped else 0,
            model=self.model,
        )


class EvalWatch:
    """An evaluation's progress, shown once its second batch (the first warms up) says it will take
    more than EVAL_SHOWN_SECONDS: a line saying so, then each batch to the display."""

    def __init__(self, display: RunDisplay, step: int):
        self.display, self.step = display, step
        self.first_done = time.perf_counter()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if done == 1:
            self.first_done = time.perf_counter()
        elif done == 2:
            expected = (time.perf_counter() - self.first_done) * (total - 1)
            self.shown = expected > EVAL_SHOWN_SECONDS
            if self.shown:
                self.display.note(f"step {self.step + 1}: evaluating on {total:,} batches, about {duration(expected)}")
        if self.shown:
            self.display.evaluating(done, total)


def schedule_of(config: TrainConfig, decay_iters: int) -> Schedule:
    """config's lr schedule, decaying over decay_iters steps."""
    return Schedule(
        config.lr,
        decay_iters,
        warmup=config.warmup_iters,
        min_lr_ratio=config.min_lr_ratio,
        kind=config.schedule,
        decay_frac=config.decay_frac,
    )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    interrupt: InterruptFlag | None = None,
    display: RunDisplay | None = None,
) -> RunSummary:
    """Train as config says; progress goes to display (nothing is shown without one).

    resume continues the run saved at config.out (pass its `saved_config`, with any changes);
    overwrite replaces a run found there instead of refusing to start. While it runs, this process
    owns the run's files: a second run onto the same --out is refused. Ctrl-C, SIGTERM and SIGHUP
    stop it between two steps; it evaluates, saves, and the summary's exit_status is the signal's.
    """
    started = time.perf_counter()  # the wall time the run reports counts its set-up and compilation too
    check_flags(config)
    use_threads(config.threads)
    rank = dist.setup(config.device)
    display = display if display is not None and rank.is_main else SilentDisplay()
    paths = RunPaths.from_out(config.out)
    dist.local_grad_accum(config.grad_accum or rank.world_size, rank)  # an indivisible --grad-accum fails at once
    with contextlib.ExitStack() as owned:
        if rank.is_main:
            check_writable(paths.best.parent)
            owned.enter_context(RunLock(paths))
            if not resume:
                claim_out(config, paths, overwrite=overwrite)
        if resume and (done := completed_step(paths, config)) is not None:
            display.note(
                f"{paths.best} is complete at step {done:,}; to train it further, run again with "
                f"--resume and a larger --max-iters (above {done:,})"
            )
            return RunSummary(
                steps=done,
                train_losses=[],
                val=None,
                best=str(paths.best),
                seconds=0.0,
                tokens_per_second=0.0,
                interrupted=False,
                exit_status=0,
                model=None,
            )
        run = assemble(
            config, rank=rank, paths=paths, resume=resume, overwrite=overwrite, display=display, started=started
        )
        flag = interrupt or InterruptFlag()
        agreed = dist.AgreedInterrupt(flag, run.device)  # every process stops after the same step
        display.begin(run.state.end, run.start)
        try:
            with flag.active(signals=TRAINING_SIGNALS), run.metrics:
                last = run.run_loop(agreed)
                stopped = agreed.stop_agreed  # as every rank last agreed: a signal in the last step changes nothing
                run.finish(last, stopped)
        finally:
            display.end()
    dist.teardown()
    return run.summary(last, stopped, flag.exit_status)


def check_flags(config: TrainConfig) -> None:
    """Refuse flags that mean nothing together, and loggers not installed, before any work."""
    check_installed(wandb=config.wandb, tensorboard=config.tensorboard)
    taken = [name for name in ("positions", "mlp", "residual", "norms") if not getattr(config, name)]
    if config.arch == "gpt2" and taken:
        raise ScratchGPTError(f"--arch gpt2 is GPT-2's layout, whole; drop --no-{taken[0]} or train --arch gpt")
    if not config.teacher:
        for name in ("distill_weight", "teacher_pass"):
            if getattr(config, name) is not None:
                raise ScratchGPTError(
                    f"--{name.replace('_', '-')} sets how a teacher is used; add --teacher CHECKPOINT"
                )


def completed_step(paths: RunPaths, config: TrainConfig) -> int | None:
    """The steps of the run saved at paths when it has done all config asks for, else None."""
    step = saved_state(resume_state_path(paths)).get("step", -1) + 1
    return step if step >= config.max_iters > 0 and paths.last.exists() else None


def assemble(
    config: TrainConfig,
    *,
    rank: dist.Rank,
    paths: RunPaths,
    resume: bool,
    overwrite: bool,
    display: RunDisplay,
    started: float,
) -> Run:
    """A run's parts: the model and its corpus, batches, optimizer, state (resumed or new), writer,
    the loss; said on the display, then put together as one `Run`."""
    device = dist.device_for_rank(pick_device(config.device))
    torch.manual_seed(config.seed + rank.index)  # dropout differs per rank
    generator = torch.Generator().manual_seed(config.seed)  # the batch stream is shared: see own_micro_batches
    notices: list[str] = []  # said once the run is announced
    ckpt, corpus, source = start_from(config, paths, device, resume=resume, notify=notices.append)
    model = ckpt.model
    if rank.is_main and not resume and overwrite:
        clear_run(paths)  # only now: the model to train is loaded and built
    teacher = load_teacher(config.teacher, ckpt, device) if config.teacher else None
    block_size = model.config.block_size
    batch_size = config.batch_size or (batch_size_for(block_size) if config.init_from else FRESH_BATCH_SIZE)
    accum_picked = config.grad_accum is None and rank.world_size > 1
    # what was decided at the start is saved as given: a resume with another process count keeps the batch
    config = replace(config, batch_size=batch_size, grad_accum=config.grad_accum or rank.world_size)
    tokens = load_tokens(corpus, ckpt.tokenizer, lossy=config.lossy, notify=notices.append)
    batches = Batches(tokens, block_size, batch_size, device=device, name=corpus.name)
    once = teacher is not None and (config.teacher_pass or "online") == "once"
    if once:
        check_scores_fit(len(batches.train), model.config.vocab_size)
    optimizer = make_optimizer(
        model, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, config.beta2), kind=config.optimizer
    )
    state = RunState(step=0, end=config.max_iters, decay_iters=config.lr_decay_iters)
    if resume:
        state = resumed_state(paths, ckpt.provenance.get("step"), optimizer, generator, state)
    ddp_model = dist.wrap(model, device)
    if config.compile:
        compile_all([model, *(teacher.models if teacher else [])])
    next_batch = batches.get_at if once else batches.get  # once: the windows' offsets too
    amp = {"bf16": torch.bfloat16, "fp32": None}.get(config.amp, autocast_dtype(device))
    announce(display, config, model, device=device, amp=amp, rank=rank, paths=paths, resume=resume)
    for notice in notices:
        display.note(notice)
    if accum_picked:
        display.note(f"--grad-accum {config.grad_accum}: one micro-batch per process (give --grad-accum to change)")
    return Run(
        config,
        rank=rank,
        device=device,
        amp=amp,
        paths=paths,
        display=display,
        state=state,
        started=started,
        model=model,
        batches=batches,
        optimizer=optimizer,
        ddp_model=ddp_model,
        own_batches=dist.own_micro_batches(lambda: next_batch("train", generator), config.grad_accum, rank),
        loss_fn=distillation_loss(config, teacher, batches, block_size, display),
        metrics=open_metrics_log(
            paths.metrics,
            wandb_config=config.to_dict() if config.wandb else None,
            tensorboard_dir=paths.tensorboard if config.tensorboard else None,
        )
        if rank.is_main
        else MetricsLog([]),
        writer=RunWriter(
            paths, model, ckpt.tokenizer, optimizer, corpus=corpus_record(corpus, source), generator=generator
        )
        if rank.is_main
        else None,
    )


def check_scores_fit(tokens: int, vocab: int) -> None:
    if tokens * vocab * 2 > SCORES_MAX:  # fp16 scores
        raise ScratchGPTError(
            f"--teacher-pass once would hold {tokens * vocab * 2 / 2**30:,.1f} GiB of scores "
            f"({tokens:,} tokens x {vocab:,}); use --teacher-pass online"
        )


def resumed_state(
    paths: RunPaths, step: int | None, optimizer: torch.optim.Optimizer, generator: torch.Generator, fresh: RunState
) -> RunState:
    """fresh (the config's end and decay) with the loop state saved with X.last; the optimizer and
    RNGs restored from it."""
    state_path = resume_state_path(paths)
    rng, saved = load_train_state(state_path, optimizer)
    if saved.get("step") != step:
        raise ScratchGPTError(f"{state_path} is from another step than {paths.last}; cannot resume")
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["batches"])  # the same on every rank, whatever their number
    return replace(
        fresh,
        step=saved.get("step", -1) + 1,
        best_val=saved.get("best_val", math.inf),
        tokens_seen=saved.get("tokens_seen", 0),
        last_eval=dict(saved.get("last_eval", {})),
    )


def compile_all(models: list[torch.nn.Module]) -> None:
    if not hasattr(torch.compiler, "set_stance"):  # new in PyTorch 2.6; evaluation needs it
        raise ScratchGPTError(
            f"--compile needs PyTorch 2.6 or newer, this is {torch.__version__}; upgrade torch or drop --compile"
        )
    for model in models:
        compile_blocks(model)


def announce(
    display: RunDisplay,
    config: TrainConfig,
    model: torch.nn.Module,
    *,
    device: torch.device,
    amp: torch.dtype | None,
    rank: dist.Rank,
    paths: RunPaths,
    resume: bool,
) -> None:
    """What the run trains, where it saves and how."""
    block_size, accum = model.config.block_size, config.grad_accum
    dtype = str(amp or torch.float32).removeprefix("torch.")
    display.note(
        f"{'resuming' if resume else 'training'} {model.num_params():,} parameters into {paths.best}: "
        f"{config.batch_size * block_size * accum:,} tokens a step ({config.batch_size} x {block_size}"
        + (f" x {accum}" if accum > 1 else "")
        + f"), {device}, {dtype}"
        + (f", {rank.world_size} processes" if rank.world_size > 1 else "")
    )


def distillation_loss(
    config: TrainConfig, teacher: Teacher | None, batches: Batches, block_size: int, display: RunDisplay
) -> Callable[..., torch.Tensor] | None:
    """The loss toward the run's teachers (None: the model's own), their scores of the training
    tokens taken first with --teacher-pass once."""
    if teacher is None:
        return None
    table = None
    if config.teacher_pass == "once":  # before the display starts its clock; Ctrl-C here just stops
        display.note(f"{len(config.teacher)} teacher(s) scoring the {len(batches.train):,} training tokens once")
        table = teacher.score(batches.train, block_size)
    return distillation(teacher, 1.0 if config.distill_weight is None else config.distill_weight, table)
