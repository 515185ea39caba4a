"""--wandb and --tensorboard: a missing package is one line, W&B runs offline, events hold the scalars."""

from __future__ import annotations

import json
import socket
import sys
import types

import pytest

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.cli.train import parse_args, run
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.training import loggers
from scratchgpt.training.run_files import RunPaths

TINY = (
    "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --eval-iters 2 --log-interval 2 "
    "--eval-interval 4 --max-iters 8 --warmup-iters 2 --device cpu"
).split()


def train(tmp_path, *extra):
    return run(parse_args([*TINY, "--out", str(tmp_path / "run.safetensors"), *extra]))


def metrics(tmp_path) -> list[dict]:
    return [json.loads(line) for line in RunPaths.from_out(tmp_path / "run.safetensors").metrics.open()]


MODULES = {"--wandb": ("wandb", "wandb"), "--tensorboard": ("torch.utils.tensorboard", "tensorboard")}


@pytest.mark.parametrize("flag", MODULES)
def test_a_missing_package_is_a_one_line_error_before_any_work(tmp_path, monkeypatch, capsys, flag):
    module, package = MODULES[flag]
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, as if not installed
    message = f"{flag} needs the {package} package: pip install {package}"
    with pytest.raises(ScratchGPTError, match=f"^{message}$"):
        train(tmp_path, flag)
    assert list(tmp_path.iterdir()) == []  # failed before tokenizing, training or writing anything

    code = run_entry_point(main, ["train", *TINY, "--out", str(tmp_path / "run.safetensors"), flag])
    assert code == 1 and capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tmp_path, "--tensorboard")
    events = EventAccumulator(str(tmp_path / "run.tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "train_loss", "val_loss", "lr", "tok_per_s"}
    evals = [m for m in metrics(tmp_path) if "val_loss" in m]
    val = events.Scalars("val_loss")
    assert [e.step for e in val] == [m["step"] for m in evals] == [4, 8]
    assert [e.value for e in val] == pytest.approx([m["val_loss"] for m in evals], rel=1e-6)
    assert [e.step for e in events.Scalars("loss")] == [2, 4, 6, 8]


class FakeWandb(types.ModuleType):
    """Stands in for the wandb package: records init's arguments and every log call."""

    def __init__(self):
        super().__init__("wandb")
        self.init_kwargs: dict = {}
        self.logged: list[tuple[dict, int]] = []
        self.finished = 0

    def init(self, **kwargs):
        self.init_kwargs = kwargs
        return types.SimpleNamespace(
            log=lambda data, step: self.logged.append((data, step)),
            finish=lambda: setattr(self, "finished", self.finished + 1),
        )


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """No WANDB_MODE, no API key, no ~/.netrc, and no network to reach."""
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach W&B")

    monkeypatch.setattr(socket, "create_connection", no_network)


def test_wandb_logs_every_entry_at_its_step_offline_with_the_flags_as_config(tmp_path, monkeypatch, no_wandb_login):
    wandb = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    train(tmp_path, "--wandb")
    assert wandb.init_kwargs["project"] == "scratchgpt" and wandb.init_kwargs["mode"] == "offline"
    assert wandb.init_kwargs["config"]["max_iters"] == 8 and wandb.init_kwargs["config"]["wandb"] is True
    assert wandb.init_kwargs["dir"] == str(tmp_path)
    expected = [({k: v for k, v in m.items() if k != "step"}, m["step"]) for m in metrics(tmp_path)]
    assert wandb.logged == expected and len(expected) == 6  # 4 step lines, 2 evaluations
    assert wandb.finished == 1


def test_wandb_mode_is_offline_without_a_login_and_WANDB_MODE_wins(monkeypatch, no_wandb_login):
    assert loggers.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert loggers.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode() == "disabled"
