"""`scratchgpt` as a user meets it: exit codes, one-line errors, the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.core import paths


def scratchgpt(capsys, *argv):
    code = run_entry_point(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


@pytest.fixture
def corpus(tmp_path):
    def make(text: str | bytes, name="c.txt"):
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    return make


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01garbage" * 10])
def test_a_missing_empty_or_corrupt_checkpoint_is_one_line_and_exit_1(capsys, tmp_path, content):
    path = tmp_path / "m.safetensors"
    if content is not None:
        path.write_bytes(content)
    for command in ("sample", "eval"):
        code, _, err = scratchgpt(capsys, command, "--checkpoint", str(path))
        assert_one_line_error(code, err, str(path))
        assert code == 1


def test_a_truncated_checkpoint_is_one_line_and_exit_1(capsys, tmp_path):
    from scratchgpt.model.checkpoint import shipped_checkpoint

    good = shipped_checkpoint("char").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good[: len(good) // 3])
    code, _, err = scratchgpt(capsys, "sample", "--checkpoint", str(path))
    assert_one_line_error(code, err, "cut.safetensors")


def test_an_empty_corpus_is_one_line(capsys, corpus, tmp_path):
    code, _, err = scratchgpt(capsys, "train", "--corpus", corpus(""), "--out", str(tmp_path / "o.safetensors"))
    assert_one_line_error(code, err, "empty")


def test_a_corpus_shorter_than_a_block_is_one_line_naming_the_flag(capsys, corpus, tmp_path):
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--corpus",
        corpus("to be or not to be\n" * 3),
        "--block-size",
        "64",
        "--out",
        str(tmp_path / "o.safetensors"),
    )
    assert_one_line_error(code, err, "too short", "--block-size")


def test_a_missing_corpus_and_a_directory_are_one_line(capsys, tmp_path):
    for target in (tmp_path / "nope.txt", tmp_path):
        code, _, err = scratchgpt(capsys, "train", "--corpus", str(target), "--out", str(tmp_path / "o.safetensors"))
        assert_one_line_error(code, err)


def test_an_unknown_tokenizer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        scratchgpt(capsys, "train", "--tokenizer", "sentencepiece")
    _, err = capsys.readouterr()
    assert e.value.code == 2
    assert_one_line_error(e.value.code, err, "sentencepiece")


@pytest.mark.parametrize(
    "flag, value",
    [("--n-layer", "0"), ("--max-iters", "-3"), ("--lr", "nan"), ("--batch-size", "many"), ("--dropout", "-0.5")],
)
def test_bad_numeric_flags_are_usage_errors(capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        scratchgpt(capsys, "train", flag, value)
    assert e.value.code == 2
    assert_one_line_error(2, capsys.readouterr().err, flag)


def test_an_unknown_command_is_a_usage_error(capsys):
    code, _, err = scratchgpt(capsys, "fly")
    assert code == 2 and "unknown command 'fly'" in err


def test_a_misspelt_command_or_flag_is_refused_naming_what_it_may_have_meant(capsys):
    code, _, err = scratchgpt(capsys, "sampel")
    assert code == 2 and "did you mean 'sample'?" in err
    with pytest.raises(SystemExit) as e:
        main(["sample", "--temperature", "0.7"])
    assert e.value.code == 2
    assert_one_line_error(2, capsys.readouterr().err, "unrecognized arguments: --temperature", "did you mean --temp?")


def test_a_flag_must_be_spelt_whole_so_a_prefix_is_a_typo_not_another_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--max-iter", "3"])  # argparse would take it for --max-iters
    assert e.value.code == 2
    assert_one_line_error(2, capsys.readouterr().err, "--max-iter", "did you mean --max-iters?")


def test_help_into_a_reader_that_leaves_early_exits_quietly():
    """`scratchgpt --help | head -1`: head may leave before the help is written; no traceback then."""
    read, write = os.pipe()
    os.close(read)  # the reader has left: every write fails with EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "scratchgpt", "--help"], stdout=write, stderr=subprocess.PIPE, text=True
    )
    os.close(write)
    assert proc.stderr == "" and proc.returncode == 141


def test_sample_with_no_flags_uses_the_shipped_model_and_a_seed_repeats(capsys):
    code, first, _ = scratchgpt(capsys, "sample", "--len", "60", "--seed", "1")
    assert code == 0 and len(first.strip()) > 20
    _, second, _ = scratchgpt(capsys, "sample", "--len", "60", "--seed", "1")
    assert first == second
    _, greedy, _ = scratchgpt(capsys, "sample", "--len", "30", "--temp", "0", "--prompt", "ROMEO:")
    assert greedy.startswith("ROMEO:")


def test_sample_stops_at_a_stop_string(capsys):
    code, out, _ = scratchgpt(
        capsys, "sample", "--len", "400", "--seed", "3", "--prompt", "ROMEO:\n", "--stop", r"\n\n"
    )
    assert code == 0 and out.startswith("ROMEO:\n")
    reply = out[len("ROMEO:\n") :].rstrip("\n")  # a stop string ends the reply; the prompt is not searched
    assert "\n\n" not in reply
    assert len(reply) < 399  # stopped before --len's 400 characters


def test_eval_json_reports_the_whole_val_split_per_token_and_per_char(shipped_eval):
    result = shipped_eval("char")  # `eval --json` of the shipped char model, shared with the tests that read it
    assert {"val_nats_per_token", "val_nats_per_char", "params", "tokens", "tokenizer"} <= set(result)
    assert result["tokens"] == 111_539  # all of the last 10% of Tiny Shakespeare's characters but the first
    assert result["tokenizer"] == "char"
    assert result["val_nats_per_char"] == pytest.approx(result["val_nats_per_token"])
    assert result["val_nats_per_char"] < 1.9


def test_eval_in_bf16_scores_the_whole_val_split_as_fp32_does(capsys, tmp_path):
    # A one-layer model: bf16 is emulated on CPUs without AVX-512 BF16, and the shipped model's whole
    # val split takes minutes there; what is checked is the bf16 path, which a small model walks the same.
    from dataclasses import replace

    from scratchgpt.model.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
    from scratchgpt.model.gpt import GPT

    shipped = load_checkpoint(resolve_checkpoint(None))
    torch.manual_seed(0)
    small = GPT(replace(shipped.config, n_layer=1, n_embd=64, n_head=2, block_size=256))
    path = save_checkpoint(tmp_path / "small.safetensors", small, shipped.tokenizer, corpus=shipped.corpus)
    results = {}
    for amp in ("fp32", "bf16"):
        code, out, _ = scratchgpt(capsys, "eval", str(path), "--json", "--amp", amp)
        assert code == 0
        results[amp] = json.loads(out)
    fp32, bf16 = results["fp32"], results["bf16"]
    assert bf16["tokens"] == fp32["tokens"] == 111_539
    assert bf16["val_nats_per_char"] != fp32["val_nats_per_char"]  # it really ran in bf16...
    assert bf16["val_nats_per_char"] == pytest.approx(fp32["val_nats_per_char"], abs=0.01)  # ...and scored the same


def test_int8_decoding_costs_the_shipped_model_almost_nothing(capsys, shipped_eval):
    exact, int8 = shipped_eval("char"), shipped_eval("char", "--quantize", "int8")
    assert int8["quantize"] == "int8" and exact["quantize"] == "none"
    assert int8["val_nats_per_char"] != exact["val_nats_per_char"]  # the weights really changed...
    assert abs(int8["val_nats_per_char"] - exact["val_nats_per_char"]) < 0.005  # ...and barely matter
    code, out, _ = scratchgpt(capsys, "sample", "--len", "40", "--seed", "1", "--quantize", "int8")
    assert code == 0 and len(out.strip()) > 10


def test_export_halves_the_file_and_keeps_the_model(capsys, tmp_path):
    from scratchgpt.model.checkpoint import load_checkpoint, resolve_checkpoint

    full = tmp_path / "full.safetensors"
    assert scratchgpt(capsys, "export", str(resolve_checkpoint(None)), str(full), "--dtype", "fp32")[0] == 0
    half = tmp_path / "half.safetensors"
    code, out, _ = scratchgpt(capsys, "export", str(full), str(half))
    assert code == 0 and "as bf16" in out
    assert half.stat().st_size < 0.55 * full.stat().st_size
    a, b = load_checkpoint(full), load_checkpoint(half)
    assert b.provenance["dtype"] == "bf16" and b.corpus == a.corpus
    ids = torch.tensor([a.tokenizer.encode("ROMEO: Is it so?")])
    torch.testing.assert_close(a.model.eval()(ids)[0], b.model.eval()(ids)[0], atol=0.1, rtol=0.05)
    code, _, err = scratchgpt(capsys, "export", str(tmp_path / "nope.safetensors"), str(half))
    assert_one_line_error(code, err, "nope.safetensors")


def test_export_of_several_checkpoints_saves_the_mean_of_their_weights(capsys, tmp_path):
    from dataclasses import replace

    from scratchgpt.model.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
    from scratchgpt.model.gpt import GPT

    a = load_checkpoint(resolve_checkpoint(None))
    b = load_checkpoint(resolve_checkpoint(None))
    with torch.no_grad():
        for p in b.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    b.model.set_dropout(dropout=0.0, attn_dropout=0.1)  # dropout is not the architecture: it may differ
    longer = GPT(replace(b.config, block_size=2 * a.config.block_size))  # nor, with RoPE, the context length
    longer.load_state_dict(b.model.state_dict())
    paths_ab = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for path, ckpt, model in zip(paths_ab, (a, b), (a.model, longer), strict=True):
        save_checkpoint(path, model, ckpt.tokenizer, corpus=ckpt.corpus, provenance={"step": 9, "val_loss": 1.5})
    mean = tmp_path / "mean.safetensors"
    code, out, _ = scratchgpt(capsys, "export", *map(str, paths_ab), str(mean), "--dtype", "fp32")
    assert code == 0 and "the average of 2 checkpoints" in out
    got = load_checkpoint(mean)
    wa, wb, wm = (m.state_dict() for m in (a.model, b.model, got.model))
    assert all(torch.allclose(wm[k], (wa[k] + wb[k]) / 2, atol=1e-7) for k in wa)
    assert not torch.equal(wm["wte.weight"], wa["wte.weight"])
    assert got.provenance["exported_from"] == list(map(str, paths_ab)) and got.corpus == a.corpus
    assert got.config.block_size == a.config.block_size  # the first checkpoint's context
    assert load_checkpoint(paths_ab[0]).provenance["val_loss"] == 1.5
    assert "val_loss" not in got.provenance  # the first run's estimate is not the mean's

    other = tmp_path / "other.safetensors"
    small = GPT(replace(a.config, n_layer=1))
    save_checkpoint(other, small, a.tokenizer, corpus=a.corpus)
    code, _, err = scratchgpt(capsys, "export", str(paths_ab[0]), str(other), str(tmp_path / "x.safetensors"))
    assert_one_line_error(code, err, "other.safetensors", "another architecture", "averaged")
    for block_size in (64, 128):  # learned positions: a table as long as the context, so the lengths must match
        torch.manual_seed(0)
        save_checkpoint(
            tmp_path / f"learned{block_size}.safetensors",
            GPT(replace(small.config, rope=False, block_size=block_size)),
            a.tokenizer,
            corpus=a.corpus,
        )
    learned = [str(tmp_path / f"learned{n}.safetensors") for n in (64, 128)]
    code, _, err = scratchgpt(capsys, "export", *learned, str(tmp_path / "x.safetensors"))
    assert_one_line_error(code, err, "learned128.safetensors", "another architecture", "averaged")
    assert scratchgpt(capsys, "export", learned[0], learned[0], str(tmp_path / "x.safetensors"))[0] == 0


def test_the_console_script_prints_no_traceback_and_exits_1(tmp_path):
    env = {**os.environ, "SCRATCHGPT_DATA": os.environ["SCRATCHGPT_DATA"]}
    proc = subprocess.run(
        [sys.executable, "-m", "scratchgpt", "sample", "--checkpoint", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "scratchgpt", "sample", "--debug", "--checkpoint", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "Traceback" in debug.stderr


TINY_RUN = "--n-layer 1 --n-head 2 --n-embd 8 --block-size 8 --batch-size 2 --max-iters 2 --eval-iters 1".split()
GOOD = "naïve café\n"  # 13 bytes of UTF-8 before the bad byte below


BAD_CORPORA = {  # what the file holds (None: no file, "dir": a directory) and what the error must say
    "missing": (None, ["nope.txt", "neither a file nor a registered corpus", "check the path"]),
    "directory": ("dir", ["is a directory", "give a UTF-8 text file"]),
    "empty": (b"", ["c.txt", "is empty", "give a UTF-8 text file"]),
    "latin-1": (
        (GOOD * 40).encode() + "déjà vu\n".encode("latin-1"),
        ["c.txt", "not UTF-8", f"offset {13 * 40 + 1}", "--lossy"],
    ),
    "utf-16": ("ROMEO: hello\n".encode("utf-16"), ["c.txt", "not UTF-8", "offset 0", "--lossy"]),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["c.txt", "not UTF-8", "offset 0", "--lossy"]),
    "shorter than a block": ((GOOD * 3).encode(), ["'c'", "too short", "block_size+1=9", "--block-size"]),
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_each_bad_corpus_is_one_line_that_says_what_to_do_and_exit_1(capsys, tmp_path, case):
    content, words = BAD_CORPORA[case]
    path = tmp_path / ("nope.txt" if content is None else "c.txt")
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    code, out, err = scratchgpt(
        capsys, "train", "--corpus", str(path), *TINY_RUN, "--out", str(tmp_path / "o.safetensors")
    )
    assert code == 1
    assert_one_line_error(code, err, "error: ", *words)
    assert not (tmp_path / "o.safetensors").exists() and not list(tmp_path.glob("o.*"))


def test_a_corpus_that_is_not_utf8_trains_and_evaluates_with_lossy(capsys, tmp_path):
    corpus = tmp_path / "legacy.txt"
    corpus.write_bytes((GOOD * 200).encode() + b"caf\xe9\n" + (GOOD * 20).encode())
    out = str(tmp_path / "o.safetensors")
    code, _, err = scratchgpt(capsys, "train", "--corpus", str(corpus), *TINY_RUN, "--out", out)
    assert_one_line_error(code, err, str(corpus), f"offset {13 * 200 + 3}", "--lossy")
    code, _, err = scratchgpt(capsys, "train", "--corpus", str(corpus), *TINY_RUN, "--out", out, "--lossy")
    assert code == 0, err
    from scratchgpt.model.checkpoint import load_checkpoint

    assert "\ufffd" in load_checkpoint(out).tokenizer.chars  # the bad byte became U+FFFD, a character like any
    # eval reads the corpus afresh (no token cache): it too says where, and takes --lossy
    shutil.rmtree(paths.cache_dir() / "tokens")
    code, _, err = scratchgpt(capsys, "eval", "--checkpoint", out, "--json")
    assert_one_line_error(code, err, str(corpus), "not UTF-8", "--lossy")
    code, result, err = scratchgpt(capsys, "eval", "--checkpoint", out, "--json", "--lossy")
    assert code == 0, err
    assert json.loads(result)["tokens"] > 0


def test_paths_with_brackets_are_printed_as_written_by_train_and_eval(capsys, tmp_path):
    for folder in ("[/x]", "[red]y"):  # rich markup: a closing tag with no opening one, and a style
        out = str(tmp_path / folder / "run.safetensors")
        code, printed, err = scratchgpt(capsys, "train", *TINY_RUN, "--out", out)
        assert code == 0, err
        assert out in printed  # where it saves, as typed (not restyled, no MarkupError)
        code, printed, err = scratchgpt(capsys, "eval", out)
        assert code == 0 and out in printed, err


def test_a_bad_corpus_through_the_real_command_prints_no_traceback_unless_debug(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"abc\xff\n" * 100)
    argv = [sys.executable, "-m", "scratchgpt", "train", "--corpus", str(corpus), "--out", str(tmp_path / "o")]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 1
    assert (
        proc.stderr == f"error: {corpus} is not UTF-8 text (bad byte at offset 3); convert it to UTF-8, "
        "or pass --lossy to replace bad bytes with U+FFFD\n"
    )
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ScratchGPTError" in debug.stderr


@pytest.mark.slow
def test_train_compile_without_a_cxx_compiler_is_one_line_and_exit_1(tmp_path):
    env = {**os.environ, "CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = str(tmp_path / "c.safetensors")
    argv = [sys.executable, "-m", "scratchgpt", "train", *TINY_RUN, "--compile", "--out", out]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert_one_line_error(proc.returncode, proc.stderr, "torch.compile failed", "C++ compiler", "drop --compile")
    assert proc.returncode == 1
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_checkpoint_may_be_named_without_its_flag_as_export_and_plot_take_theirs(capsys, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(GOOD * 200, encoding="utf-8")
    out = str(tmp_path / "o.safetensors")
    assert scratchgpt(capsys, "train", "--corpus", str(corpus), *TINY_RUN, "--out", out)[0] == 0
    flagged = json.loads(scratchgpt(capsys, "eval", "--checkpoint", out, "--json")[1])
    code, bare, err = scratchgpt(capsys, "eval", out, "--json")
    assert code == 0, err
    assert json.loads(bare) == flagged and flagged["checkpoint"] == out  # the run's model, not the shipped one
    code, text, err = scratchgpt(capsys, "sample", out, "--len", "20", "--seed", "3", "--prompt", "to")
    assert code == 0, err
    assert text == scratchgpt(capsys, "sample", "--checkpoint", out, "--len", "20", "--seed", "3", "--prompt", "to")[1]
    assert scratchgpt(capsys, "eval", out, "--checkpoint", out, "--json")[0] == 0  # the same path twice is one
    with pytest.raises(SystemExit) as e:
        scratchgpt(capsys, "eval", out, "--checkpoint", str(tmp_path / "other.safetensors"))
    assert e.value.code == 2
    assert_one_line_error(2, capsys.readouterr().err, "two checkpoints given", "give one")


def test_eval_names_what_it_measured_on_one_line_above_the_table_however_narrow():
    import io

    from rich.console import Console

    from scratchgpt.cli.eval import print_eval

    result = {
        "checkpoint": "/home/someone/models/shakespeare-char.safetensors",
        "corpus": "tinyshakespeare",
        "tokenizer": "char",
        "params": 4_800_000,
        "tokens": 111_539,
        "val_nats_per_token": 1.4114,
        "val_nats_per_char": 1.4114,
        "stride": 256,
    }
    screen = io.StringIO()
    print_eval(result, Console(file=screen, width=80, highlight=False), stride=True)
    title = "/home/someone/models/shakespeare-char.safetensors on tinyshakespeare (val split, windows 256 apart)"
    assert screen.getvalue().splitlines()[0] == title
    assert "1.4114" in screen.getvalue()


def test_version_prints_the_version_and_exits_0_as_the_repl_does():
    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *argv, "--version"], capture_output=True, text=True)

    cli, repl = run("scratchgpt"), run("scratchgpt.repl.app")
    assert cli.returncode == 0 and cli.stderr == "" and cli.stdout.startswith("scratchgpt ")
    assert cli.stdout == repl.stdout and cli.stdout.endswith("\n")


def test_help_lists_the_commands_and_ends_with_a_newline(capsys):
    code, out, err = scratchgpt(capsys, "--help")
    assert code == 0 and err == "" and out.endswith(".\n") and not out.endswith("\n\n")
    commands = "train,sample,eval,score,inspect,plot,ladder,export,import,tokenizer,serve"
    assert out.startswith(f"usage: scratchgpt {{{commands}}}")
    assert "--version" in out


def test_plot_of_a_folder_plots_the_run_in_it_and_names_them_when_there_are_several(capsys, tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(GOOD * 200, encoding="utf-8")
    runs = tmp_path / "runs"
    assert scratchgpt(capsys, "train", "--corpus", str(corpus), *TINY_RUN, "--out", str(runs / "a.safetensors"))[0] == 0
    monkeypatch.chdir(runs)
    code, out, err = scratchgpt(capsys, "plot", ".")
    assert code == 0 and out == "a.loss.png\n" and (runs / "a.loss.png").stat().st_size > 1000, err
    assert scratchgpt(capsys, "train", "--corpus", str(corpus), *TINY_RUN, "--out", str(runs / "b.safetensors"))[0] == 0
    code, out, err = scratchgpt(capsys, "plot", str(runs))
    assert_one_line_error(code, err, f"{runs} holds 2 runs (a.metrics.jsonl, b.metrics.jsonl)", "give one")
    code, out, err = scratchgpt(capsys, "plot", str(tmp_path / "nothing-here"), "--png", str(tmp_path / "x.png"))
    assert code == 1 and "no metrics at" in err


def test_a_missing_corpus_is_named_before_an_out_that_holds_a_run(capsys, tmp_path):
    from scratchgpt.model.checkpoint import shipped_checkpoint

    out = tmp_path / "out" / "ckpt.safetensors"
    out.parent.mkdir()
    shutil.copy(shipped_checkpoint("char"), out)  # --out holds a model already
    code, _, err = scratchgpt(capsys, "train", "--corpus", str(tmp_path / "nonexistent.txt"), "--out", str(out))
    assert_one_line_error(code, err, "nonexistent.txt", "neither a file nor a registered corpus")
    assert "--out" not in err and "already holds" not in err


def test_a_run_that_fails_to_start_leaves_no_empty_out_folder(capsys, corpus, tmp_path):
    out = tmp_path / "new" / "runs" / "o.safetensors"
    code, _, err = scratchgpt(
        capsys, "train", "--corpus", corpus("to be or not to be\n" * 3), "--block-size", "64", "--out", str(out)
    )
    assert_one_line_error(code, err, "too short")
    assert not (tmp_path / "new").exists()
