"""Every shipped recipe runs: each file of recipes/, a step or two with a small model in its place.

The real runs take from minutes (nanogpt-cpu, ten-minutes) to hours (the shipped char model's stages);
their figures are in checkpoints/README.md and bench/RESULTS.md. Here the recipes' own settings run,
with only the model's size, the batch and the step count made small, and the stages in the order
recipes/shakespeare-char.sh runs them, each reading what the stage before it wrote.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from scratchgpt.cli.train import parse_args, run
from scratchgpt.core.paths import PACKAGE_DIR
from scratchgpt.model.checkpoint import load_checkpoint

RECIPES = PACKAGE_DIR / "recipes"
SMALL = ["--max-iters", "2", "--eval-iters", "1", "--batch-size", "2", "--no-compile", "--device", "cpu"]
SMALL_SHAPE = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32"]


def train(*argv: str) -> dict:
    return run(parse_args([*argv, *SMALL]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nanogpt-cpu", "ten-minutes", "shakespeare-tiktoken", "shakespeare-word"])
def test_each_recipe_for_a_new_model_runs(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    summary = train("--config", str(RECIPES / f"{name}.toml"), *SMALL_SHAPE)
    assert summary.steps == 2 and summary.best.startswith("out/") and (tmp_path / summary.best).exists()


@pytest.mark.slow
def test_the_shipped_char_models_stages_run_in_order(tmp_path, monkeypatch, shakespeare_text):
    monkeypatch.chdir(tmp_path)
    stages, out = RECIPES / "shakespeare-char", tmp_path / "out" / "shakespeare-char"
    corpus = tmp_path / "shakespeare-head.txt"  # the later stages train on the corpus the first recorded
    corpus.write_text(shakespeare_text[:60_000], encoding="utf-8")  # (teachers score all of its training split)
    train("--config", str(stages / "1-base.toml"), *SMALL_SHAPE, "--block-size", "32", "--corpus", str(corpus))
    train("--config", str(stages / "2-refine.toml"))
    tuned = train("--config", str(stages / "3-context-512.toml"))
    assert tuned.model.config.block_size == 512  # the recipe lengthens the context
    for run_name in ("S", "g1", "g2", "h1", "h2"):  # the average and its fine-tunes, as the script makes them
        shutil.copy(out / "char3.safetensors", out / f"{run_name}.safetensors")
    long = train(
        "--config",
        str(stages / "4-context-1024.toml"),
        "--init-from",
        str(out / "S.safetensors"),
        "--out",
        str(out / "g1.safetensors"),
        "--overwrite",
    )
    assert long.model.config.block_size == 1024
    train("--config", str(stages / "5-distill.toml"))
    assert load_checkpoint(out / "kd.safetensors").provenance["step"] == 1


def test_the_shipped_char_models_script_names_only_stages_that_exist():
    script = (RECIPES / "shakespeare-char.sh").read_text()
    assert subprocess.run(["bash", "-n", str(RECIPES / "shakespeare-char.sh")]).returncode == 0
    named = {word.removeprefix("$R/") for word in script.split() if word.startswith("$R/")}
    assert named == {p.name for p in (RECIPES / "shakespeare-char").glob("*.toml")}
