"""A run's files: where they live, what a new run may replace, the order a save writes them in,
and the lock that makes one process their owner while it trains.

Files of a run with `--out X.safetensors`:
    X.safetensors               best validation loss so far (what eval, sample and the REPL load)
    X.last.safetensors          the latest state: at every evaluation, every --save-every minutes, on a signal
    X.last.optim.safetensors    optimizer moments, RNG states, counters and the run's config, for --resume
    X.last.optim.pending.safetensors   while a save is under way (see resume_state_path)
    X.metrics.jsonl             one JSON object per logged step and per evaluation, of this run only
    X.tb/                       TensorBoard event files (with --tensorboard)
    X.lock                      while a process trains into X: locked by it, holding its pid
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import ScratchGPTError
from ..core.text import quoted_arg
from ..model.checkpoint import PROVENANCE_KEY, check_replaceable, header_metadata, save_checkpoint, save_train_state
from ..tokenizers import Tokenizer
from .config import TrainConfig

try:  # POSIX; Windows locks a byte range through msvcrt instead
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None
    import msvcrt


@dataclass(frozen=True)
class RunPaths:
    best: Path
    last: Path
    train_state: Path
    pending_train_state: Path
    metrics: Path
    tensorboard: Path
    lock: Path

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
            lock=Path(f"{stem}.lock"),
        )


def header_json(path: Path, key: str) -> dict:
    """One JSON entry of a safetensors file's metadata, read from its header alone: resuming and
    checking an --out never read a checkpoint's weights or a train state's optimizer moments."""
    return json.loads(header_metadata(path).get(key) or "{}")


def saved_state(train_state: Path) -> dict:
    """The loop state (step, best val, config) in a train-state file's metadata."""
    return header_json(train_state, "state")


def resume_state_path(paths: RunPaths) -> Path:
    """The train-state file that belongs with X.last.safetensors.

    A save writes the train state to the pending path, then X.last, then renames the pending file
    over X.last.optim (see RunWriter). Killed after X.last was written but before the rename, the
    pending file is the one whose step matches X.last; killed earlier, X.last.optim still matches.
    Nothing is renamed here, so every rank picks the same file; the resumed run's first save does
    the rename.
    """
    pending = paths.pending_train_state
    if pending.exists() and paths.last.exists():
        if saved_state(pending).get("step") == header_json(paths.last, PROVENANCE_KEY).get("step"):
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
    state = saved_state(train_state)
    values = state.get("config")
    if values is None:  # a train state of the older format holds its flags ("args"), under the same names
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
        provenance = header_json(path, PROVENANCE_KEY)
        if found is None or path == paths.last:
            val = provenance.get("val_loss")
            found = f"step {provenance.get('step', -1) + 1}"
            found += f", val {val:.4f}" if isinstance(val, (int, float)) else ""
    if found is None and (paths.train_state.exists() or paths.metrics.exists()):
        found = "its metrics and resume state, no checkpoint yet"
    return found


def _resumable(paths: RunPaths) -> bool:
    """Whether paths hold a run --resume continues: its latest state and optimizer moments."""
    return paths.last.exists() and resume_state_path(paths).exists()


def _model_not_run(paths: RunPaths, found: str) -> str:
    """The refusal for an --out holding a checkpoint with no train state (a /save, an export): a model, not a run."""
    return (
        f"{paths.best} holds a model ({found}) but no run to resume; start from it with --init-from "
        f"{paths.best} and another --out, or replace it with --overwrite"
    )


def claim_out(config: TrainConfig, paths: RunPaths, *, overwrite: bool) -> None:
    """Before a fresh run: refuse an --out that holds another run, unless overwrite.

    Whatever the flags, the checkpoint being fine-tuned is never replaced, nor a file in the run's
    place that is not a ScratchGPT checkpoint. With overwrite, `clear_run` removes the old run
    once the new model is ready.
    """
    if config.init_from and Path(config.init_from).resolve() in {p.resolve() for p in (paths.best, paths.last)}:
        raise ScratchGPTError(
            f"--out {quoted_arg(config.out)} would replace the checkpoint --init-from starts from; choose another --out"
        )
    found = describe_run(paths)
    if found is not None and not overwrite and not _resumable(paths):
        raise ScratchGPTError(_model_not_run(paths, found))
    if found is not None and not overwrite:
        raise ScratchGPTError(
            f"{paths.best} already holds a run ({found}); continue it with --resume, or replace it with --overwrite"
        )


def clear_run(paths: RunPaths) -> None:
    """Remove a run's files, so the new run at the same place starts a new metrics file: one file
    never mixes two runs. The lock stays: the new run holds it."""
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


class RunLock:
    """One process owns a run's files while it trains: it holds an exclusive lock on X.lock, which
    names its pid, and removes the file when it ends. The operating system drops the lock of a
    process that dies (kill -9), so a file left behind never blocks a later run."""

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        path = self.paths.lock
        while self._fd is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise ScratchGPTError(f"cannot write to {path.parent}: {e.strerror or e}; choose another --out") from e
            if not _try_lock(fd):
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ScratchGPTError(
                    f"{self.paths.best} is being trained by another run (pid {holder}); "
                    "wait for it to end, or choose another --out"
                )
            if _names(path, fd):
                self._fd = fd
            else:  # locked a file its owner removed on ending: lock the one at path now
                os.close(fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        if fcntl is None:  # pragma: no cover - Windows removes no open file
            os.close(self._fd)
        with contextlib.suppress(OSError):  # a directory turned read-only keeps the file, unlocked
            self.paths.lock.unlink(missing_ok=True)  # while still locked: a waiter then finds it gone
        if fcntl is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
        self._fd = None


def _names(path: Path, fd: int) -> bool:
    """Whether path still names the file open as fd."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (opened.st_dev, opened.st_ino)


def _try_lock(fd: int) -> bool:
    """Lock fd's file for this process without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


@dataclass(frozen=True)
class SavedStep:
    """What one save records beside the weights."""

    step: int  # the step just finished, 0-based
    tokens_seen: int
    best_val: float  # the best validation loss up to and including this save
    last_eval: dict[str, float]  # {"train", "val"} of the latest evaluation, or {}
    config: TrainConfig


class RunWriter:
    """Saves a run so that a kill -9 between any two writes is harmless.

    Each write is atomic, and the order is: X.safetensors when the model improved, the train state
    to its pending path, X.last, then the pending train state renamed over X.last.optim. X.last and
    the train state `resume_state_path` picks for it are therefore always from one step.
    """

    def __init__(
        self,
        paths: RunPaths,
        model: torch.nn.Module,
        tokenizer: Tokenizer,
        optimizer: torch.optim.Optimizer,
        *,
        corpus: dict,
        generator: torch.Generator,
    ):
        self.paths, self.model, self.tokenizer, self.optimizer = paths, model, tokenizer, optimizer
        self.corpus, self.generator = corpus, generator

    def save(self, saved: SavedStep, *, best: bool) -> None:
        paths = self.paths
        if resume_state_path(paths) == paths.pending_train_state:
            # the run resumed here was killed between its last two renames; finish that save first,
            # or the pending file written below would replace the only train state matching X.last
            os.replace(paths.pending_train_state, paths.train_state)
        meta = {
            "step": saved.step,
            "tokens_seen": saved.tokens_seen,
            "max_iters": saved.config.max_iters,
            **saved.last_eval,
            "val_loss": saved.last_eval.get("val"),
        }
        if best:
            save_checkpoint(paths.best, self.model, self.tokenizer, corpus=self.corpus, provenance=meta)
        save_train_state(
            paths.pending_train_state,
            self.optimizer,
            rng={"batches": self.generator.get_state(), "torch": torch.get_rng_state()},
            state={
                "step": saved.step,
                "best_val": saved.best_val,
                "tokens_seen": saved.tokens_seen,
                "last_eval": saved.last_eval,
                "config": saved.config.to_dict(),
            },
        )
        try:
            save_checkpoint(paths.last, self.model, self.tokenizer, corpus=self.corpus, provenance=meta)
        except BaseException:
            paths.pending_train_state.unlink(missing_ok=True)  # a failed save leaves only the previous files
            raise
        os.replace(paths.pending_train_state, paths.train_state)
