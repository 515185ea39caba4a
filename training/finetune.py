"""A fine-tune in memory: the REPL's /train. No files, no signals of its own; the caller shows
progress through callbacks and decides what to keep."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..core.interrupt import InterruptFlag
from ..data import Batches, load_tokens, resolve_corpus
from ..model.checkpoint import Checkpoint
from ..model.device import autocast_dtype
from .budget import plan_train_step
from .config import FINE_TUNE_EVAL_ITERS
from .loop import Schedule, StepInfo, estimate_loss, make_optimizer, train_loop
from .start import adapt_to_corpus, batch_size_for, corpus_record

FINE_TUNE_LR = 3e-4  # low enough not to wreck a trained model in a few hundred steps


@dataclass(frozen=True)
class FineTuneReport:
    """What one fine-tune did."""

    ckpt: Checkpoint  # the model trained (a grown vocabulary is a new model), its train record updated
    steps: int  # steps finished
    requested: int
    corpus: str
    losses: list[float]  # training loss of each finished step
    before: dict[str, float] | None  # {"train", "val"} losses of the weights before; None if not measured
    after: dict[str, float] | None
    seconds: float
    tokens_per_second: float
    grown_vocab: tuple[int, int] | None  # (old, new) vocabulary size when the corpus brought new characters

    @property
    def interrupted(self) -> bool:
        return self.steps < self.requested


def fine_tuned_record(provenance: dict, *, start: Checkpoint, steps: int, corpus: dict, after: dict | None) -> dict:
    """A checkpoint's provenance after `steps` more steps on corpus: the new step, the losses
    just measured (or none, when they were not), and where the weights came from."""
    dropped = ("exported_from", "dtype", "train", "val", "val_loss")
    kept = {k: v for k, v in provenance.items() if k not in dropped}
    record = {**kept, "step": provenance.get("step", -1) + steps}
    if after is not None:
        record.update(train=after["train"], val=after["val"], val_loss=after["val"])
    history = list(provenance.get("fine_tunes", []))
    history.append({"from": str(start.path) if start.path else None, "steps": steps, "corpus": corpus["name"]})
    record["fine_tunes"] = history
    return record


def _atomic_steps(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """optimizer, its step made all or nothing: the parameters are copied before each step and put
    back if the step raises (a KeyboardInterrupt between two parameter groups, out of memory), so
    the weights are always those before or after a whole step. Costs one copy of the weights."""
    step = optimizer.step
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = [torch.empty_like(p) for p in params]

    @torch.no_grad()
    def atomic_step(*args, **kwargs):
        copied = False
        try:
            for s, p in zip(saved, params, strict=True):
                s.copy_(p)
            copied = True
            return step(*args, **kwargs)
        except BaseException:
            if copied:
                for s, p in zip(saved, params, strict=True):
                    p.copy_(s)
            raise

    optimizer.step = atomic_step
    return optimizer


def fine_tune(
    ckpt: Checkpoint,
    source: str,
    steps: int,
    *,
    seed: int,
    lr: float = FINE_TUNE_LR,
    eval_iters: int = FINE_TUNE_EVAL_ITERS,
    on_ready: Callable[[Checkpoint], None] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    interrupt: InterruptFlag | None = None,
) -> FineTuneReport:
    """Fine-tune ckpt's model in memory for `steps` steps on the corpus source (a name or a path).

    A step takes `batch_size_for(block_size)` sequences, about FINE_TUNE_BATCH_TOKENS tokens; fewer
    on a model too big for that to be quick (see budget.py), with a note saying how long the steps
    will take. A char model meeting new characters grows its vocabulary first (a new model).
    on_ready(ckpt) gets the checkpoint to be trained just before the first step, on_step each
    step, on_note(text) what takes a while (the token cache rebuilt, the loss measurements).
    Ctrl-C (through interrupt) stops between steps and keeps the steps done; during the
    measurements (the same batches before and after, "before" from a copy of the old model) it
    skips them. Whatever ends training, the weights are those after the last whole step.
    """
    corpus = resolve_corpus(source)
    record = corpus_record(corpus, source)
    tuned = replace(adapt_to_corpus(ckpt, corpus), corpus=record)
    model, device = tuned.model, next(tuned.model.parameters()).device
    amp = autocast_dtype(device)
    # a model too big for the usual batch to be quick here gets a smaller one, and is told so
    plan = plan_train_step(model, batch_size=batch_size_for(model.config.block_size), device=device, amp_dtype=amp)
    if plan.shrunk and on_note is not None:
        on_note(plan.describe(steps))
    tokens = load_tokens(corpus, tuned.tokenizer, notify=on_note)
    batches = Batches(tokens, plan.window, plan.batch_size, device=device, name=corpus.name)
    before_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    done: list[StepInfo] = []
    flag = interrupt if interrupt is not None else InterruptFlag()

    def step_done(info: StepInfo) -> None:
        done.append(info)
        if on_step is not None:
            on_step(info)

    if on_ready is not None:
        on_ready(tuned)
    seconds = _train_in_place(
        model, lambda: batches.get("train", generator), steps, lr=lr, amp=amp, on_step=step_done, flag=flag
    )

    def measure(m: torch.nn.Module) -> dict[str, float]:
        return estimate_loss(m, batches.get, iters=eval_iters, seed=seed, amp_dtype=amp)

    before, after = _before_and_after(before_model, model, measure, flag, on_note, eval_iters) if done else (None, None)
    losses = [info.loss for info in done]
    provenance = fine_tuned_record(tuned.provenance, start=ckpt, steps=len(losses), corpus=record, after=after)
    new_vocab, old_vocab = tuned.tokenizer.vocab_size, ckpt.tokenizer.vocab_size
    return FineTuneReport(
        ckpt=replace(tuned, provenance=provenance) if losses else tuned,
        steps=len(losses),
        requested=steps,
        corpus=corpus.name,
        losses=losses,
        before=before,
        after=after,
        seconds=seconds,
        tokens_per_second=sum(info.tokens for info in done) / seconds if seconds > 0 else 0.0,
        grown_vocab=(old_vocab, new_vocab) if new_vocab != old_vocab else None,
    )


def _before_and_after(before_model, model, measure, flag: InterruptFlag, on_note, eval_iters: int):
    """The losses of the weights before and after, on the same batches; (None, None) when Ctrl-C
    skips them: the user wants the prompt back, and the losses are only a report."""
    try:
        with flag.active(raise_now=True):
            if on_note is not None:
                on_note(f"measuring the loss before and after on {eval_iters} batches per split (Ctrl-C skips it)")
            after = measure(model)
            return measure(before_model), after
    except KeyboardInterrupt:
        return None, None


def _train_in_place(model, next_batch, steps: int, *, lr: float, amp, on_step, flag: InterruptFlag) -> float:
    """`steps` steps on model, all or nothing each (see `_atomic_steps`); the seconds they took.
    However training ends, no gradient is left behind and the model is left in eval mode."""
    optimizer = _atomic_steps(make_optimizer(model, lr=lr))
    t0 = time.perf_counter()
    try:
        with flag.active():
            schedule = Schedule(lr, steps, warmup=min(20, steps // 10))
            train_loop(
                model,
                optimizer,
                next_batch,
                steps=range(steps),
                schedule=schedule,
                amp_dtype=amp,
                on_step=on_step,
                interrupt=flag,
            )
    finally:
        optimizer.zero_grad(set_to_none=True)  # a step cut short leaves no gradient for the next /train
        model.eval()
    return time.perf_counter() - t0
