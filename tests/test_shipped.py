"""The models in checkpoints/: one per vocabulary, small enough to ship, and `scratchgpt eval`
reproduces the figure each one's card (checkpoints/README.md) and bench/RESULTS.md quote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scratchgpt.core import paths
from scratchgpt.model.checkpoint import SHIPPED, load_checkpoint, shipped_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CARDS, RESULTS = ROOT / "checkpoints" / "README.md", ROOT / "bench" / "RESULTS.md"
MAX_BYTES = 25 * 10**6
FIGURE = r"\*\*(\d+\.\d+) nats/char\*\*"


def quoted_figure(filename: str) -> float:
    """The val nats/char a shipped file's card gives; bench/RESULTS.md must quote the same."""
    card = CARDS.read_text(encoding="utf-8").split(f"## {filename}")[1].split("\n## ")[0]
    figure = re.search(r"\| figure \| " + FIGURE, card)
    assert figure, f"checkpoints/README.md should have a card for {filename} with its figure"
    command = f"`scratchgpt eval checkpoints/{filename}`"
    rows = [line for line in RESULTS.read_text(encoding="utf-8").splitlines() if command in line]
    assert len(rows) == 1 and re.findall(FIGURE, rows[0]) == [figure.group(1)], f"bench/RESULTS.md on {filename}"
    return float(figure.group(1))


@pytest.mark.parametrize("vocabulary", sorted(SHIPPED))
def test_every_vocabulary_ships_a_trained_model_small_enough(vocabulary):
    path = shipped_checkpoint(vocabulary)
    assert path is not None and path.parent == paths.SHIPPED_CHECKPOINTS
    assert path.stat().st_size <= MAX_BYTES
    ckpt = load_checkpoint(path)
    assert ckpt.tokenizer.name == vocabulary
    assert ckpt.corpus["name"] == "tinyshakespeare" and ckpt.provenance["step"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("vocabulary", sorted(SHIPPED))
def test_eval_reproduces_the_quoted_figure_of_each_shipped_model(shipped_eval, vocabulary):
    path = shipped_checkpoint(vocabulary)
    result = shipped_eval(vocabulary)
    assert result["tokenizer"] == vocabulary
    assert result["val_nats_per_char"] == pytest.approx(quoted_figure(path.name), abs=5e-4)
