"""Every numeric flag of `scratchgpt` (train, sample, eval, plot), walked from the parsers themselves.

A bad value is one line naming the flag and the values it takes, exit 2, never a traceback; the
ends of each range parse; and the largest values that parse do not crash a run. A flag added to
any parser is covered here without editing this file, except that the last group asks where its
largest value is exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import COMMANDS, main, parsers
from scratchgpt.core.bounds import Number

PARSERS = parsers()
NUMERIC = [
    (command, action.option_strings[-1], action.type)
    for command, parser in PARSERS.items()
    for action in parser._actions
    if isinstance(action.type, Number)
]
IDS = [f"{command} {flag}" for command, flag, _ in NUMERIC]

# Values no numeric flag takes: words, emptiness, Unicode digits and symbols, Python-only spellings,
# non-finite and overflowing numbers, negatives (no flag takes one), control characters and a
# 5,000-digit number (past Python's int() limit).
BAD_VALUES = [
    "abc",
    "",
    " ",
    *"🙂 ５ ٣ ½ 1_0 0x10 1,5 1e -- nan NaN inf -inf Infinity 1e400 -1e400 -1 -0.5 -1e-3 [31m1".split(),
    "1\n2",
    "\u202e5",
    "9" * 5000,
]


def scratchgpt(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `scratchgpt ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        code = run_entry_point(main, list(argv))
    except SystemExit as e:  # argparse's usage errors and --help
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str, command: str, flag: str, *words: str) -> None:
    assert code == 2, err
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)  # one line
    assert err.startswith(f"scratchgpt {command}: error: argument {flag}: "), err
    assert f"(see scratchgpt {command} --help)" in err
    assert "Traceback" not in err and "\x1b" not in err and "\u202e" not in err
    assert len(err) < 300, err  # a 5,000-digit value is quoted cut short
    for word in words:
        assert word in err, err


def parse(command: str, *argv: str) -> argparse.Namespace:
    positionals = ["x" for a in PARSERS[command]._actions if not a.option_strings]
    return parsers()[command].parse_args([*positionals, *argv])


def test_every_command_has_a_parser():
    assert set(PARSERS) == set(COMMANDS)
    assert len(NUMERIC) >= 20  # train alone has 20 numeric flags


def test_every_flag_that_takes_a_number_has_a_bounded_numeric_type():
    for command, parser in PARSERS.items():
        for action in parser._actions:
            takes_value = action.nargs != 0 and not action.choices and action.option_strings
            numeric_default = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            if takes_value and (numeric_default or action.type in (int, float)):
                assert isinstance(action.type, Number), f"scratchgpt {command} {action.option_strings}"
    for command, flag, number in NUMERIC:
        assert number.low >= 0, f"{command} {flag}: BAD_VALUES assumes no flag takes a negative value"
        assert number.high < 1e300, f"{command} {flag}: give it a finite upper bound"


@pytest.mark.parametrize("command, flag, number", NUMERIC, ids=IDS)
def test_a_missing_value_is_one_line_naming_the_flag_and_its_range(capsys, command, flag, number):
    for argv in ([flag], [flag, "--debug"]):
        code, out, err = scratchgpt(capsys, command, *argv)
        assert_usage_error(code, out, err, command, flag, "expected one argument", number.describe())


@pytest.mark.parametrize("command, flag, number", NUMERIC, ids=IDS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=[ascii(v)[:12] for v in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_flag_and_its_range(capsys, command, flag, number, value):
    code, out, err = scratchgpt(capsys, command, flag, value)
    if value == "--":  # taken for the end of the flags: the value is missing
        assert_usage_error(code, out, err, command, flag, "expected one argument")
    else:
        assert_usage_error(code, out, err, command, flag, f"expected {number.describe()}, got '")


def just_outside(number: Number) -> list[str]:
    """Values just past each end of number's range, and far past its top."""
    below = number.low if number.low_open else number.low - (1 if number.whole else max(number.low * 1e-6, 1e-12))
    above = number.high if number.high_open else number.high + (1 if number.whole else number.high * 1e-6)
    values = [repr(above), "1" + "0" * 30, "1e30"]
    if below > 0 or (below == 0 and not number.or_zero):  # negatives are among BAD_VALUES
        values.append(repr(below))
    if not number.allows(0):
        values.append("0")
    return values


@pytest.mark.parametrize("command, flag, number", NUMERIC, ids=IDS)
def test_values_just_outside_the_range_are_refused(capsys, command, flag, number):
    for value in just_outside(number):
        code, out, err = scratchgpt(capsys, command, flag, value)
        assert_usage_error(code, out, err, command, flag, number.describe())


@pytest.mark.parametrize("command, flag, number", NUMERIC, ids=IDS)
def test_the_ends_of_the_range_parse_to_themselves(command, flag, number):
    low = number.low + (1 if number.whole else number.high * 1e-6) if number.low_open else number.low
    high = number.high - (1 if number.whole else number.high * 1e-6) if number.high_open else number.high
    dest = flag.removeprefix("--").replace("-", "_")
    for value in (low, high, *([0] if number.or_zero else [])):
        text = str(int(value)) if number.whole else repr(float(value))
        parsed = getattr(parse(command, flag, text), dest)
        assert parsed == value and type(parsed) is (int if number.whole else float)
        assert getattr(parse(command, f"{flag}={text}"), dest) == value


def test_a_negative_number_reaches_the_flag_whatever_its_spelling(capsys):
    # argparse alone takes "-1e-3" and "-inf" for flags and says only "expected one argument"
    for value in ("-1e-3", "-inf", "-.5", "-1"):
        code, out, err = scratchgpt(capsys, "train", "--lr", value)
        assert_usage_error(code, out, err, "train", "--lr", "expected a number above 0 and at most 10", f"'{value}'")
    assert parse("train", "--lr", "1e-3", "--min-lr-ratio", "0").min_lr_ratio == 0


def test_a_value_that_looks_negative_is_still_a_flag_after_a_text_option():
    args = parse("train", "--corpus", "-1", "--lr", "0.5")  # --corpus takes text: "-1" is its value
    assert args.corpus == "-1" and args.lr == 0.5


def positionals_of(parser) -> list[str]:
    """A value for each positional of parser: "x", or for a subcommand its first one and that one's positionals."""
    values = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name, sub = next(iter(action.choices.items()))
            values += [name, *positionals_of(sub)]
        elif not action.option_strings:
            values.append("x")
    return values


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_argument_with_control_characters_is_still_one_line(capsys, command):
    positionals = positionals_of(PARSERS[command])
    code, out, err = scratchgpt(capsys, command, *positionals, "--no-such-flag", "a\nb\x1b[2J\u202e")
    assert code == 2 and out == "" and err.count("\n") == 1, repr(err)
    assert "\x1b" not in err and "\u202e" not in err and "a\\nb\\x1b[2J\\u202e" in err


def test_an_out_path_that_is_a_directory_is_refused_before_training(capsys, tmp_path):
    for out in (str(tmp_path), "", str(tmp_path / "new") + "/"):  # a new folder, written as one, too
        code, stdout, err = scratchgpt(capsys, "train", "--out", out)
        assert_usage_error(code, stdout, err, "train", "--out", "expected a checkpoint file path, got the directory")
    assert "name a file in it" in err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("stop", ["\\x", "\\N", "\\u12", "\\"])
def test_a_stop_string_with_a_broken_escape_is_refused(capsys, stop):
    code, out, err = scratchgpt(capsys, "sample", "--stop", stop)
    assert_usage_error(code, out, err, "sample", "--stop", "has a broken escape in", "write \\n, \\t or \\\\")


# --- the largest values that parse -------------------------------------------------------------
# Where each numeric flag's largest accepted value is exercised. "run": in one of the tests below.
# Otherwise why running it here would only take long; the bound itself is tested above.
AT_MAXIMUM = {
    ("train", "--vocab-size"): "run",
    ("train", "--n-layer"): "run",
    ("train", "--n-head"): "run",
    ("train", "--n-embd"): "a 51-GB layer: running out of memory is the faults tests' case",
    ("train", "--block-size"): "run",
    ("train", "--dropout"): "run",
    ("train", "--attn-dropout"): "run",
    ("train", "--batch-size"): "run",
    ("train", "--grad-accum"): "65,536 micro-batches make each step that much longer",
    ("train", "--max-iters"): "run",
    ("train", "--max-minutes"): "run",
    ("train", "--lr"): "run",
    ("train", "--lr-decay-iters"): "run",
    ("train", "--min-lr-ratio"): "run",
    ("train", "--warmup-iters"): "run",
    ("train", "--decay-frac"): "run",
    ("train", "--weight-decay"): "run",
    ("train", "--beta2"): "run",
    ("train", "--grad-clip"): "run",
    ("train", "--eval-interval"): "run",
    ("train", "--eval-iters"): "100,000 batches make each evaluation that much longer",
    ("train", "--log-interval"): "run",
    ("train", "--save-every"): "run",
    ("train", "--seed"): "run",
    ("train", "--distill-weight"): "1 is its default: test_train.py's distilled student trains with it",
    ("train", "--threads"): "run",
    ("sample", "--len"): "run",
    ("sample", "--temp"): "run",
    ("sample", "--top-k"): "run",
    ("sample", "--top-p"): "run",
    ("sample", "--seed"): "run",
    ("sample", "--threads"): "run",
    ("eval", "--batch-size"): "run",
    ("eval", "--stride"): "run",
    ("eval", "--threads"): "run",
    ("sample", "--logprobs"): "run",
    ("score", "--top"): "run",
    ("score", "--stride"): "run",
    ("score", "--threads"): "run",
    ("inspect", "--layer"): "run",
    ("inspect", "--top"): "run",
    ("inspect", "--threads"): "run",
    ("ladder", "--steps"): "a billion steps a rung take years; tests/cli/test_ladder.py climbs with a few",
    ("ladder", "--minutes"): "a million minutes take that long; tests/cli/test_ladder.py fits a budget too small",
    ("ladder", "--seed"): "each rung is `train --seed` with it, whose largest value is run above",
    ("ladder", "--threads"): "the same use_threads as `train --threads`, whose largest value is run above",
    ("serve", "--port"): "whether port 65535 is free depends on the machine; test_cli serves on a free one",
    ("serve", "--parallel"): "tests/serve/test_cli.py loads a model with it and decodes",
    ("serve", "--max-queue"): "tests/serve/test_cli.py loads a model with it and decodes",
    ("serve", "--threads"): "tests/serve/test_cli.py loads a model with it and decodes",
    ("serve", "--request-timeout"): "an hour's deadline takes an hour to reach; test_hostile.py runs short ones",
    ("serve", "--max-connections"): "100,000 sockets pass this machine's file limit; test_hostile.py runs a small cap",
}
TINY = "--n-layer 1 --n-head 2 --n-embd 8 --block-size 8 --batch-size 2 --eval-iters 1".split()


def top(flag: str, command: str = "train") -> str:
    """The largest value flag accepts (just below it when the range is open there)."""
    number = next(n for c, f, n in NUMERIC if (c, f) == (command, flag))
    if number.whole:
        return str(int(number.high))
    return repr(number.high * (1 - 1e-6) if number.high_open else number.high)


def test_every_numeric_flag_says_where_its_largest_value_is_exercised():
    assert set(AT_MAXIMUM) == {(command, flag) for command, flag, _ in NUMERIC}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, shakespeare_text) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_corpus) -> Path:
    """A 1-layer char model trained 2 steps on tiny_corpus, with its token cache in a module directory."""
    out = tmp_path_factory.mktemp("run") / "tiny.safetensors"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(out.parent / "cache"))
        code = run_entry_point(
            main, ["train", "--corpus", str(tiny_corpus), *TINY, "--max-iters", "2", "--out", str(out)]
        )
    assert code == 0
    return out


def test_train_at_the_largest_schedule_seed_and_optimizer_values_runs(capsys, tmp_path, tiny_corpus):
    maxed = (
        "--seed",
        "--lr",
        "--weight-decay",
        "--grad-clip",
        "--min-lr-ratio",
        "--beta2",
        "--dropout",
        "--attn-dropout",
        "--warmup-iters",
        "--lr-decay-iters",
        "--decay-frac",
        "--eval-interval",
        "--log-interval",
        "--save-every",
        "--vocab-size",
        "--max-minutes",
    )
    argv = [x for flag in maxed for x in (flag, top(flag))]
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--corpus",
        str(tiny_corpus),
        "--tokenizer",
        "word",
        *TINY,
        *argv,
        "--max-iters",
        "4",
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert code == 0, err
    assert "Traceback" not in err and (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    [
        ["--batch-size", top("--batch-size")],
        ["--n-layer", top("--n-layer"), "--n-embd", "8", "--n-head", "2"],
        ["--n-head", top("--n-head"), "--n-embd", top("--n-head"), "--no-rope"],
    ],
    ids=["batch-size", "n-layer", "n-head"],
)
def test_train_at_the_largest_shapes_runs(capsys, tmp_path, tiny_corpus, shape):
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--corpus",
        str(tiny_corpus),
        *TINY,
        *shape,
        "--max-iters",
        "1",
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert code == 0, err
    assert "Traceback" not in err


def test_the_largest_block_size_on_a_small_corpus_is_one_line_naming_the_flag(capsys, tmp_path, tiny_corpus):
    code, out, err = scratchgpt(
        capsys,
        "train",
        "--corpus",
        str(tiny_corpus),
        *TINY,
        "--block-size",
        top("--block-size"),
        "--out",
        str(tmp_path / "m.safetensors"),
    )
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: ") and "too short" in err and "--block-size" in err


def test_sample_at_the_largest_values_runs(capsys, tiny_checkpoint):
    ckpt = ["--checkpoint", str(tiny_checkpoint), "--prompt", "ROMEO:"]
    for argv in (
        [
            "--top-k",
            top("--top-k", "sample"),
            "--top-p",
            top("--top-p", "sample"),
            "--temp",
            top("--temp", "sample"),
            "--seed",
            top("--seed", "sample"),
            "--len",
            "50",
        ],
        ["--temp", "1e-06", "--len", "50"],  # the smallest temperature above greedy: no overflow
        ["--len", top("--len", "sample"), "--stop", "e", "--seed", "1"],
    ):
        code, out, err = scratchgpt(capsys, "sample", *ckpt, *argv)
        assert code == 0 and err == "", err
        assert out.startswith("ROMEO:")
    assert len(out) < 1000  # --len 100000 allocated nothing up front, and the stop string ended it


def test_eval_at_the_largest_batch_size_runs(capsys, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tiny_checkpoint.parent / "cache"))
    code, out, err = scratchgpt(
        capsys, "eval", "--checkpoint", str(tiny_checkpoint), "--json", "--batch-size", top("--batch-size", "eval")
    )
    assert code == 0, err
    assert '"val_nats_per_token"' in out


def test_threads_at_its_largest_value_is_what_train_sample_and_eval_run_with(
    capsys, tmp_path, tiny_checkpoint, tiny_corpus, monkeypatch
):
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tiny_checkpoint.parent / "cache"))
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n, set_=torch.set_num_threads: (seen.append(n), set_(n)))
    before, out = torch.get_num_threads(), str(tmp_path / "m.safetensors")
    try:
        for command, argv in [
            ("train", ["--corpus", str(tiny_corpus), *TINY, "--max-iters", "1", "--out", out]),
            ("sample", ["--checkpoint", str(tiny_checkpoint), "--len", "5"]),
            ("eval", ["--checkpoint", str(tiny_checkpoint), "--json"]),
        ]:
            seen.clear()
            code, _, err = scratchgpt(capsys, command, *argv, "--threads", top("--threads", command))
            assert code == 0, err
            assert seen == [int(top("--threads", command))] and torch.get_num_threads() == seen[0], command
    finally:
        torch.set_num_threads(before)


def test_eval_stride_scores_every_val_token_once_and_refuses_a_stride_past_the_context(
    capsys, tiny_checkpoint, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tiny_checkpoint.parent / "cache"))
    ckpt = ["--checkpoint", str(tiny_checkpoint), "--json"]
    results = {}
    for stride in (None, "8", "3"):  # the tiny model's context is 8 tokens
        code, out, err = scratchgpt(capsys, "eval", *ckpt, *(["--stride", stride] if stride else []))
        assert code == 0, err
        results[stride] = json.loads(out)
    assert results[None]["stride"] == results["8"]["stride"] == 8 and results["3"]["stride"] == 3
    assert results[None]["val_nats_per_token"] == results["8"]["val_nats_per_token"]  # the default: block_size
    assert results["3"]["tokens"] == results[None]["tokens"]  # every val token scored once either way
    assert results["3"]["val_nats_per_token"] != results[None]["val_nats_per_token"]
    for stride in ("9", top("--stride", "eval")):
        code, out, err = scratchgpt(capsys, "eval", *ckpt, "--stride", stride)
        assert code == 1 and out == ""
        assert err.strip().count("\n") == 0 and "outside 1..8" in err and "Traceback" not in err


def test_sample_score_and_inspect_at_their_largest_looking_values_run(capsys, tiny_checkpoint, tmp_path):
    ckpt = str(tiny_checkpoint)
    code, out, err = scratchgpt(
        capsys, "sample", ckpt, "--len", "5", "--json", "--logprobs", top("--logprobs", "sample")
    )
    assert code == 0, err
    assert len(json.loads(out)["logprobs"]["content"][0]["top_logprobs"]) == 20
    text = tmp_path / "t.txt"
    text.write_text("ROMEO:\nWhat say you to this, my lord? " * 3, encoding="utf-8")  # past the 8-token window
    code, out, err = scratchgpt(
        capsys,
        "score",
        ckpt,
        str(text),
        "--json",
        "--top",
        top("--top", "score"),
        "--threads",
        top("--threads", "score"),
    )
    assert code == 0, err
    assert len(json.loads(out)["tokens"][1]["top_logprobs"]) == 20
    code, out, err = scratchgpt(capsys, "score", ckpt, str(text), "--stride", top("--stride", "score"))
    assert code == 1 and out == "" and err.count("\n") == 1 and "outside 1..8" in err, err
    code, out, err = scratchgpt(
        capsys,
        "inspect",
        ckpt,
        "-p",
        "ROMEO",
        "--json",
        "--top",
        top("--top", "inspect"),
        "--threads",
        top("--threads", "inspect"),
    )
    assert code == 0, err
    assert len(json.loads(out)["lens"][0]["top"]) == 20
    code, out, err = scratchgpt(capsys, "inspect", ckpt, "-p", "ROMEO", "--layer", top("--layer", "inspect"))
    assert code == 1 and out == "" and err.count("\n") == 1 and "numbered 0 to 0" in err, err


# --- through real processes ----------------------------------------------------------------------


def run_cli(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.slow
def test_bad_flags_through_real_processes_are_one_line_and_exit_2():
    for argv, flag in [
        (["scratchgpt.train", "--lr", "-1e-3"], "--lr"),
        (["scratchgpt", "train", "--batch-size", "５"], "--batch-size"),
        (["scratchgpt", "sample", "--top-p", "nan"], "--top-p"),
        (["scratchgpt", "eval", "--batch-size"], "--batch-size"),
    ]:
        proc = run_cli(*argv)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
        assert f"argument {flag}: expected" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_a_run_of_the_largest_max_iters_and_saves_it(tmp_path, tiny_corpus):
    out = tmp_path / "m.safetensors"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scratchgpt.train",
            "--corpus",
            str(tiny_corpus),
            *TINY,
            "--max-iters",
            top("--max-iters"),
            "--log-interval",
            "1",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        metrics = tmp_path / "m.metrics.jsonl"
        while not (metrics.exists() and metrics.stat().st_size) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr  # saved, and ended as Ctrl-C ends a program
    assert "Traceback" not in stderr
    assert f"continue with --resume --out {out}" in stdout + stderr
    assert out.exists() and (tmp_path / "m.last.safetensors").exists()
