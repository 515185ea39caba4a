"""`scratchgpt ladder`: the shipped ladder file, a small ladder end to end, an interrupted one resumed, odd input."""

from __future__ import annotations

import json
import math

import pytest

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.core.interrupt import InterruptFlag
from scratchgpt.model.gpt import build_model
from scratchgpt.training import ladder
from scratchgpt.training.config import TrainConfig
from scratchgpt.training.run import SilentDisplay
from scratchgpt.training.start import model_config

SMALL_LADDER = """
[ladder]
steps = 10
quick_steps = 10

[common]
block_size = 16
batch_size = 4
n_layer = 1
n_embd = 16
n_head = 1
lr = 3e-3
warmup_iters = 2
mlp = false
residual = false
norms = false
rope = false
qk_norm = false
activation = "gelu"

[[rung]]
name = "bigram"
adds = "a table"
arch = "bigram"
lecture = 2.49

[[rung]]
name = "one-head"
adds = "one attention head"
arch = "gpt"

[[rung]]
name = "residual"
adds = "residual connections and a feed-forward layer"
residual = true
mlp = true
"""
STEPS = "12"


def scratchgpt(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = run_entry_point(main, list(argv))
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory, shakespeare_text):
    """A three-rung ladder file and a corpus to climb it on."""
    root = tmp_path_factory.mktemp("ladder")
    (root / "small.toml").write_text(SMALL_LADDER, encoding="utf-8")
    (root / "c.txt").write_text(shakespeare_text[:40_000], encoding="utf-8")
    return root


def ladder_argv(small, out, *more: str) -> list[str]:
    return ["ladder", "--ladder", str(small / "small.toml"), "--corpus", str(small / "c.txt"), "--out", str(out), *more]


@pytest.fixture(scope="module")
def climbed(small):
    """The small ladder climbed once through the command, uninterrupted: (its folder, what it printed)."""
    import contextlib
    import io

    out, printed = small / "whole", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_entry_point(main, ladder_argv(small, out, "--steps", STEPS)) == 0
    return out, printed.getvalue()


def test_the_shipped_ladder_walks_from_bigram_to_gpt_then_tries_todays_choices_on_the_last_rung():
    found = ladder.read_ladder("ladder")
    names = [r.name for r in found.rungs]
    assert names == [
        "bigram", "one-head", "multi-head", "feed-forward", "residual", "layernorm", "scaled",
        "dropout", "rope", "no-positions", "qk-norm", "relu2", "tied",
    ]  # fmt: skip
    rung = {r.name: r for r in found.rungs}
    assert rung["bigram"].settings["arch"] == "bigram" and rung["one-head"].settings["arch"] == "gpt"
    first = rung["one-head"].settings
    assert not (first["mlp"] or first["residual"] or first["norms"] or first["rope"]) and first["n_head"] == 1
    assert rung["multi-head"].settings == {**first, "n_head": 4}  # a rung changes what it lists, nothing else
    assert rung["layernorm"].settings["mlp"] and rung["layernorm"].settings["residual"]  # what came before stays
    for modern in ("dropout", "rope", "no-positions", "qk-norm", "relu2", "tied"):
        assert rung[modern].base == "scaled"  # each of today's choices alone on the scaled rung
        assert {k for k, v in rung[modern].settings.items() if rung["scaled"].settings.get(k) != v} != set()
    assert [r.lecture for r in found.rungs[:7]] == [2.49, 2.4, 2.28, 2.27, 2.09, 2.08, 1.48]
    for r in found.rungs:  # each rung is a model `train` builds
        config = TrainConfig(**r.settings)
        assert build_model(model_config(config, 65)).config.arch == config.arch
    assert found.steps >= ladder.MIN_STEPS and found.quick_steps < found.steps


def test_an_unknown_rung_is_refused_with_the_closest_name():
    rungs = ladder.read_ladder("ladder").rungs
    assert [r.name for r in ladder.pick(rungs, ["scaled", "bigram"])] == ["bigram", "scaled"]  # the ladder's order
    with pytest.raises(ScratchGPTError, match="did you mean 'multi-head'"):
        ladder.pick(rungs, ["mutli-head"])


def test_a_small_ladder_trains_every_rung_alike_and_writes_the_table_and_checkpoints(climbed, small, capsys):
    out, printed = climbed
    record = json.loads((out / "ladder.json").read_text())
    results = record["results"]
    assert [r["name"] for r in results] == ["bigram", "one-head", "residual"]
    assert {r["tokens"] for r in results} == {int(STEPS) * 4 * 16}  # the same tokens for every rung
    for r in results:
        assert (out / f"{r['index']}-{r['name']}.safetensors").is_file()
        assert math.isfinite(r["val"]) and 1.5 < r["val"] < math.log(65) + 0.5
    vocab = len(set((small / "c.txt").read_text()))
    assert results[0]["params"] == vocab**2 and results[1]["params"] < results[2]["params"]  # a table; + an MLP
    table = (out / "ladder.md").read_text()
    assert "same batches" in table and "| 1-bigram |" in table and "vs one-head" in table and "2.49" in table
    assert "3-residual" in printed and "vs one-head" in printed  # the table printed too
    code, text, err = scratchgpt(capsys, "plot", str(out))
    assert code == 0, err
    assert (out / "ladder.png").stat().st_size > 10_000 and "ladder.png" in text
    one_head, residual = (str(out / f"{n}.safetensors") for n in ("2-one-head", "3-residual"))
    code, text, err = scratchgpt(capsys, "score", one_head, str(small / "c.txt"), "--against", residual)
    assert code == 0, err


def test_an_interrupted_ladder_resumes_to_the_same_figures(climbed, small, capsys):
    whole = json.loads((climbed[0] / "ladder.json").read_text())["results"]
    out = small / "interrupted"
    found = ladder.read_ladder(small / "small.toml")
    plan = ladder.Plan(corpus=str(small / "c.txt"), steps=int(STEPS), seed=TrainConfig.seed, rungs=found.rungs)
    flag = InterruptFlag()

    class CtrlC(SilentDisplay):
        def step(self, step: int, loss: float, tokens: int) -> None:
            if step == 4:  # as if Ctrl-C came in the second rung's fifth step
                flag.requested = True

    front = ladder.Climb(
        starting=lambda *_: None,
        display=lambda rung: CtrlC() if rung.name == "one-head" else SilentDisplay(),
        finished=lambda _: None,
    )
    results, status = ladder.climb(plan, out, ladder.check_out(out, resume=False), {}, front, interrupt=flag)
    assert status != 0 and [r.name for r in results] == ["bigram"]  # stopped in the second rung, saved
    assert (out / "2-one-head.last.safetensors").is_file()
    code, text, err = scratchgpt(capsys, "ladder", "--out", str(out), "--resume")
    assert code == 0, err
    resumed = json.loads((out / "ladder.json").read_text())["results"]
    assert [r["name"] for r in resumed] == [r["name"] for r in whole]
    for a, b in zip(resumed, whole, strict=True):
        assert a["val"] == pytest.approx(b["val"], abs=1e-6), a["name"]


def test_odd_input_is_one_line_and_nothing_is_overwritten(climbed, small, capsys, tmp_path):
    code, _, err = scratchgpt(capsys, *ladder_argv(small, tmp_path / "a", "--rungs", "bigramm"))
    one_line_error(code, err, "did you mean 'bigram'")
    code, _, err = scratchgpt(capsys, *ladder_argv(small, tmp_path / "a", "--steps", "3"))
    one_line_error(code, err, "--steps 3", f"at least {ladder.MIN_STEPS}")
    code, _, err = scratchgpt(capsys, *ladder_argv(small, tmp_path / "a", "--minutes", "0.001"))
    one_line_error(code, err, "--minutes 0.001", "too few")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = scratchgpt(capsys, *ladder_argv(small, mine, "--steps", STEPS))
    one_line_error(code, err, "not an empty folder")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    before = {p.name: p.read_bytes() for p in climbed[0].iterdir() if p.is_file()}
    code, _, err = scratchgpt(capsys, *ladder_argv(small, climbed[0], "--steps", STEPS))
    one_line_error(code, err, "holds a ladder already", "--resume")
    assert {p.name: p.read_bytes() for p in climbed[0].iterdir() if p.is_file()} == before
    code, _, err = scratchgpt(capsys, "ladder", "--out", str(climbed[0]), "--resume", "--steps", "20")
    one_line_error(code, err, "drop --steps")
    code, _, err = scratchgpt(capsys, "ladder", "--out", str(tmp_path / "none"), "--resume")
    one_line_error(code, err, "nothing to resume")
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be.\n" * 5)
    code, _, err = scratchgpt(capsys, *ladder_argv(small, tmp_path / "b"), "--corpus", str(short))  # later wins
    one_line_error(code, err, "too short for the ladder")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # a refused ladder leaves no folder
