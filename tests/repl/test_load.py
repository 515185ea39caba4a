"""Under load: many turns and many /train calls leave nothing behind. (bench/repl_load.py gives the
figures for the shipped model: memory and time per input early and late in a long session.)"""

from __future__ import annotations

import gc
import os
import tracemalloc
import warnings

import pytest
import torch

from scratchgpt.cli.console import make_console

PROMPTS = ["ROMEO:", "", "What light through yonder window breaks?", "/len 8"]


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on torch.distributed's deprecated reduce_op warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


@pytest.fixture
def repl(drive):
    """One REPL (the banner shown), its output discarded: lines go through `handle`, as typed ones do."""
    driven = drive("\x04")
    with open(os.devnull, "w") as devnull:
        driven.repl.console = make_console(devnull)
        yield driven.repl


def python_growth(repl, lines: list[str]) -> int:
    """Bytes of Python memory still held after handling lines, beyond what was held before."""
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for line in lines:
            repl.handle(line)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_hundreds_of_turns_keep_the_same_tensors_and_flat_python_memory(repl):
    session = repl.session
    session.settings.max_new_tokens = 8
    for i in range(40):  # past the kept conversation, so its size is steady from here on
        repl.handle(PROMPTS[i % 4])
    tensors = live_tensors()
    grown = python_growth(repl, [PROMPTS[i % 4] for i in range(300)])
    assert session.turn > 250 and len(session.conversation.ids) <= session.conversation.kept_tokens
    assert live_tensors() == tensors
    assert grown < 64 * 1024, f"Python memory grew by {grown:,} bytes over 300 inputs"


def test_back_to_back_train_calls_leave_no_tensors_gradients_or_optimizer_state(repl):
    session = repl.session
    repl.handle("/train 2")
    tensors = live_tensors()
    grown = python_growth(repl, ["/train 2"] * 25)
    assert session.steps_trained == 52
    assert live_tensors() == tensors  # no optimizer moments, copies of the model or batches kept
    assert all(p.grad is None for p in session.ckpt.model.parameters())
    assert grown < 64 * 1024, f"Python memory grew by {grown:,} bytes over 25 /train calls"
