"""The models in checkpoints/: one per vocabulary, small enough to ship, and `scratchgpt eval`
reproduces the figure README quotes for each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scratchgpt import paths
from scratchgpt.cli import main
from scratchgpt.cliutil import run_entry_point
from scratchgpt.model.checkpoint import SHIPPED, load_checkpoint, shipped_checkpoint

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_BYTES = 25 * 10**6


def readme_figure(filename: str) -> float:
    """The val nats/char README's figures table gives for a shipped checkpoint file."""
    lines = README.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith("|") and filename in line]
    assert len(rows) == 1, f"README's figures table should have one row naming {filename}"
    (figure,) = re.findall(r"\*\*(\d+\.\d+) nats/char\*\*", rows[0])
    return float(figure)


@pytest.mark.parametrize("vocabulary", sorted(SHIPPED))
def test_every_vocabulary_ships_a_trained_model_small_enough(vocabulary):
    path = shipped_checkpoint(vocabulary)
    assert path is not None and path.parent == paths.SHIPPED_CHECKPOINTS
    assert path.stat().st_size <= MAX_BYTES
    ckpt = load_checkpoint(path)
    assert ckpt.tokenizer.name == vocabulary
    assert ckpt.corpus["name"] == "tinyshakespeare" and ckpt.train["step"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("vocabulary", sorted(SHIPPED))
def test_eval_reproduces_the_readme_figure_of_each_shipped_model(capsys, vocabulary):
    path = shipped_checkpoint(vocabulary)
    code = run_entry_point(main, ["eval", "--checkpoint", str(path), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(out)
    assert result["tokenizer"] == vocabulary
    assert result["val_nats_per_char"] == pytest.approx(readme_figure(path.name), abs=5e-4)
