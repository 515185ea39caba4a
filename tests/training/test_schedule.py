"""The learning-rate schedule: warmup, then cosine or warmup-stable-decay (WSD) down to min_lr."""

from __future__ import annotations

import pytest

from scratchgpt.training.loop import Schedule


@pytest.mark.parametrize("kind", ["cosine", "wsd"])
def test_warmup_rises_linearly_to_the_peak(kind):
    s = Schedule(1.0, total_steps=100, warmup=10, kind=kind)
    assert [s(i) for i in range(10)] == pytest.approx([(i + 1) / 10 for i in range(10)])


def test_cosine_falls_from_the_peak_to_min_lr_through_the_midpoint():
    s = Schedule(1.0, total_steps=110, warmup=10, min_lr_ratio=0.1)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # halfway through the decay: halfway between peak and floor
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    assert all(s(i) > s(i + 1) for i in range(10, 109))


@pytest.mark.parametrize("decay_frac", [0.2, 0.5])
def test_wsd_holds_the_peak_then_decays_linearly_over_its_last_fraction(decay_frac):
    s = Schedule(1.0, total_steps=100, warmup=10, min_lr_ratio=0.0, kind="wsd", decay_frac=decay_frac)
    start = round(100 * (1 - decay_frac))
    assert all(s(i) == 1.0 for i in range(10, start + 1))
    assert all(s(i) > s(i + 1) for i in range(start, 99))
    assert s(start + round(50 * decay_frac)) == pytest.approx(0.5)  # linear: half way down at half the decay
    assert s(100) == pytest.approx(0.0)


def test_wsd_with_decay_frac_one_decays_from_the_first_step():
    s = Schedule(1.0, total_steps=10, warmup=0, min_lr_ratio=0.0, kind="wsd", decay_frac=1.0)
    assert [s(i) for i in range(11)] == pytest.approx([1 - i / 10 for i in range(11)])


def test_wsd_flat_lr_does_not_depend_on_the_run_length():
    """What lets a WSD run stopped in its flat part be resumed with a longer --max-iters."""
    short, long = (Schedule(1e-3, total_steps=n, warmup=10, kind="wsd") for n in (1000, 3000))
    assert [short(i) for i in range(800)] == [long(i) for i in range(800)]
