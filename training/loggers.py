"""Where `scratchgpt train` sends its metrics: the JSONL file always, W&B and TensorBoard on request.

An entry is one dict per logged step ({"step", "tokens", "loss", "lr", "tok_per_s"}) or evaluation
({"step", "tokens", "train_loss", "val_loss"}). Each sink has `log(entry)` and `close()`. wandb and
tensorboard are imported only when their flag is given; without the package the flag is a user error.
"""

from __future__ import annotations

import importlib
import json
import netrc
import os
import socket
from pathlib import Path
from types import ModuleType

from ..core.errors import ScratchGPTError

WANDB_PROJECT = "scratchgpt"
WANDB_HOST = "api.wandb.ai"
TENSORBOARD_SCALARS = ("loss", "train_loss", "val_loss", "lr", "tok_per_s")


def _import(module: str, flag: str, package: str) -> ModuleType:
    """module, or a ScratchGPTError saying which package flag needs."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ScratchGPTError(f"{flag} needs the {package} package: pip install {package}") from None


def check_installed(*, wandb: bool = False, tensorboard: bool = False) -> None:
    """Raise the missing-package error now, before a run spends minutes tokenizing and building."""
    if wandb:
        _import("wandb", "--wandb", "wandb")
    if tensorboard:
        _import("torch.utils.tensorboard", "--tensorboard", "tensorboard")


class JsonlSink:
    """One JSON object per line, appended (a resumed run continues the same file)."""

    def __init__(self, path: Path):
        self.path = path

    def log(self, entry: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as e:  # disk full, read-only: a user's problem, said in one line
            reason = e.strerror or e
            raise ScratchGPTError(f"could not write {self.path}: {reason}; check the disk and permissions") from e

    def close(self) -> None:
        pass


def wandb_mode() -> str:
    """$WANDB_MODE if set; else "online" when logged in and W&B answers within 2 s, else "offline"."""
    if mode := os.environ.get("WANDB_MODE"):
        return mode
    try:
        logged_in = bool(os.environ.get("WANDB_API_KEY")) or bool(netrc.netrc().authenticators(WANDB_HOST))
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    if not logged_in:
        return "offline"
    try:
        socket.create_connection((WANDB_HOST, 443), timeout=2).close()
    except OSError:
        return "offline"
    return "online"


class WandbSink:
    """A Weights & Biases run in project "scratchgpt"; offline runs are uploaded later with `wandb sync`."""

    def __init__(self, config: dict, *, run_dir: Path):
        wandb = _import("wandb", "--wandb", "wandb")
        run_dir.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(project=WANDB_PROJECT, mode=wandb_mode(), config=config, dir=str(run_dir))

    def log(self, entry: dict) -> None:
        self._run.log({k: v for k, v in entry.items() if k != "step"}, step=entry["step"])

    def close(self) -> None:
        self._run.finish()


class TensorBoardSink:
    """Event files in log_dir with the scalars of TENSORBOARD_SCALARS against the step."""

    def __init__(self, log_dir: Path):
        summary_writer = _import("torch.utils.tensorboard", "--tensorboard", "tensorboard").SummaryWriter
        self._writer = summary_writer(log_dir=str(log_dir))

    def log(self, entry: dict) -> None:
        for name in TENSORBOARD_SCALARS:
            if name in entry:
                self._writer.add_scalar(name, entry[name], global_step=entry["step"])

    def close(self) -> None:
        self._writer.close()


class MetricsLog:
    """Every sink of a run: log() hands an entry to each, and leaving a `with` block closes them."""

    def __init__(self, sinks: list[JsonlSink | WandbSink | TensorBoardSink]):
        self.sinks = sinks

    def log(self, entry: dict) -> None:
        for sink in self.sinks:
            sink.log(entry)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_metrics_log(
    metrics: Path, *, wandb_config: dict | None = None, tensorboard_dir: Path | None = None
) -> MetricsLog:
    """The JSONL file at metrics, plus a W&B run (given its config) and TensorBoard events (given a dir)."""
    sinks: list[JsonlSink | WandbSink | TensorBoardSink] = [JsonlSink(metrics)]
    if wandb_config is not None:
        sinks.append(WandbSink(wandb_config, run_dir=metrics.parent))
    if tensorboard_dir is not None:
        sinks.append(TensorBoardSink(tensorboard_dir))
    return MetricsLog(sinks)
