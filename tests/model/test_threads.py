"""Decoding's thread count: measured when not given, the user's when given."""

from __future__ import annotations

import pytest
import torch

from scratchgpt.model.engine import Engine
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.threads import choose_decode_threads, fastest_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class StepClock:
    """A clock that only a step moves: each step takes exactly as long as the current thread count
    says, so the choice is tested without the machine's load in the figures."""

    def __init__(self, seconds_by_threads: dict[int, float]):
        self.seconds_by_threads, self.now = seconds_by_threads, 0.0
        self.calls = dict.fromkeys(seconds_by_threads, 0)

    def step(self) -> None:
        self.calls[torch.get_num_threads()] += 1
        self.now += self.seconds_by_threads[torch.get_num_threads()]

    def __call__(self) -> float:
        return self.now


def fastest_of(seconds_by_threads: dict[int, float], candidates: list[int]) -> tuple[int, dict[int, float]]:
    clock = StepClock(seconds_by_threads)
    return fastest_threads(clock.step, candidates, clock=clock)


def test_the_fastest_thread_count_is_chosen_and_left_set():
    best, medians = fastest_of({1: 0.004, 2: 0.001}, [1, 2])
    assert best == 2 == torch.get_num_threads() and medians[2] < medians[1]
    best, _ = fastest_of({1: 0.001, 2: 0.004}, [2, 1])
    assert best == 1 == torch.get_num_threads()


def test_more_threads_must_be_clearly_faster_to_be_chosen():
    best, medians = fastest_of({1: 0.003, 2: 0.0029}, [1, 2])
    assert best == 1 and set(medians) == {1, 2}  # 3% is within the noise: fewer threads leave cores to others


def test_a_count_far_slower_than_the_best_is_dropped_after_one_round():
    clock = StepClock({1: 0.001, 2: 0.02})
    assert fastest_threads(clock.step, [1, 2], clock=clock)[0] == 1
    assert clock.calls[2] == 2  # its warm-up and one timed step: a loaded machine does not pay for many


@pytest.fixture
def engine():
    torch.manual_seed(0)
    return Engine(build_model(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16)))


def test_decoding_measures_its_threads_unless_told(engine, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("scratchgpt.model.threads.cpu_threads", lambda: 2)
    monkeypatch.setattr("scratchgpt.model.threads.DEFAULT_THREADS", 2)
    choice = choose_decode_threads(engine)
    assert choice.reason == "measured" and set(choice.seconds_per_token) == {1, 2}
    assert torch.get_num_threads() == choice.count and "measured per token at load" in choice.describe()
    assert engine.cache.pos == 0 and engine.cache.tokens == []  # the probe left nothing in the cache
    told = choose_decode_threads(engine, 2)
    assert (told.count, told.fixed, torch.get_num_threads()) == (2, True, 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert choose_decode_threads(engine).reason == "OMP_NUM_THREADS"  # the environment's choice stands
