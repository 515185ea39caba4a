"""The training pipeline: `train(config)` for a run, `fine_tune(...)` for the REPL's /train.

Both own the same steps: the corpus, the tokenizer fitted or grown to it, batches, optimizer,
schedule, the loop, evaluation; `train` also owns where a run is saved, what may be replaced, and
what a signal does. `scratchgpt train`, `torchrun -m scratchgpt.train` and `/train` call these,
nothing else assembles training pieces.

Files of a run with `--out X.safetensors`:
    X.safetensors               best validation loss so far (what eval, sample and the REPL load)
    X.last.safetensors          the latest state: at every evaluation, every --save-every minutes, on a signal
    X.last.optim.safetensors    optimizer moments, RNG states, counters and the run's config, for --resume
    X.last.optim.pending.safetensors   while a save is under way (see resume_state_path)
    X.metrics.jsonl             one JSON object per logged step and per evaluation, of this run only
    X.tb/                       TensorBoard event files (with --tensorboard)
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..cliutil import is_out_of_memory, shown, use_threads
from ..data import Batches, Corpus, iter_text, load_tokens, resolve_corpus
from ..errors import ScratchGPTError
from ..interrupt import TRAINING_SIGNALS, InterruptFlag
from ..loggers import MetricsLog, check_installed, open_metrics_log
from ..model.checkpoint import (
    Checkpoint,
    check_replaceable,
    header_metadata,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from ..model.device import autocast_dtype, pick_device
from ..model.gpt import GPT2_LAYOUT, GPTConfig, build_model, compile_blocks, resize_vocab
from ..progress import TrainProgress, clock, duration
from ..tokenizers import fit_tokenizer
from . import distributed as dist
from .budget import plan_train_step, steps_that_fit
from .config import (
    FINE_TUNE_BATCH_TOKENS,
    FINE_TUNE_EVAL_ITERS,
    FRESH_BATCH_SIZE,
    FRESH_BLOCK_SIZE,
    FRESH_DROPOUT,
    TrainConfig,
    heads_for,
)
from .distill import Teacher, distillation
from .loop import Schedule, StepInfo, estimate_loss, make_optimizer, train_loop

SCORES_MAX = 4 << 30  # bytes of --teacher-pass once's table of scores
FINE_TUNE_LR = 3e-4  # low enough not to wreck a trained model in a few hundred steps
ETA_AFTER_STEPS = 3  # the run's first steps, timed to say how long the rest will take
REFIT_STEPS = 50  # --max-minutes: the recent steps whose pace sets how many more fit


@dataclass(frozen=True)
class RunPaths:
    best: Path
    last: Path
    train_state: Path
    pending_train_state: Path
    metrics: Path
    tensorboard: Path

    @classmethod
    def from_out(cls, out: str | Path) -> RunPaths:
        best = Path(out)
        stem = best.with_suffix("") if best.suffix == ".safetensors" else best
        return cls(
            best=best,
            last=Path(f"{stem}.last.safetensors"),
            train_state=Path(f"{stem}.last.optim.safetensors"),
            pending_train_state=Path(f"{stem}.last.optim.pending.safetensors"),
            metrics=Path(f"{stem}.metrics.jsonl"),
            tensorboard=Path(f"{stem}.tb"),
        )


def batch_size_for(block_size: int) -> int:
    """A fine-tune's sequences per step: FINE_TUNE_BATCH_TOKENS tokens, however long the context."""
    return max(1, FINE_TUNE_BATCH_TOKENS // block_size)


# --- corpus and vocabulary ------------------------------------------------------------------


def corpus_record(corpus: Corpus, source: str) -> dict:
    return {"name": corpus.name, "sha256": corpus.sha256, "source": source}


def corpus_of(ckpt: Checkpoint, override: str | None) -> tuple[Corpus, str]:
    """The corpus to keep training a checkpoint on: the one given, else the one it recorded."""
    if override:
        return resolve_corpus(override), override
    if not ckpt.corpus:
        raise ScratchGPTError(f"{ckpt.path} does not record its corpus; pass --corpus")
    source = ckpt.corpus.get("source") or ckpt.corpus["name"]
    corpus = resolve_corpus(source)
    if corpus.sha256 != ckpt.corpus["sha256"]:
        raise ScratchGPTError(f"corpus {source} has changed since {ckpt.path} was trained on it; pass --corpus")
    return corpus, source


def vocab_growth(corpus: str, old: int, new: int) -> str:
    """The line saying a corpus grew a char model's vocabulary (train --init-from and /train say it alike)."""
    return f"{corpus} brought {new - old} new characters: vocabulary {old} → {new}"


def adapt_to_corpus(ckpt: Checkpoint, corpus: Corpus, *, lossy: bool = False) -> Checkpoint:
    """Grow a char model's vocabulary with the characters a new corpus brings (old ids kept)."""
    if ckpt.tokenizer.name != "char":
        return ckpt
    grown = ckpt.tokenizer.extend(iter_text(corpus, lossy=lossy))
    if grown.vocab_size == ckpt.tokenizer.vocab_size:
        return ckpt
    model = resize_vocab(ckpt.model, grown.vocab_size)
    return replace(ckpt, model=model, tokenizer=grown)


def load_teacher(paths: tuple[str, ...], student: Checkpoint, device: torch.device) -> Teacher:
    """--teacher: the checkpoints whose averaged next-token distribution the student learns.

    They must share the student's vocabulary, and their context must cover its windows.
    """
    models = []
    for path in paths:
        ckpt = load_checkpoint(path, device=device)
        if ckpt.tokenizer.spec() != student.tokenizer.spec():
            raise ScratchGPTError(f"teacher {shown(path)} has another vocabulary than the model trained; "
                                  "a teacher must use the same tokenizer and vocabulary")  # fmt: skip
        reads, trains = ckpt.config.block_size, student.config.block_size
        if reads < trains:
            raise ScratchGPTError(f"teacher {shown(path)} reads {reads} tokens at most, the model trains on "
                                  f"{trains}; pass --block-size {reads} or less")  # fmt: skip
        models.append(ckpt.model)
    return Teacher(models)


# --- where a run lives, and what it may replace ----------------------------------------------


def _header_json(path: Path, key: str) -> dict:
    """One JSON entry of a safetensors file's metadata, read from its header alone: resuming and
    checking an --out never read a checkpoint's weights or a train state's optimizer moments."""
    return json.loads(header_metadata(path).get(key) or "{}")


def _saved_state(train_state: Path) -> dict:
    """The loop state (step, best val, config) in a train-state file's metadata."""
    return _header_json(train_state, "state")


def resume_state_path(paths: RunPaths) -> Path:
    """The train-state file that belongs with X.last.safetensors.

    A save writes the train state to the pending path, then X.last, then renames the pending file
    over X.last.optim. Killed after X.last was written but before the rename, the pending file is
    the one whose step matches X.last; killed earlier, X.last.optim still matches. Nothing is
    renamed here, so every rank picks the same file; the resumed run's first save does the rename.
    """
    pending = paths.pending_train_state
    if pending.exists() and paths.last.exists():
        if _saved_state(pending).get("step") == _header_json(paths.last, "train").get("step"):
            return pending
    return paths.train_state


def saved_config(out: str | Path) -> TrainConfig:
    """The config the run at out was started with (what --resume continues)."""
    paths = RunPaths.from_out(out)
    train_state = resume_state_path(paths)
    if not train_state.exists() and paths.best.exists() and not paths.last.exists():
        raise ScratchGPTError(_model_not_run(paths, describe_run(paths) or "no train state"))
    if not train_state.exists():
        raise ScratchGPTError(f"nothing to resume: {train_state} does not exist; drop --resume to start")
    state = _saved_state(train_state)
    values = state.get("config")
    if values is None:  # saved before runs recorded a TrainConfig: their flags, under the same names
        legacy = {k: v for k, v in state.get("args", {}).items() if k in TrainConfig.__dataclass_fields__}
        values = {k: v for k, v in legacy.items() if v is not None or k in ("init_from", "vocab_size")}
        values["teacher"] = tuple(values.get("teacher") or ())
    return TrainConfig.from_dict(values, where=f"the run saved in {train_state}")


def describe_run(paths: RunPaths) -> str | None:
    """'step N, val L' of the run saved at paths, or None when there is none.

    A file in the run's place that is not a ScratchGPT checkpoint is refused whatever the flags:
    nothing a user made is replaced.
    """
    found = None
    for path in (paths.best, paths.last):
        if not path.exists():
            continue
        check_replaceable(path, force=True, how="", other="choose another --out")  # refuses what is no checkpoint
        train = _header_json(path, "train")
        if found is None or path == paths.last:
            val = train.get("val_loss")
            found = f"step {train.get('step', -1) + 1}" + (f", val {val:.4f}" if isinstance(val, (int, float)) else "")
    if found is None and (paths.train_state.exists() or paths.metrics.exists()):
        found = "its metrics and resume state, no checkpoint yet"
    return found


def _resumable(paths: RunPaths) -> bool:
    """Whether paths hold a run --resume continues: its latest state and optimizer moments."""
    return paths.last.exists() and resume_state_path(paths).exists()


def _model_not_run(paths: RunPaths, found: str) -> str:
    """The refusal for an --out holding a checkpoint with no train state (a /save, an export): a model, not a run."""
    return (f"{paths.best} holds a model ({found}) but no run to resume; start from it with --init-from "
            f"{paths.best} and another --out, or replace it with --overwrite")  # fmt: skip


def claim_out(config: TrainConfig, paths: RunPaths, *, overwrite: bool) -> None:
    """Before a fresh run: refuse an --out that holds another run, unless overwrite.

    Whatever the flags, the checkpoint being fine-tuned is never replaced, nor a file in the run's
    place that is not a ScratchGPT checkpoint. With overwrite, `clear_run` removes the old run
    once the new model is ready.
    """
    if config.init_from and Path(config.init_from).resolve() in {p.resolve() for p in (paths.best, paths.last)}:
        raise ScratchGPTError(f"--out {shown(config.out)} would replace the checkpoint --init-from starts from; "
                              "choose another --out")  # fmt: skip
    found = describe_run(paths)
    if found is not None and not overwrite and not _resumable(paths):
        raise ScratchGPTError(_model_not_run(paths, found))
    if found is not None and not overwrite:
        raise ScratchGPTError(f"{paths.best} already holds a run ({found}); continue it with --resume, "
                              "or replace it with --overwrite")  # fmt: skip


def clear_run(paths: RunPaths) -> None:
    """Remove a run's files, so the new run at the same place starts a new metrics file: one file
    never mixes two runs."""
    for path in (paths.best, paths.last, paths.train_state, paths.pending_train_state, paths.metrics):
        path.unlink(missing_ok=True)
    shutil.rmtree(paths.tensorboard, ignore_errors=True)


def check_writable(directory: Path) -> None:
    """Fail at once, not at the first save an hour later, when no file can be created in directory."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".scratchgpt-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ScratchGPTError(f"cannot write to {directory}: {e.strerror or e}; choose another --out") from e


def _rng_states(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"batches": generator.get_state(), "torch": torch.get_rng_state()}


# --- a run --------------------------------------------------------------------------------------


def _fresh_model(config: TrainConfig, corpus: Corpus, device: torch.device) -> Checkpoint:
    gpt2 = config.arch == "gpt2"
    full_gpt2_vocab = gpt2 and config.tokenizer == "tiktoken"  # GPT-2's own ids, as GPT-2 and nanoGPT use
    chunks = None if full_gpt2_vocab else iter_text(corpus, lossy=config.lossy)
    tokenizer = fit_tokenizer(config.tokenizer, chunks, vocab_size=config.vocab_size)
    layout = GPT2_LAYOUT if gpt2 else dict(
        bias=config.bias, rope=config.rope, qk_norm=config.qk_norm, activation=config.activation,
        tie_embeddings=config.tie_embeddings,
    )  # fmt: skip
    model_config = GPTConfig(
        vocab_size=tokenizer.vocab_size, block_size=config.block_size or FRESH_BLOCK_SIZE, n_layer=config.n_layer,
        n_head=heads_for(config.n_embd, config.n_head), n_embd=config.n_embd,
        dropout=FRESH_DROPOUT if config.dropout is None else config.dropout, attn_dropout=config.attn_dropout,
        arch="gpt" if gpt2 else config.arch, **layout,
    )  # fmt: skip
    try:
        return Checkpoint(model=build_model(model_config).to(device), tokenizer=tokenizer)
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise ScratchGPTError(
            f"out of memory building the model ({model_config.approx_params * 4 / 1e9:,.1f} GB of fp32 weights); "
            "reduce --n-embd or --n-layer"
        ) from e


def _start_from(config: TrainConfig, paths: RunPaths, device: torch.device, resume: bool,
                notify: Callable[[str], None]):  # fmt: skip
    """The checkpoint a run trains (resumed, fine-tuned or new) and its corpus."""
    if resume:
        if not paths.last.exists():
            raise ScratchGPTError(f"nothing to resume: {paths.last} does not exist; drop --resume to start")
        ckpt = load_checkpoint(paths.last, device=device)
        corpus, source = corpus_of(ckpt, None)
        return ckpt, corpus, source
    if config.init_from:
        ckpt = load_checkpoint(config.init_from, device=device)
        corpus, source = corpus_of(ckpt, config.corpus if config.corpus != "tinyshakespeare" else None)
        old = ckpt.tokenizer.vocab_size
        ckpt = adapt_to_corpus(ckpt, corpus, lossy=config.lossy)
        if ckpt.tokenizer.vocab_size != old:
            notify(vocab_growth(corpus.name, old, ckpt.tokenizer.vocab_size))
        if ckpt.config.arch == "gpt":  # only what is given overrides the checkpoint's
            changes = {k: getattr(config, k) for k in ("dropout", "attn_dropout") if getattr(config, k) is not None}
            if changes:
                ckpt.model.set_dropout(**changes)
            if config.block_size is not None:
                ckpt.model.set_block_size(config.block_size)
        return ckpt, corpus, source
    corpus = resolve_corpus(config.corpus)
    return _fresh_model(config, corpus, device), corpus, config.corpus


def train(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, interrupt: InterruptFlag | None = None
) -> dict:
    """Train as config says; returns a summary (steps, losses, paths, exit_status).

    resume continues the run saved at config.out (pass its `saved_config`, with any changes);
    overwrite replaces a run found there instead of refusing to start. Ctrl-C, SIGTERM and SIGHUP
    stop it between two steps; it evaluates, saves, and the summary's exit_status is the signal's.
    """
    started = time.perf_counter()  # the wall time the run reports counts its set-up and compilation too
    minutes = config.max_minutes
    deadline = started + minutes * 60 if minutes else None
    check_installed(wandb=config.wandb, tensorboard=config.tensorboard)
    if not config.teacher:
        for name in ("distill_weight", "teacher_pass"):
            if getattr(config, name) is not None:
                raise ScratchGPTError(f"--{name.replace('_', '-')} sets how a teacher is used; "
                                      "add --teacher CHECKPOINT")  # fmt: skip
    teacher_pass = config.teacher_pass or "online"
    use_threads(config.threads)
    rank = dist.setup(config.device)
    device = dist.device_for_rank(pick_device(config.device))
    amp = {"bf16": torch.bfloat16, "fp32": None}.get(config.amp, autocast_dtype(device))
    paths = RunPaths.from_out(config.out)
    grad_accum_total = config.grad_accum or rank.world_size
    accum_picked = config.grad_accum is None and rank.world_size > 1
    dist.local_grad_accum(grad_accum_total, rank)  # an indivisible --grad-accum fails before any work
    if rank.is_main:
        if not resume:
            claim_out(config, paths, overwrite=overwrite)
        check_writable(paths.best.parent)
    torch.manual_seed(config.seed + rank.index)  # dropout differs per rank
    generator = torch.Generator().manual_seed(config.seed)  # the batch stream is shared: see own_micro_batches
    train_state: dict = {}

    notices: list[str] = []  # said once the progress display is up
    ckpt, corpus, source = _start_from(config, paths, device, resume, notify=notices.append)
    if rank.is_main and not resume and overwrite:
        clear_run(paths)  # only now: the model to train is loaded and built
    model, tokenizer, model_config = ckpt.model, ckpt.tokenizer, ckpt.model.config
    teacher = load_teacher(config.teacher, ckpt, device) if config.teacher else None
    batch_size = config.batch_size or (batch_size_for(model_config.block_size) if config.init_from
                                       else FRESH_BATCH_SIZE)  # fmt: skip
    # what was decided at the start is saved as given: a resume with another process count keeps the batch
    config = replace(config, batch_size=batch_size, grad_accum=grad_accum_total)

    tokens = load_tokens(corpus, tokenizer, lossy=config.lossy, notify=notices.append)
    batches = Batches(tokens, model_config.block_size, batch_size, device=device, name=corpus.name)
    if teacher and teacher_pass == "once":
        n, vocab = len(batches.train), model_config.vocab_size
        if n * vocab * 2 > SCORES_MAX:  # fp16 scores
            raise ScratchGPTError(f"--teacher-pass once would hold {n * vocab * 2 / 2**30:,.1f} GiB of scores "
                                  f"({n:,} tokens x {vocab:,}); use --teacher-pass online")  # fmt: skip
    optimizer = make_optimizer(
        model, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, config.beta2), kind=config.optimizer
    )
    if resume:
        state_path = resume_state_path(paths)
        rng, train_state = load_train_state(state_path, optimizer)
        if train_state.get("step") != ckpt.train.get("step"):
            raise ScratchGPTError(f"{state_path} is from another step than {paths.last}; cannot resume")
        torch.set_rng_state(rng["torch"])
        generator.set_state(rng["batches"])  # the same on every rank, whatever their number
    start = train_state.get("step", -1) + 1
    best_val = train_state.get("best_val", float("inf"))
    tokens_seen = train_state.get("tokens_seen", 0)

    def make_schedule() -> Schedule:
        return Schedule(
            config.lr, config.lr_decay_iters or config.max_iters, warmup=config.warmup_iters,
            min_lr_ratio=config.min_lr_ratio, kind=config.schedule, decay_frac=config.decay_frac,
        )  # fmt: skip

    schedule = make_schedule()
    ddp_model = dist.wrap(model, device)
    if config.compile:
        if not hasattr(torch.compiler, "set_stance"):  # new in PyTorch 2.6; evaluation needs it
            raise ScratchGPTError(f"--compile needs PyTorch 2.6 or newer, this is {torch.__version__}; "
                                  "upgrade torch or drop --compile")  # fmt: skip
        for each in [model, *(teacher.models if teacher else [])]:
            compile_blocks(each)
    draw = batches.get_at if teacher and teacher_pass == "once" else batches.get  # once: the windows' offsets too
    own_batches = dist.own_micro_batches(lambda: draw("train", generator), grad_accum_total, rank)
    grad_accum = dist.local_grad_accum(grad_accum_total, rank)
    last_losses: dict[str, float] = dict(train_state.get("last_eval", {}))
    train_losses: list[float] = []

    metrics_log = MetricsLog([])  # only rank 0 logs
    if rank.is_main:
        metrics_log = open_metrics_log(
            paths.metrics, wandb_config=config.to_dict() if config.wandb else None,
            tensorboard_dir=paths.tensorboard if config.tensorboard else None,
        )  # fmt: skip
    record = metrics_log.log
    saved_at = time.monotonic()

    def save(step: int, progress: TrainProgress, *, evaluated: bool = True) -> None:
        nonlocal best_val, saved_at
        saved_at = time.monotonic()
        if not rank.is_main:
            return
        if resume_state_path(paths) == paths.pending_train_state:
            # the run resumed here was killed between its last two renames; finish that save first,
            # or the pending file written below would replace the only train state matching X.last
            os.replace(paths.pending_train_state, paths.train_state)
        meta = {"step": step, "tokens_seen": tokens_seen, "max_iters": config.max_iters, **last_losses}
        meta["val_loss"] = last_losses.get("val")
        record_corpus = corpus_record(corpus, source)
        val = last_losses.get("val", float("inf"))
        improved = evaluated and (val < best_val or not paths.best.exists())
        best_val = min(best_val, val) if evaluated else best_val
        # Each write is atomic, and their order makes a kill -9 between any two harmless: X.last
        # and the train state resume_state_path() picks for it are always from one step.
        if improved:
            save_checkpoint(paths.best, model, tokenizer, corpus=record_corpus, train=meta)
            progress.note(f"step {step + 1}: saved {paths.best} (val {val:.4f})")
        save_train_state(
            paths.pending_train_state, optimizer, rng=_rng_states(generator),
            state={"step": step, "best_val": best_val, "tokens_seen": tokens_seen, "last_eval": last_losses,
                   "config": config.to_dict()},
        )  # fmt: skip
        try:
            save_checkpoint(paths.last, model, tokenizer, corpus=record_corpus, train=meta)
        except BaseException:
            paths.pending_train_state.unlink(missing_ok=True)  # a failed save leaves only the previous files
            raise
        os.replace(paths.pending_train_state, paths.train_state)
        if not evaluated:
            progress.note(f"step {step + 1}: saved {paths.last} ({config.save_every:g}-minute save)")

    def eval_losses(iters: int, splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
        # --compile: evaluation runs eager rather than building a second, no-grad graph
        with torch.compiler.set_stance("force_eager") if config.compile else contextlib.nullcontext():
            return estimate_loss(model, lambda split, g: batches.get(split, g), iters=iters, seed=config.seed,
                                 amp_dtype=amp, splits=splits)  # fmt: skip

    def evaluate(step: int, progress: TrainProgress) -> None:
        losses = eval_losses(config.eval_iters)
        last_losses.update({"train": losses["train"], "val": losses["val"]})
        progress.note(f"step {step + 1}: train {losses['train']:.4f}  val {losses['val']:.4f}")
        record({"step": step + 1, "tokens": tokens_seen, "train_loss": losses["train"], "val_loss": losses["val"]})

    t0 = time.perf_counter()
    progress_bar = TrainProgress(config.max_iters, start=start, every=config.log_interval, quiet=not rank.is_main)
    step_tokens = batch_size * model_config.block_size * grad_accum_total
    dtype = str(amp or torch.float32).removeprefix("torch.")
    progress_bar.note(
        f"{'resuming' if resume else 'training'} {model.num_params():,} parameters into {paths.best}: "
        f"{step_tokens:,} tokens a step ({batch_size} x {model_config.block_size}"
        + (f" x {grad_accum_total}" if grad_accum_total > 1 else "") + f"), {device}, {dtype}"
        + (f", {rank.world_size} processes" if rank.world_size > 1 else "")
    )
    for notice in notices:
        progress_bar.note(notice)
    if accum_picked:
        progress_bar.note(f"--grad-accum {grad_accum_total}: one micro-batch per process (give --grad-accum to change)")
    loss_fn = None
    if teacher:
        table = None
        if teacher_pass == "once":  # before the bar starts its clock; Ctrl-C here just stops
            progress_bar.note(f"{len(config.teacher)} teacher(s) scoring the {len(batches.train):,} training "
                              "tokens once")  # fmt: skip
            table = teacher.score(batches.train, model_config.block_size)
        loss_fn = distillation(teacher, 1.0 if config.distill_weight is None else config.distill_weight, table)
    flag = interrupt or InterruptFlag()
    agreed = dist.AgreedInterrupt(flag, device)  # every process stops after the same step
    step_times: list[float] = []

    def end_at(total: int, progress: TrainProgress) -> None:
        """The run now ends after step `total` (1-based), as --max-minutes decided."""
        nonlocal config, schedule
        config = replace(config, max_iters=total, max_minutes=None)  # what is saved, so a resume keeps to it
        schedule = make_schedule()
        progress.set_total(total)

    most_steps = config.max_iters  # --max-minutes fits the steps under --max-iters
    walls: list[float] = []  # each step's wall time but on_step's, the first (compiling) left out
    fitted: dict[str, float] = {}  # --max-minutes: "eval_seconds", once measured

    def fit_to_deadline(done: int, progress: TrainProgress) -> None:
        """Set the run's end to the steps that still fit before the deadline, at the pace of the
        recent steps: first after ETA_AFTER_STEPS, then again at each --log-interval step, as the
        pace moves (the machine's load, a save) and while the end is still ahead."""
        first = "eval_seconds" not in fitted
        if first:
            t0 = time.perf_counter()
            eval_losses(1, splits=("val",))  # an evaluation's cost, measured: one batch of the 2 x --eval-iters
            fitted["eval_seconds"] = 2 * config.eval_iters * (time.perf_counter() - t0)
        recent = walls[-REFIT_STEPS:]
        per_step = sum(recent) / len(recent)  # a mean: the time left is spent on their sum
        total = steps_that_fit(deadline - time.perf_counter(), step_seconds=per_step,
                               eval_seconds=fitted["eval_seconds"], done=done, eval_interval=config.eval_interval,
                               most=most_steps)  # fmt: skip
        total = dist.agreed_min(total, device)  # every rank ends on the same step
        if total != config.max_iters:
            end_at(total, progress)
        if first:
            capped = " (--max-iters)" if total == most_steps else ""
            progress.note(f"{per_step:.2f} s a step: {total:,} steps{capped} in all fit --max-minutes {minutes:g}, "
                          f"evaluations included (one {fitted['eval_seconds']:.1f} s)")  # fmt: skip
        elif total == done:
            progress.note(f"step {done}: --max-minutes {minutes:g} is up; ending here")

    def planned_steps():
        step = start
        while step < config.max_iters:  # end_at may bring the end closer while the run goes
            yield step
            step += 1

    with flag.active(signals=TRAINING_SIGNALS), progress_bar as progress, metrics_log:

        def on_step(info: StepInfo) -> None:
            nonlocal tokens_seen, stamp
            done = info.step + 1
            if done > start + 1:
                walls.append(time.perf_counter() - stamp)
            tokens_seen += info.tokens * rank.world_size
            train_losses.append(info.loss)
            progress.step(info.step, info.loss, info.tokens * rank.world_size)
            step_times.append(info.seconds)
            left = config.max_iters - done
            if len(step_times) == ETA_AFTER_STEPS and left > 0:
                if deadline is not None:
                    fit_to_deadline(done, progress)
                else:
                    per_step = sorted(step_times[1:])[len(step_times[1:]) // 2]  # the first step warms up
                    progress.note(f"{per_step:.2f} s a step: about {duration(per_step * left)} for the {left:,} "
                                  "steps left")  # fmt: skip
            elif fitted and done % config.log_interval == 0 and left > 0:
                fit_to_deadline(done, progress)
            if done % config.log_interval == 0:
                record({"step": info.step + 1, "tokens": tokens_seen, "loss": info.loss, "lr": info.lr,
                        "tok_per_s": round(progress.tokens_per_second)})  # fmt: skip
            if done % config.eval_interval == 0 or done == config.max_iters:
                evaluate(info.step, progress)
                save(info.step, progress)
            elif config.save_every and time.monotonic() - saved_at >= config.save_every * 60:
                save(info.step, progress, evaluated=False)
            stamp = time.perf_counter()  # a step's pace leaves out this: the fits count evaluations apart

        stamp = time.perf_counter()
        try:
            last = train_loop(
                ddp_model, optimizer, lambda: next(own_batches),
                steps=planned_steps(), schedule=lambda step: schedule(step), grad_clip=config.grad_clip,
                grad_accum=grad_accum, amp_dtype=amp, on_step=on_step, interrupt=agreed,
                backward_context=dist.no_sync_context(ddp_model, grad_accum),
                loss_fn=loss_fn,
            )  # fmt: skip
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            raise ScratchGPTError(
                f"out of memory training on {batch_size} sequences of {model_config.block_size} tokens at a time; "
                "reduce --batch-size (a larger --grad-accum keeps the batch) or --block-size, or the model"
            ) from e
        stopped = agreed.agreed  # what every rank last agreed on: a signal during the last step changes nothing
        if stopped and last is not None:
            evaluate(last, progress)
            save(last, progress)
            progress.note(f"interrupted after step {last + 1}; continue with --resume --out {config.out}")
        elif last is not None:
            progress.note(f"finished {last + 1 - start:,} steps in {clock(time.perf_counter() - started)} "
                          f"(best val {best_val:.4f}, in {paths.best})")  # fmt: skip
    dist.teardown()
    return {
        "steps": (last + 1) if last is not None else start,
        "train_losses": train_losses,
        "val": last_losses.get("val"),
        "best": str(paths.best),
        "seconds": time.perf_counter() - t0,
        "tokens_per_second": progress.tokens_per_second,
        "interrupted": stopped,
        "exit_status": flag.exit_status if stopped else 0,
        "model": model,
    }


# --- a fine-tune in memory (the REPL's /train) -------------------------------------------------


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


def fine_tuned_record(train: dict, *, start: Checkpoint, steps: int, corpus: dict, after: dict | None) -> dict:
    """A checkpoint's train metadata after `steps` more steps on corpus: the new step, the losses
    just measured (or none, when they were not), and where the weights came from."""
    kept = {k: v for k, v in train.items() if k not in ("exported_from", "dtype", "train", "val", "val_loss")}
    record = {**kept, "step": train.get("step", -1) + steps}
    if after is not None:
        record.update(train=after["train"], val=after["val"], val_loss=after["val"])
    history = list(train.get("fine_tunes", []))
    history.append({"from": str(start.path) if start.path else None, "steps": steps, "corpus": corpus["name"]})
    record["fine_tunes"] = history
    return record


def _whole_steps(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """optimizer, its step made all or nothing: the parameters are copied before each step and put
    back if the step raises (a KeyboardInterrupt between two parameter groups, out of memory), so
    the weights are always those before or after a whole step. Costs one copy of the weights."""
    step = optimizer.step
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = [torch.empty_like(p) for p in params]

    @torch.no_grad()
    def whole_step(*args, **kwargs):
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

    optimizer.step = whole_step
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
    will take. A char model meeting new characters grows its vocabulary first (a new model). on_ready(ckpt) is
    called with the checkpoint to be trained when the corpus is ready and the first step is about
    to run, on_step after each step, on_note(text) with what it is doing when that takes a while
    (the token cache rebuilt, the two loss measurements).
    Ctrl-C (through interrupt) stops between steps and keeps the steps done; during the
    measurements it skips them. The losses before and after are measured on the same batches,
    the "before" ones from a copy of the old model, so the first step starts at once.

    Whatever ends training (Ctrl-C, an error, out of memory), the weights are those after the last
    whole step: an optimizer step cut short is undone (see `_whole_steps`) and no gradients are
    left behind.
    """
    corpus = resolve_corpus(source)
    old_vocab = ckpt.tokenizer.vocab_size
    record = corpus_record(corpus, source)
    start = ckpt
    ckpt = replace(adapt_to_corpus(ckpt, corpus), corpus=record)
    model, tokenizer = ckpt.model, ckpt.tokenizer
    device = next(model.parameters()).device
    amp = autocast_dtype(device)
    # a model too big for the usual batch to be quick here gets a smaller one, and is told so
    plan = plan_train_step(model, batch_size=batch_size_for(model.config.block_size), device=device, amp_dtype=amp)
    if plan.shrunk and on_note is not None:
        on_note(plan.describe(steps))
    tokens = load_tokens(corpus, tokenizer, notify=on_note)
    batches = Batches(tokens, plan.window, plan.batch_size, device=device, name=corpus.name)
    before_model = copy.deepcopy(model)
    optimizer = _whole_steps(make_optimizer(model, lr=lr))
    schedule = Schedule(lr, steps, warmup=min(20, steps // 10))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    tokens = 0
    flag = interrupt if interrupt is not None else InterruptFlag()

    def step_done(info: StepInfo) -> None:
        nonlocal tokens
        losses.append(info.loss)
        tokens += info.tokens
        if on_step is not None:
            on_step(info)

    if on_ready is not None:
        on_ready(ckpt)
    t0 = time.perf_counter()
    try:
        with flag.active():
            train_loop(
                model, optimizer, lambda: batches.get("train", generator), steps=range(steps),
                schedule=schedule, amp_dtype=amp, on_step=step_done, interrupt=flag,
            )  # fmt: skip
    finally:
        seconds = time.perf_counter() - t0
        optimizer.zero_grad(set_to_none=True)  # a step cut short leaves no gradient for the next /train
        model.eval()
        del optimizer

    before = after = None
    if losses:
        get = lambda split, g: batches.get(split, g)
        try:
            with flag.active(raise_now=True):
                if on_note is not None:
                    on_note(f"measuring the loss before and after on {eval_iters} batches per split (Ctrl-C skips it)")
                after = estimate_loss(model, get, iters=eval_iters, seed=seed, amp_dtype=amp)
                before = estimate_loss(before_model, get, iters=eval_iters, seed=seed, amp_dtype=amp)
        except KeyboardInterrupt:  # the user wants the prompt back; the losses are only a report
            before = after = None
    del before_model
    train = fine_tuned_record(ckpt.train, start=start, steps=len(losses), corpus=record, after=after)
    return FineTuneReport(
        ckpt=replace(ckpt, train=train) if losses else ckpt, steps=len(losses), requested=steps,
        corpus=corpus.name, losses=losses, before=before, after=after, seconds=seconds,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        grown_vocab=(old_vocab, tokenizer.vocab_size) if tokenizer.vocab_size != old_vocab else None,
    )  # fmt: skip
