"""TrainConfig is every training setting, once: flags, --help, recipe files and --resume derive from it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from scratchgpt.cli.train import heads_notice, parse_args, train_parser
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.core.paths import PACKAGE_DIR
from scratchgpt.model.gpt import GPTConfig
from scratchgpt.training.config import FRESH_BATCH_SIZE, FRESH_BLOCK_SIZE, TrainConfig, heads_for, load_recipe

# train recipes; recipes/ladder.toml is `scratchgpt ladder`'s file of rungs (tests/cli/test_ladder.py reads it)
RECIPES = sorted(p for p in (PACKAGE_DIR / "recipes").rglob("*.toml") if p.name != "ladder.toml")


def test_every_field_is_a_flag_and_help_shows_every_default():
    help_text = " ".join(train_parser().format_help().split())
    for f in fields(TrainConfig):
        default = getattr(TrainConfig(), f.name)
        flag = "--" + f.name.replace("_", "-")
        assert flag in help_text, flag
        if isinstance(default, bool):
            assert f"--no-{flag[2:]}" in help_text and f"(default: {'on' if default else 'off'})" in help_text
        elif default not in (None, ()):
            assert f"(default {default})" in help_text, f.name


def test_no_flags_give_the_dataclass_defaults():
    assert parse_args([]).config == TrainConfig()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(PACKAGE_DIR / "recipes")))
def test_every_shipped_recipe_is_a_valid_config(recipe):
    settings = load_recipe(recipe)
    config = TrainConfig(**settings)
    assert settings and config.out.startswith("out/")


def test_flags_beside_a_recipe_win_and_a_recipe_is_found_by_name(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('n_layer = 3\nlr = 2e-3\nteacher = ["a.safetensors"]\nrope = false\n')
    command = parse_args(["--config", str(recipe), "--lr", "5e-4"])
    assert (command.config.n_layer, command.config.lr, command.config.rope) == (3, 5e-4, False)
    assert command.config.teacher == ("a.safetensors",)
    assert parse_args(["--config", "nanogpt-cpu"]).config.n_embd == 128  # recipes/nanogpt-cpu.toml
    assert parse_args(["--config", "recipes/ten-minutes.toml"]).config.optimizer == "muon"


@pytest.mark.parametrize(
    "text, words",
    [
        ("n_layers = 3\n", "unknown setting 'n_layers'; see scratchgpt train --help"),
        ("n_layer = 0\n", "n_layer must be a whole number from 1 to 1024, got '0'"),
        ("lr = 'fast'\n", "lr must be a number above 0 and at most 10"),
        ("optimizer = 'sgd'\n", "optimizer must be one of adamw, muon"),
        ("rope = 1\n", "rope must be true or false"),
        ("n_layer = \n", "is not valid TOML"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file_and_the_setting(tmp_path, text, words):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    with pytest.raises(ScratchGPTError) as caught:
        parse_args(["--config", str(recipe)])
    message = str(caught.value)
    assert "\n" not in message and str(recipe) in message and words in message, message


def test_a_missing_recipe_says_where_the_shipped_ones_are():
    with pytest.raises(ScratchGPTError, match="does not exist; see recipes/"):
        parse_args(["--config", "no-such-recipe"])


def test_resume_reads_the_saved_config_back_and_only_flags_typed_now_change_it(tmp_path):
    from scratchgpt.cli.train import run

    out = str(tmp_path / "run.safetensors")
    tiny = (
        "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --eval-iters 1 --device cpu --amp fp32"
    ).split()
    run(parse_args([*tiny, "--max-iters", "2", "--lr", "2e-3", "--seed", "7", "--out", out]))
    resumed = parse_args(["--resume", "--max-iters", "4", "--out", out]).config
    assert (resumed.lr, resumed.seed, resumed.n_embd, resumed.max_iters) == (2e-3, 7, 16, 4)
    assert resumed.batch_size == 4 and resumed.grad_accum == 1  # what the run decided, kept
    assert resumed.amp == "auto" and resumed.device == "auto"  # how this process runs is not carried over


def test_the_saved_config_is_the_whole_description(tmp_path):
    from scratchgpt.cli.train import run
    from scratchgpt.training.run_files import saved_config

    out = tmp_path / "run.safetensors"
    tiny = "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --eval-iters 1 --max-iters 1".split()
    command = parse_args([*tiny, "--out", str(out)])
    run(command)
    saved = saved_config(out)
    assert saved.to_dict() == {**command.config.to_dict(), "grad_accum": 1}
    assert Path(saved.out) == out


def test_the_activation_choices_are_the_models():
    from scratchgpt.model import gpt
    from scratchgpt.training import config

    assert config.ACTIVATIONS == gpt.ACTIVATIONS


@pytest.mark.parametrize("n_embd, heads", [(128, 4), (256, 4), (100, 4), (250, 5), (384, 4), (6, 3), (7, 7)])
def test_a_new_models_heads_are_the_default_or_the_count_nearest_it_that_divides_the_width(n_embd, heads):
    assert heads_for(n_embd, None) == heads and n_embd % heads == 0
    assert heads_for(n_embd, 8) == 8  # a count typed is kept, and refused later if it does not divide


def test_changing_the_width_alone_says_in_one_line_which_heads_it_chose():
    assert heads_notice(parse_args(["--n-embd", "256"])) is None  # the default divides it: nothing to say
    assert (
        heads_notice(parse_args(["--n-embd", "250"])) == "--n-embd 250: 5 heads of 50 (4 do not divide it; "
        "--n-head sets them)"
    )
    assert heads_notice(parse_args(["--n-embd", "250", "--n-head", "10"])) is None


def test_a_bare_train_is_a_few_minutes_of_a_laptop_not_hours():
    """The defaults are the first run a new user makes: ~6 x params x tokens FLOPs must fit a few minutes of a
    2-core laptop (tens of GFLOP/s in practice), where the old 6x384 model over 5,000 steps of 16k tokens was hours."""
    config = parse_args([]).config
    model = GPTConfig(
        vocab_size=65,
        block_size=FRESH_BLOCK_SIZE,
        n_layer=config.n_layer,
        n_head=heads_for(config.n_embd, config.n_head),
        n_embd=config.n_embd,
    )
    tokens = config.max_iters * FRESH_BATCH_SIZE * FRESH_BLOCK_SIZE
    assert 6 * model.approx_params * tokens < 3e13
