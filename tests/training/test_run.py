"""training/run.py: what a run tells while it goes (the time left, a long evaluation) and what a
resumed run that has nothing left to do says."""

from __future__ import annotations

import time

import pytest

from scratchgpt.cli.train import cmd_train, parse_args, run
from scratchgpt.training import run as run_module
from scratchgpt.training.pacer import Pacer
from scratchgpt.training.run import SilentDisplay, train
from scratchgpt.training.run_files import RunPaths, saved_config

TINY = (
    "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --log-interval 5 --device cpu --amp fp32".split()
)


class Watched(SilentDisplay):
    """A display that records what the run tells it, and when."""

    def __init__(self):
        self.notes: list[str] = []
        self.etas: list[tuple[float, float]] = []  # (when, seconds left)
        self.evaluating_calls: list[tuple[int, int]] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def set_eta(self, seconds: float) -> None:
        self.etas.append((time.perf_counter(), seconds))

    def evaluating(self, done: int, total: int) -> None:
        self.evaluating_calls.append((done, total))


def test_an_interrupted_run_ends_its_bar_before_the_line_that_says_how_to_resume(tmp_path):
    from scratchgpt.core.interrupt import InterruptFlag

    flag, told = InterruptFlag(), []

    class Stopping(Watched):
        def step(self, step: int, loss: float, tokens: int) -> None:
            flag.requested = step + 1 == 3  # as if Ctrl-C arrived during the third step

        def note(self, text: str) -> None:
            told.append(text)

        def end(self) -> None:
            told.append("<end>")

    args = parse_args([*TINY, "--max-iters", "10", "--out", str(tmp_path / "run.safetensors")])
    summary = train(args.config, display=Stopping(), interrupt=flag)
    assert summary.interrupted and summary.steps == 3
    resume = f"interrupted after step 3; continue with --resume --out {tmp_path / 'run.safetensors'}"
    assert told[told.index(resume) - 1] == "<end>"  # the bar ended first (ending it twice is harmless)


def test_the_time_left_counts_the_steps_and_each_evaluation_the_final_one_included():
    pacer = Pacer(eval_interval=5, eval_seconds=10.0)
    pacer.recent.extend([1.0, 3.0])  # 2 s a step
    assert pacer.seconds_left(3, 10) == 7 * 2 + 2 * 10  # evaluations at 5 and 10
    assert pacer.seconds_left(3, 12) == 9 * 2 + 3 * 10  # at 5, 10 and the end
    assert pacer.seconds_left(5, 5) == 0


@pytest.mark.parametrize("interval, said", [(5, "and 2 evaluations at "), (100, "and 1 evaluation at ")])
def test_a_10_step_run_announces_its_time_with_its_evaluations(tmp_path, interval, said):
    args = parse_args(
        [
            *TINY,
            "--max-iters",
            "10",
            "--eval-interval",
            str(interval),
            "--eval-iters",
            "3",
            "--out",
            str(tmp_path / "run.safetensors"),
        ]
    )
    shown = Watched()
    train(args.config, display=shown)
    announced = [n for n in shown.notes if " s a step and " in n]
    assert len(announced) == 1 and announced[0].startswith("7 steps left at ") and said in announced[0]
    assert ": about " in announced[0]
    assert len(shown.etas) == 8  # from step 3 on, the time left goes to the display at each step
    assert shown.etas[-1][1] == 0.0


def test_an_evaluation_longer_than_its_threshold_is_announced_and_shows_its_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_module, "EVAL_SHOWN_SECONDS", 0.0)  # every evaluation counts as long here
    args = parse_args(
        [*TINY, *"--max-iters 3 --eval-interval 100 --eval-iters 8 --out".split(), str(tmp_path / "run.safetensors")]
    )
    shown = Watched()
    train(args.config, display=shown)
    assert any(n.startswith("step 3: evaluating on 16 batches, about ") for n in shown.notes)
    assert shown.evaluating_calls == [(done, 16) for done in range(2, 17)]
    run(
        parse_args(
            [
                *TINY,
                *"--max-iters 3 --eval-interval 100 --eval-iters 8 --out".split(),
                str(tmp_path / "printed.safetensors"),
            ]
        )
    )
    printed = capsys.readouterr().out  # a pipe gets a line at each quarter
    assert "step 3: evaluating on 16 batches" in printed
    assert [line.strip() for line in printed.splitlines() if "evaluated" in line] == [
        "evaluated 4/16 batches",
        "evaluated 8/16 batches",
        "evaluated 12/16 batches",
    ]


def test_a_short_evaluation_shows_no_progress(tmp_path):
    args = parse_args(
        [*TINY, *"--max-iters 3 --eval-interval 100 --eval-iters 2 --out".split(), str(tmp_path / "run.safetensors")]
    )
    shown = Watched()
    train(args.config, display=shown)
    assert shown.evaluating_calls == [] and not any("evaluating on" in n for n in shown.notes)


def test_resuming_a_finished_run_says_it_is_complete_and_how_to_extend_it(tmp_path, capsys):
    out = tmp_path / "run.safetensors"
    assert cmd_train([*TINY, "--max-iters", "4", "--eval-interval", "2", "--eval-iters", "1", "--out", str(out)]) == 0
    metrics = RunPaths.from_out(out).metrics.read_text()
    capsys.readouterr()
    assert cmd_train(["--resume", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed == f"{out} is complete at step 4; to train it further, run again with --resume and a larger "
        "--max-iters (above 4)\n"
    )
    assert RunPaths.from_out(out).metrics.read_text() == metrics  # not a step run, nothing logged
    summary = run(parse_args(["--resume", "--max-iters", "6", "--out", str(out)]))
    assert summary.steps == 6 and len(summary.train_losses) == 2


@pytest.mark.parametrize("decay, fitted_decay", [(1000, 12), (500, 6)])
def test_max_minutes_fits_a_pinned_lr_decay_to_the_fitted_run_keeping_its_share(
    tmp_path, monkeypatch, capsys, decay, fitted_decay
):
    from scratchgpt.training import pacer
    from scratchgpt.training.loop import Schedule

    monkeypatch.setattr(pacer, "steps_that_fit", lambda *a, **k: 12)
    lrs = []
    real_loop = run_module.train_loop

    def loop(*args, schedule, **kwargs):
        return real_loop(*args, schedule=lambda step: lrs.append(schedule(step)) or lrs[-1], **kwargs)

    monkeypatch.setattr(run_module, "train_loop", loop)
    out = tmp_path / "run.safetensors"
    flags = [
        *"--lr 1e-2 --warmup-iters 2 --min-lr-ratio 0.1 --eval-interval 100 --eval-iters 1 --lr-decay-iters".split(),
        str(decay),
        *"--max-iters 1000 --max-minutes 5".split(),
    ]
    summary = run(parse_args([*TINY, *flags, "--out", str(out)]))
    assert summary.steps == 12
    fitted = Schedule(1e-2, fitted_decay, warmup=2, min_lr_ratio=0.1)
    assert lrs == pytest.approx([fitted(step) for step in range(12)])
    assert lrs[-1] == pytest.approx(1e-3, rel=0.3)  # decayed to about min_lr by the end: the budget held the decay
    assert f"the lr decays over {fitted_decay} steps" in capsys.readouterr().out
    saved = saved_config(out)
    assert (saved.max_iters, saved.lr_decay_iters) == (12, fitted_decay)  # a resume keeps to both
