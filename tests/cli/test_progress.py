"""The training progress display on a terminal: lines that follow the last step come below the bar."""

from __future__ import annotations

import io

from rich.console import Console

from scratchgpt.cli.progress import TrainProgress


def test_the_closing_lines_print_below_the_full_bar_on_a_terminal():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, highlight=False)
    with TrainProgress(3, console=console) as progress:
        for step in range(3):
            progress.step(step, loss=1.0, tokens=100)
        progress.note("step 3: train 1.0000  val 1.0000")
        progress.note("finished 3 steps in 0:00:01")
    out = screen.getvalue()
    assert out.rindex("3/3") < out.index("step 3: train") < out.index("finished 3 steps")
