"""`scratchgpt train` (and `torchrun -m scratchgpt.train`): one training run, flags to checkpoints.

Files of a run with `--out X.safetensors`:
    X.safetensors               best validation loss so far (what eval, sample and the REPL load)
    X.last.safetensors          the latest state, written at every evaluation and on Ctrl-C
    X.last.optim.safetensors    optimizer moments, RNG states and counters, for an exact --resume
    X.last.optim.pending.safetensors   while a save is under way (see resume_state_path)
    X.metrics.jsonl             one JSON object per logged step and per evaluation
    X.tb/                       TensorBoard event files (with --tensorboard)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .cliutil import SEED_MAX, Parser, is_out_of_memory, real, run_entry_point, shown, whole
from .data import Batches, Corpus, iter_text, load_tokens, resolve_corpus
from .errors import ScratchGPTError
from .loggers import MetricsLog, check_installed, open_metrics_log
from .model import distributed as dist
from .model.checkpoint import (
    Checkpoint,
    checkpoint_metadata,
    load_checkpoint,
    load_tensors,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from .model.device import autocast_dtype, pick_device
from .model.distill import Teacher, distillation
from .model.gpt import ACTIVATIONS, GPT2_LAYOUT, GPTConfig, build_model, compile_blocks, resize_vocab
from .model.trainer import InterruptFlag, Schedule, StepInfo, estimate_loss, make_optimizer, train_loop
from .progress import TrainProgress
from .tokenizers import TOKENIZER_NAMES, fit_tokenizer

# Far beyond what a run on one machine uses, and small enough that nothing overflows or allocates
# without end before the run can say what is wrong (a block size past the corpus is caught later).
WIDTH_MAX = 65_536  # --n-embd, --block-size, --batch-size, --grad-accum
DEPTH_MAX = 1024  # --n-layer, --n-head
STEPS_MAX = 10**9  # --max-iters and the other step counts: years of training
VOCAB_MAX = 1 << 20  # --vocab-size
SCORES_MAX = 4 << 30  # bytes of --teacher-pass once's table of scores


def out_path(text: str) -> str:
    """--out: a file path (its parent is created), not an existing directory."""
    if not text or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"expected a checkpoint file path, got the directory {shown(text or '.')}")
    return text


def build_parser() -> Parser:
    p = Parser(prog="scratchgpt train", description="Train a GPT (or the bigram baseline) on a text corpus.")
    a = p.add_argument
    a("--corpus", default="tinyshakespeare", help="registered corpus name or path to a UTF-8 text file")
    a("--tokenizer", default="char", choices=TOKENIZER_NAMES, help="vocabulary (default: char)")
    a("--vocab-size", type=whole(2, VOCAB_MAX), default=None, help="word tokenizer: words kept (default 8192)")
    a("--arch", default="gpt", choices=("gpt", "gpt2", "bigram"),
      help="model: transformer; gpt2, GPT-2's layout of it (learned positions, biases, tanh GELU, tied head; "
           "with --tokenizer tiktoken GPT-2's full vocabulary, so export --format hf takes it); or bigram")
    a("--n-layer", type=whole(1, DEPTH_MAX), default=6, help="transformer blocks (default 6)")
    a("--n-head", type=whole(1, DEPTH_MAX), default=6, help="attention heads (default 6)")
    a("--n-embd", type=whole(1, WIDTH_MAX), default=384, help="model width (default 384)")
    a("--block-size", type=whole(1, WIDTH_MAX), default=256,
      help="context length in tokens (default 256; with --init-from, the checkpoint's)")  # fmt: skip
    a("--no-rope", dest="rope", action="store_false", help="learned absolute positions instead of RoPE")
    a("--no-qk-norm", dest="qk_norm", action="store_false", help="no RMS norm on queries and keys")
    a("--activation", default="relu2", choices=ACTIVATIONS, help="MLP activation (default relu2)")
    a("--tie-embeddings", action="store_true", help="share token embedding and LM head weights")
    a("--bias", action="store_true", help="biases in Linear layers")
    a("--dropout", type=real(0, 1, high_open=True), default=0.0,
      help="dropout probability (default 0; with --init-from, the checkpoint's)")  # fmt: skip
    a("--attn-dropout", type=real(0, 1, high_open=True), default=None,
      help="dropout on attention weights (default: --dropout's; 0 keeps CPU attention on its fast kernel)")  # fmt: skip
    a("--batch-size", type=whole(1, WIDTH_MAX), default=64, help="sequences per micro-batch (default 64)")
    a("--grad-accum", type=whole(1, WIDTH_MAX), default=1, help="micro-batches per step, summed over ranks")
    a("--max-iters", type=whole(1, STEPS_MAX), default=5000, help="optimizer steps in the whole run")
    a("--lr", type=real(0, 10, low_open=True), default=1e-3, help="peak learning rate (default 1e-3)")
    a("--lr-decay-iters", type=whole(1, STEPS_MAX), help="steps the lr schedule spans (default --max-iters)")
    a("--min-lr-ratio", type=real(0, 1), default=0.1, help="final lr as a fraction of --lr")
    a("--warmup-iters", type=whole(0, STEPS_MAX), default=100, help="linear warmup steps (default 100)")
    a("--schedule", default="cosine", choices=("cosine", "wsd"), help="lr decay after warmup")
    a("--decay-frac", type=real(0, 1, low_open=True), default=0.2,
      help="wsd: the last fraction of steps, where lr decays (default 0.2)")  # fmt: skip
    a("--optimizer", default="adamw", choices=("adamw", "muon"),
      help="adamw, or muon for the blocks' matrices (AdamW for the rest)")  # fmt: skip
    a("--weight-decay", type=real(0, 10), default=0.1, help="weight decay on matrices")
    a("--beta2", type=real(0, 1, high_open=True), default=0.99, help="AdamW beta2 (default 0.99)")
    a("--grad-clip", type=real(0, 1e6), default=1.0, help="clip gradient norm (0 = off)")
    a("--eval-interval", type=whole(1, STEPS_MAX), default=250, help="steps between evaluations")
    a("--eval-iters", type=whole(1, 100_000), default=20, help="batches per split in each evaluation")
    a("--log-interval", type=whole(1, STEPS_MAX), default=10, help="steps between metrics lines")
    a("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    a("--amp", default="auto", choices=("auto", "bf16", "fp32"), help="autocast: auto = bf16 where fast")
    a("--compile", action="store_true", help="torch.compile the blocks: ~30 s once, then faster steps")
    a("--seed", type=whole(0, SEED_MAX), default=1337, help="random seed (default 1337)")
    a("--out", type=out_path, default="out/ckpt.safetensors", help="checkpoint path; siblings hold resume state")
    a("--resume", action="store_true", help="continue the run saved at --out (X.last.*)")
    a("--init-from", metavar="CHECKPOINT", help="fine-tune this checkpoint (grows a char vocabulary)")
    a("--teacher", metavar="CHECKPOINT", action="append",
      help="distil: learn this model's next-token distribution; repeat to average several (one vocab)")  # fmt: skip
    a("--teacher-pass", default="online", choices=("online", "once"),
      help="online: teachers read each training window; once: they score the training split first")  # fmt: skip
    a("--distill-weight", type=real(0, 1), default=1.0,
      help="with --teacher: the loss's share on the teachers' distribution, the rest on the text (1)")  # fmt: skip
    a("--lossy", action="store_true", help="read a corpus that is not valid UTF-8, replacing bad bytes")
    a("--wandb", action="store_true", help="also log to Weights & Biases (offline unless logged in and online)")
    a("--tensorboard", action="store_true", help="also write TensorBoard event files next to --out (X.tb/)")
    a("--debug", action="store_true", help="show tracebacks")
    return p


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


def adapt_to_corpus(ckpt: Checkpoint, corpus: Corpus, *, lossy: bool = False) -> Checkpoint:
    """Grow a char model's vocabulary with the characters a new corpus brings (old ids kept)."""
    if ckpt.tokenizer.name != "char":
        return ckpt
    grown = ckpt.tokenizer.extend(iter_text(corpus, lossy=lossy))
    if grown.vocab_size == ckpt.tokenizer.vocab_size:
        return ckpt
    model = resize_vocab(ckpt.model, grown.vocab_size)
    return Checkpoint(model=model, tokenizer=grown, path=ckpt.path, corpus=ckpt.corpus, train=ckpt.train)


def load_teacher(paths: list[str], student: Checkpoint, device: torch.device) -> Teacher:
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


def _rng_states(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"batches": generator.get_state(), "torch": torch.get_rng_state()}


NOT_RESUMED = {"resume", "out", "debug", "given", "compile"}


def _saved_state(train_state: Path) -> dict:
    """The loop state (step, best val, flags) in a train-state file's metadata."""
    return json.loads(load_tensors(train_state)[1].get("state", "{}"))


def resume_state_path(paths: RunPaths) -> Path:
    """The train-state file that belongs with X.last.safetensors.

    A save writes the train state to the pending path, then X.last, then renames the pending file
    over X.last.optim. Killed after X.last was written but before the rename, the pending file is
    the one whose step matches X.last; killed earlier, X.last.optim still matches. Nothing is
    renamed here, so every rank picks the same file; the resumed run's first save does the rename.
    """
    pending = paths.pending_train_state
    if pending.exists() and paths.last.exists():
        if _saved_state(pending).get("step") == checkpoint_metadata(paths.last)["train"].get("step"):
            return pending
    return paths.train_state


def given_flags(args) -> set[str]:
    """The flags typed on the command line (see parse_args); parsed without it, every flag counts."""
    given = getattr(args, "given", None)
    return set(vars(args)) if given is None else given


def with_saved_flags(args, paths: RunPaths):
    """For --resume: the flags the run was started with, except those given again now."""
    train_state = resume_state_path(paths)
    if not train_state.exists():
        raise ScratchGPTError(f"nothing to resume: {train_state} does not exist; drop --resume to start")
    saved = _saved_state(train_state).get("args", {})
    given = given_flags(args)
    merged = {**vars(args), **{k: v for k, v in saved.items() if k not in given and k not in NOT_RESUMED}}
    return argparse.Namespace(**merged)


def check_writable(directory: Path) -> None:
    """Fail at once, not at the first save an hour later, when no file can be created in directory."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".scratchgpt-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ScratchGPTError(f"cannot write to {directory}: {e.strerror or e}; choose another --out") from e


def run(args, *, interrupt: InterruptFlag | None = None) -> dict:
    """Train as the parsed flags say; returns a summary (steps, losses, paths)."""
    if args.resume:
        args = with_saved_flags(args, RunPaths.from_out(args.out))
    check_installed(wandb=args.wandb, tensorboard=args.tensorboard)
    for name in ("distill_weight", "teacher_pass"):
        if name in getattr(args, "given", ()) and not args.teacher:
            raise ScratchGPTError(f"--{name.replace('_', '-')} sets how a teacher is used; add --teacher CHECKPOINT")
    rank = dist.setup(args.device)
    device = dist.device_for_rank(pick_device(args.device))
    amp = {"bf16": torch.bfloat16, "fp32": None}.get(args.amp, autocast_dtype(device))
    paths = RunPaths.from_out(args.out)
    if rank.is_main:
        check_writable(paths.best.parent)
    torch.manual_seed(args.seed + rank.index)  # dropout differs per rank
    generator = torch.Generator().manual_seed(args.seed)  # the batch stream is shared: see own_batches
    train_state: dict = {}

    if args.resume:
        if not paths.last.exists():
            raise ScratchGPTError(f"nothing to resume: {paths.last} does not exist; drop --resume to start")
        ckpt = load_checkpoint(paths.last, device=device)
        corpus, source = corpus_of(ckpt, None)
    elif args.init_from:
        ckpt = load_checkpoint(args.init_from, device=device)
        corpus, source = corpus_of(ckpt, args.corpus if args.corpus != "tinyshakespeare" else None)
        ckpt = adapt_to_corpus(ckpt, corpus, lossy=args.lossy)
        given = given_flags(args)
        if ckpt.config.arch == "gpt":  # only what is given again overrides the checkpoint's
            changes = {name: getattr(args, name) for name in ("dropout", "attn_dropout") if name in given}
            if changes:
                ckpt.model.set_dropout(**changes)
            if "block_size" in given:
                ckpt.model.set_block_size(args.block_size)
    else:
        corpus, source = resolve_corpus(args.corpus), args.corpus
        gpt2 = args.arch == "gpt2"
        full_gpt2_vocab = gpt2 and args.tokenizer == "tiktoken"  # GPT-2's own ids, as GPT-2 and nanoGPT use
        chunks = None if full_gpt2_vocab else iter_text(corpus, lossy=args.lossy)
        tokenizer = fit_tokenizer(args.tokenizer, chunks, vocab_size=args.vocab_size)
        layout = GPT2_LAYOUT if gpt2 else dict(
            bias=args.bias, rope=args.rope, qk_norm=args.qk_norm, activation=args.activation,
            tie_embeddings=args.tie_embeddings,
        )  # fmt: skip
        config = GPTConfig(
            vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
            n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, attn_dropout=args.attn_dropout,
            arch="gpt" if gpt2 else args.arch, **layout,
        )  # fmt: skip
        try:
            ckpt = Checkpoint(model=build_model(config).to(device), tokenizer=tokenizer)
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            raise ScratchGPTError(
                f"out of memory building the model ({config.approx_params * 4 / 1e9:,.1f} GB of fp32 weights); "
                "reduce --n-embd or --n-layer"
            ) from e
    model, tokenizer, config = ckpt.model, ckpt.tokenizer, ckpt.model.config
    teacher = load_teacher(args.teacher, ckpt, device) if args.teacher else None

    tokens = load_tokens(corpus, tokenizer, lossy=args.lossy)
    batches = Batches(tokens, config.block_size, args.batch_size, device=device, name=corpus.name)
    if teacher and args.teacher_pass == "once":
        n, vocab = len(batches.train), config.vocab_size
        if n * vocab * 2 > SCORES_MAX:  # fp16 scores
            raise ScratchGPTError(f"--teacher-pass once would hold {n * vocab * 2 / 2**30:,.1f} GiB of scores "
                                  f"({n:,} tokens x {vocab:,}); use --teacher-pass online")  # fmt: skip
    optimizer = make_optimizer(
        model, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, args.beta2), kind=args.optimizer
    )
    if args.resume:
        state_path = resume_state_path(paths)
        rng, train_state = load_train_state(state_path, optimizer)
        if train_state.get("step") != ckpt.train.get("step"):
            raise ScratchGPTError(f"{state_path} is from another step than {paths.last}; cannot resume")
        torch.set_rng_state(rng["torch"])
        generator.set_state(rng["batches"])  # the same on every rank, whatever their number
    start = train_state.get("step", -1) + 1
    best_val = train_state.get("best_val", float("inf"))
    tokens_seen = train_state.get("tokens_seen", 0)
    schedule = Schedule(
        args.lr, args.lr_decay_iters or args.max_iters, warmup=args.warmup_iters, min_lr_ratio=args.min_lr_ratio,
        kind=args.schedule, decay_frac=args.decay_frac,
    )  # fmt: skip
    ddp_model = dist.wrap(model, device)
    if args.compile:
        if not hasattr(torch.compiler, "set_stance"):  # new in PyTorch 2.6; evaluation needs it
            raise ScratchGPTError(f"--compile needs PyTorch 2.6 or newer, this is {torch.__version__}; "
                                  "upgrade torch or drop --compile")  # fmt: skip
        for each in [model, *(teacher.models if teacher else [])]:
            compile_blocks(each)
    draw = batches.get_at if teacher and args.teacher_pass == "once" else batches.get  # once: the windows' offsets too
    own_batches = dist.own_micro_batches(lambda: draw("train", generator), args.grad_accum, rank)
    grad_accum = dist.local_grad_accum(args.grad_accum, rank)
    last_losses: dict[str, float] = dict(train_state.get("last_eval", {}))
    train_losses: list[float] = []

    metrics_log = MetricsLog([])  # only rank 0 logs
    if rank.is_main:
        metrics_log = open_metrics_log(
            paths.metrics, wandb_config=vars(args) if args.wandb else None,
            tensorboard_dir=paths.tensorboard if args.tensorboard else None,
        )  # fmt: skip
    record = metrics_log.log

    def save(step: int, progress: TrainProgress) -> None:
        nonlocal best_val
        if not rank.is_main:
            return
        if resume_state_path(paths) == paths.pending_train_state:
            # the run resumed here was killed between its last two renames; finish that save first,
            # or the pending file written below would replace the only train state matching X.last
            os.replace(paths.pending_train_state, paths.train_state)
        meta = {"step": step, "tokens_seen": tokens_seen, "max_iters": args.max_iters, **last_losses}
        meta["val_loss"] = last_losses.get("val")
        record_corpus = corpus_record(corpus, source)
        val = last_losses.get("val", float("inf"))
        improved = val < best_val or not paths.best.exists()
        best_val = min(best_val, val)
        # Each write is atomic, and their order makes a kill -9 between any two harmless: X.last
        # and the train state resume_state_path() picks for it are always from one step.
        if improved:
            save_checkpoint(paths.best, model, tokenizer, corpus=record_corpus, train=meta)
            progress.note(f"step {step + 1}: saved {paths.best} (val {val:.4f})")
        save_train_state(
            paths.pending_train_state, optimizer, rng=_rng_states(generator),
            state={"step": step, "best_val": best_val, "tokens_seen": tokens_seen, "last_eval": last_losses,
                   "args": {k: v for k, v in vars(args).items() if k not in NOT_RESUMED}},
        )  # fmt: skip
        try:
            save_checkpoint(paths.last, model, tokenizer, corpus=record_corpus, train=meta)
        except BaseException:
            paths.pending_train_state.unlink(missing_ok=True)  # a failed save leaves only the previous files
            raise
        os.replace(paths.pending_train_state, paths.train_state)

    def evaluate(step: int, progress: TrainProgress) -> None:
        # --compile: evaluation runs eager rather than building a second, no-grad graph
        with torch.compiler.set_stance("force_eager") if args.compile else contextlib.nullcontext():
            losses = estimate_loss(
                model, lambda split, g: batches.get(split, g), iters=args.eval_iters, seed=args.seed, amp_dtype=amp
            )
        last_losses.update({"train": losses["train"], "val": losses["val"]})
        progress.note(f"step {step + 1}: train {losses['train']:.4f}  val {losses['val']:.4f}")
        record({"step": step + 1, "tokens": tokens_seen, "train_loss": losses["train"], "val_loss": losses["val"]})

    t0 = time.perf_counter()
    progress_bar = TrainProgress(args.max_iters, start=start, every=args.log_interval, quiet=not rank.is_main)
    loss_fn = None
    if teacher:
        table = None
        if args.teacher_pass == "once":  # before the bar starts its clock; Ctrl-C here just stops
            progress_bar.note(f"{len(args.teacher)} teacher(s) scoring the {len(batches.train):,} training tokens once")
            table = teacher.score(batches.train, config.block_size)
        loss_fn = distillation(teacher, args.distill_weight, table)
    flag = interrupt or InterruptFlag()
    with flag.active(), progress_bar as progress, metrics_log:

        def on_step(info: StepInfo) -> None:
            nonlocal tokens_seen
            tokens_seen += info.tokens * rank.world_size
            train_losses.append(info.loss)
            progress.step(info.step, info.loss, info.tokens * rank.world_size)
            if (info.step + 1) % args.log_interval == 0:
                record({"step": info.step + 1, "tokens": tokens_seen, "loss": info.loss, "lr": info.lr,
                        "tok_per_s": round(progress.tokens_per_second)})  # fmt: skip
            if (info.step + 1) % args.eval_interval == 0 or info.step + 1 == args.max_iters:
                evaluate(info.step, progress)
                save(info.step, progress)

        try:
            last = train_loop(
                ddp_model, optimizer, lambda: next(own_batches),
                steps=range(start, args.max_iters), schedule=schedule, grad_clip=args.grad_clip,
                grad_accum=grad_accum, amp_dtype=amp, on_step=on_step, interrupt=flag,
                backward_context=dist.no_sync_context(ddp_model, grad_accum),
                loss_fn=loss_fn,
            )  # fmt: skip
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            raise ScratchGPTError(
                f"out of memory training on {args.batch_size} sequences of {config.block_size} tokens at a time; "
                "reduce --batch-size (a larger --grad-accum keeps the batch) or --block-size, or the model"
            ) from e
        if flag.requested and last is not None:
            evaluate(last, progress)
            save(last, progress)
            progress.note(f"interrupted after step {last + 1}; continue with --resume --out {args.out}")
    dist.teardown()
    return {
        "steps": (last + 1) if last is not None else start,
        "train_losses": train_losses,
        "val": last_losses.get("val"),
        "best": str(paths.best),
        "seconds": time.perf_counter() - t0,
        "tokens_per_second": progress.tokens_per_second,
        "interrupted": flag.requested,
        "model": model,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse flags and note which were given, so --resume keeps the saved ones for the rest."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    args.given = set(vars(parser.parse_args(argv)))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    return run_entry_point(main, argv)


if __name__ == "__main__":
    raise SystemExit(cli())
