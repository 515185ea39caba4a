"""Training end to end through `scratchgpt.train` on Tiny Shakespeare, with tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scratchgpt.cli.progress import TrainProgress
from scratchgpt.cli.train import parse_args, run
from scratchgpt.core.interrupt import InterruptFlag
from scratchgpt.model.checkpoint import load_checkpoint
from scratchgpt.model.gpt import CausalSelfAttention
from scratchgpt.training.run_files import RunPaths

TINY = (
    "--n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch-size 16 --eval-iters 5 --log-interval 5 --device cpu"
).split()


def train(tmp_path, *extra, interrupt=None):
    args = parse_args([*TINY, "--out", str(tmp_path / "run.safetensors"), *extra])
    return run(args, interrupt=interrupt)


@pytest.mark.slow
def test_a_tiny_model_takes_val_loss_from_about_4_2_below_2_5(tmp_path):
    summary = train(tmp_path, "--max-iters", "300", "--eval-interval", "300", "--lr", "3e-3", "--warmup-iters", "20")
    assert 3.8 < summary.train_losses[0] < 4.6  # ~ln(65) for 65 characters
    assert summary.val < 2.5
    ckpt = load_checkpoint(tmp_path / "run.safetensors")
    assert ckpt.provenance["step"] == 299 and ckpt.corpus["name"] == "tinyshakespeare"


@pytest.mark.parametrize("teacher_pass", [None, "online", "once"], ids=["plain", "distilled", "distilled-once"])
def test_an_interrupted_then_resumed_run_reproduces_the_uninterrupted_losses(
    tmp_path, monkeypatch, teacher_pass, shakespeare_text
):
    corpus = tmp_path / "tenth.txt"  # a tenth of Tiny Shakespeare: "once" scores the whole training split first
    corpus.write_text(shakespeare_text[:110_000], encoding="utf-8")
    flags = ["--max-iters", "16", "--eval-interval", "8", "--dropout", "0.1", "--corpus", str(corpus)]
    if teacher_pass:  # the teacher comes back with the run's other flags
        train(tmp_path / "teacher", "--max-iters", "2", "--eval-interval", "2", "--corpus", str(corpus))
        flags += [
            "--teacher",
            str(tmp_path / "teacher" / "run.safetensors"),
            "--distill-weight",
            "0.7",
            "--teacher-pass",
            teacher_pass,
        ]
    straight = train(tmp_path / "a", *flags).train_losses

    flag = InterruptFlag()
    real_step = TrainProgress.step

    def step(self, step, loss, tokens):
        real_step(self, step, loss, tokens)
        if step + 1 == 6:
            flag.requested = True  # as if Ctrl-C arrived during the sixth step

    monkeypatch.setattr(TrainProgress, "step", step)
    first = train(tmp_path / "b", *flags, interrupt=flag)
    monkeypatch.setattr(TrainProgress, "step", real_step)
    assert first.interrupted and first.steps == 6
    # only --resume and --out: the run's own flags (tiny model, batch, schedule) come back from it
    resumed = run(parse_args(["--resume", "--out", str(tmp_path / "b" / "run.safetensors")]))
    assert len(resumed.train_losses) == 10
    assert first.train_losses + resumed.train_losses == pytest.approx(straight, abs=1e-6)


def test_a_student_distilled_from_a_teacher_ends_closer_to_it_than_one_trained_on_the_text(tmp_path):
    from scratchgpt.data import load_tokens, resolve_corpus, split_tokens
    from scratchgpt.training.distill import Teacher

    train(tmp_path / "teacher", "--max-iters", "60", "--eval-interval", "60", "--lr", "3e-3")
    teacher_path = str(tmp_path / "teacher" / "run.safetensors")
    flags = ["--max-iters", "20", "--eval-interval", "20", "--lr", "3e-3", "--warmup-iters", "5", "--seed", "5"]
    plain = train(tmp_path / "plain", *flags).model
    distilled = train(tmp_path / "distilled", *flags, "--teacher", teacher_path).model
    ckpt = load_checkpoint(teacher_path)
    teacher = Teacher([ckpt.model])
    _, val = split_tokens(load_tokens(resolve_corpus("tinyshakespeare"), ckpt.tokenizer))
    x = torch.from_numpy(val[: 8 * 32].astype("int64")).view(8, 32)
    t = teacher.log_probs(x)

    def kl(model) -> float:
        model.eval()
        with torch.no_grad():
            s = torch.log_softmax(model(x)[0], dim=-1)
        return (t.exp() * (t - s)).sum(-1).mean().item()

    assert kl(distilled) < 0.85 * kl(plain)  # 0.072 vs 0.099; the same run without the teacher: equal


def test_a_teacher_of_another_vocabulary_a_shorter_context_or_too_many_scores_is_refused(tmp_path, monkeypatch):
    import scratchgpt.training.run as run_module
    from scratchgpt.core.errors import ScratchGPTError

    train(tmp_path / "word", "--max-iters", "1", "--eval-interval", "1", "--tokenizer", "word")
    train(tmp_path / "short", "--max-iters", "1", "--eval-interval", "1", "--block-size", "16")
    for teacher, words in [
        ("word", "another vocabulary"),
        ("short", "reads 16 tokens at most, the model trains on 32; pass --block-size 16 or less"),
    ]:
        with pytest.raises(ScratchGPTError, match=words):
            train(tmp_path / "student", "--max-iters", "1", "--teacher", str(tmp_path / teacher / "run.safetensors"))
    monkeypatch.setattr(run_module, "SCORES_MAX", 64 << 20)  # 65 chars x 1M training tokens x 2 bytes: 124 MiB
    with pytest.raises(ScratchGPTError, match=r"once would hold 0.1 GiB of scores \(1,003,854 tokens x 65\); use "):
        train(
            tmp_path / "student",
            "--max-iters",
            "1",
            "--teacher",
            str(tmp_path / "short" / "run.safetensors"),
            "--teacher-pass",
            "once",
            "--block-size",
            "16",
        )
    for flag, value in [("--distill-weight", "0.5"), ("--teacher-pass", "once")]:
        with pytest.raises(ScratchGPTError, match=f"{flag} sets how a teacher is used; add --teacher CHECKPOINT"):
            run(parse_args([*TINY, "--max-iters", "1", flag, value, "--out", str(tmp_path / "w" / "run.safetensors")]))
    assert not (tmp_path / "student" / "run.safetensors").exists()


def test_init_from_continues_from_the_checkpoint_with_its_dropouts_unless_one_is_given(tmp_path):
    base = train(tmp_path / "base", "--max-iters", "40", "--eval-interval", "40", "--lr", "3e-3", "--dropout", "0.1")
    source = str(tmp_path / "base" / "run.safetensors")
    for extra, dropout, attention in [
        ([], 0.1, 0.1),
        (["--dropout", "0.3"], 0.3, 0.3),
        (["--attn-dropout", "0"], 0.1, 0.0),
    ]:
        out = str(tmp_path / f"tune{dropout}-{attention}" / "run.safetensors")
        tuned = run(
            parse_args(
                [
                    "--init-from",
                    source,
                    *"--max-iters 2 --eval-interval 2 --lr 1e-4 --warmup-iters 1 --device cpu".split(),
                    *extra,
                    "--out",
                    out,
                ]
            )
        )
        assert tuned.train_losses[0] < base.train_losses[0] - 0.5  # the trained weights, not a fresh model
        model = load_checkpoint(out).model
        assert model.config.dropout == dropout
        assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {dropout}
        assert {m.attn_dropout_p for m in model.modules() if isinstance(m, CausalSelfAttention)} == {attention}


def test_init_from_with_a_block_size_lengthens_a_rope_models_context_and_refuses_learned_positions(tmp_path):
    from scratchgpt.core.errors import ScratchGPTError
    from scratchgpt.model.gpt import rope_tables

    def tune(source, name, *extra):
        out = str(tmp_path / name / "run.safetensors")
        return run(
            parse_args(
                [
                    "--init-from",
                    source,
                    *"--max-iters 2 --eval-interval 2 --lr 1e-4 --warmup-iters 1 --device cpu --batch-size 4".split(),
                    *extra,
                    "--out",
                    out,
                ]
            )
        ), out

    base = train(tmp_path / "base", "--max-iters", "40", "--eval-interval", "40", "--lr", "3e-3")
    source = str(tmp_path / "base" / "run.safetensors")
    kept, kept_out = tune(source, "kept")
    assert load_checkpoint(kept_out).config.block_size == 32  # without the flag, the checkpoint's context
    longer, longer_out = tune(source, "longer", "--block-size", "96")
    assert longer.train_losses[0] < base.train_losses[0] - 0.5  # the trained weights, not a fresh model
    model = load_checkpoint(longer_out).model
    assert model.config.block_size == 96
    cos, sin = rope_tables(model.config)
    assert model.rope_cos.shape == (96, 8) and torch.equal(model.rope_cos, cos) and torch.equal(model.rope_sin, sin)
    logits, _ = model(torch.zeros(1, 96, dtype=torch.long))  # a whole 96-token window runs
    assert logits.shape == (1, 96, 65)

    train(tmp_path / "learned", "--max-iters", "2", "--eval-interval", "2", "--no-rope")
    with pytest.raises(ScratchGPTError, match="learned one embedding per position"):
        tune(str(tmp_path / "learned" / "run.safetensors"), "learned-longer", "--block-size", "96")


def test_run_paths_sit_beside_the_best_checkpoint(tmp_path):
    paths = RunPaths.from_out(tmp_path / "x.safetensors")
    assert paths.last.name == "x.last.safetensors"
    assert paths.train_state.name == "x.last.optim.safetensors"
    assert paths.metrics.name == "x.metrics.jsonl"


def test_the_bigram_baseline_trains_and_evaluates_on_the_same_scale(tmp_path):
    from scratchgpt.model.evaluate import evaluate_checkpoint

    summary = train(
        tmp_path,
        "--arch",
        "bigram",
        "--max-iters",
        "60",
        "--eval-interval",
        "60",
        "--lr",
        "1e-1",
        "--warmup-iters",
        "5",
    )
    assert summary.val < 3.2
    result = evaluate_checkpoint(str(tmp_path / "run.safetensors"), device="cpu")
    assert result["arch"] == "bigram" and result["params"] == 65 * 65
    assert 2.4 < result["val_nats_per_char"] < 3.3


def test_plot_draws_a_png_from_the_metrics_of_a_run(tmp_path):
    from scratchgpt.cli.plot import plot_run

    train(tmp_path, "--max-iters", "10", "--eval-interval", "5")
    png = plot_run(tmp_path / "run.safetensors")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.slow
def test_compile_trains_like_eager_with_one_graph_for_all_blocks(tmp_path):
    import torch._dynamo

    flags = ["--max-iters", "6", "--eval-interval", "3", "--dropout", "0"]
    eager = train(tmp_path / "a", *flags)
    torch._dynamo.reset()  # a graph compiled earlier in this process would count as a recompile
    # the blocks share one graph, and evaluation (no grad) runs eager rather than compiling another
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = train(tmp_path / "b", *flags, "--compile")
    assert compiled.train_losses == pytest.approx(eager.train_losses, abs=1e-4)
    assert compiled.val == pytest.approx(eager.val, abs=1e-4)
    a, b = (load_checkpoint(tmp_path / d / "run.safetensors").model.state_dict() for d in "ab")
    assert a.keys() == b.keys()  # nothing renamed: the checkpoint loads like any other
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


@pytest.mark.slow
def test_compile_distils_like_eager(tmp_path):
    train(tmp_path / "teacher", "--max-iters", "2", "--eval-interval", "2")
    flags = [
        *"--max-iters 4 --eval-interval 4 --dropout 0 --distill-weight 0.5 --teacher".split(),
        str(tmp_path / "teacher" / "run.safetensors"),
    ]
    eager = train(tmp_path / "a", *flags)
    compiled = train(tmp_path / "b", *flags, "--compile")  # the teacher's blocks compiled too, without grad
    assert compiled.train_losses == pytest.approx(eager.train_losses, abs=1e-4)
    assert compiled.val == pytest.approx(eager.val, abs=1e-4)


def test_a_resumed_run_first_finishes_a_save_killed_between_its_renames(tmp_path, monkeypatch):
    import shutil

    from scratchgpt.model.checkpoint import checkpoint_metadata
    from scratchgpt.training import run_files
    from scratchgpt.training.run_files import resume_state_path

    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    train(tmp_path, "--max-iters", "2", "--eval-interval", "1")
    shutil.copy(paths.train_state, tmp_path / "step1.optim")
    run(parse_args(["--resume", "--max-iters", "3", "--out", str(paths.best)]))
    # as a kill -9 leaves it after X.last (step 2) was renamed into place but not its train state
    shutil.move(paths.train_state, paths.pending_train_state)
    shutil.copy(tmp_path / "step1.optim", paths.train_state)

    real_save = run_files.save_checkpoint

    def save_checkpoint(path, *args, **kwargs):
        if Path(path) == paths.last:  # a kill here must leave a train state that matches X.last
            state = run_files.saved_state(resume_state_path(paths))
            assert state["step"] == checkpoint_metadata(paths.last)["train"]["step"]
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(run_files, "save_checkpoint", save_checkpoint)
    run(parse_args(["--resume", "--max-iters", "5", "--out", str(paths.best)]))
    assert run_files.saved_state(paths.train_state)["step"] == 4
    assert not paths.pending_train_state.exists()


def test_compile_on_a_pytorch_without_set_stance_is_one_line_naming_the_version(tmp_path, monkeypatch, capsys):
    from scratchgpt.cli.common import run_entry_point
    from scratchgpt.cli.train import cmd_train

    monkeypatch.delattr(torch.compiler, "set_stance")  # as on PyTorch 2.5 and older
    argv = [*TINY, "--max-iters", "1", "--compile", "--out", str(tmp_path / "r.safetensors")]
    code = run_entry_point(cmd_train, argv)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "PyTorch 2.6" in err and "drop --compile" in err


def test_a_run_says_at_once_where_it_saves_what_it_trains_and_how_long_it_will_take(tmp_path, capsys):
    out = tmp_path / "run.safetensors"
    run(parse_args([*TINY, "--max-iters", "6", "--eval-interval", "6", "--amp", "fp32", "--out", str(out)]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"training 28,896 parameters into {out}: 512 tokens a step (16 x 32), cpu, float32")
    eta = [line for line in lines if " s a step and " in line]
    assert len(eta) == 1 and eta[0].startswith("3 steps left at ") and ": about " in eta[0]


def test_a_fine_tune_takes_about_2048_tokens_a_step_whatever_the_checkpoints_context(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    run(parse_args([*TINY, "--max-iters", "1", "--block-size", "128", "--out", str(base)]))
    capsys.readouterr()
    run(
        parse_args(
            [
                "--init-from",
                str(base),
                *"--max-iters 1 --eval-iters 1 --out".split(),
                str(tmp_path / "tuned.safetensors"),
            ]
        )
    )
    assert "2,048 tokens a step (16 x 128)" in capsys.readouterr().out.splitlines()[0]


def test_init_from_on_a_corpus_with_new_characters_says_how_the_vocabulary_grew(tmp_path, capsys, shakespeare_text):
    train(tmp_path / "base", "--max-iters", "1", "--eval-iters", "1")
    corpus = tmp_path / "faust.txt"
    corpus.write_text(shakespeare_text[:20_000].replace("ss", "ß").replace("e", "é", 100), encoding="utf-8")
    capsys.readouterr()
    run(
        parse_args(
            [
                "--init-from",
                str(tmp_path / "base" / "run.safetensors"),
                "--corpus",
                str(corpus),
                *"--max-iters 1 --eval-iters 1 --device cpu --out".split(),
                str(tmp_path / "tuned.safetensors"),
            ]
        )
    )
    assert "faust brought 2 new characters: vocabulary 65 → 67" in capsys.readouterr().out
