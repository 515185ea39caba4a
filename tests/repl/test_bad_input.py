"""Bad input, generated from the tables: every slash command and every `scratchgpt-repl` flag meets
missing, extra, non-numeric, negative, zero, NaN, infinite, huge, unicode and control-character
arguments. A new command or flag is covered without touching this file."""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys

import pytest

from scratchgpt.model.checkpoint import checkpoint_metadata
from scratchgpt.repl import app
from scratchgpt.repl.commands import COMMANDS, Exit

BAD_ARGUMENTS = {
    "missing": "",
    "extra": "1 2 3",
    "non-numeric": "abc",
    "negative": "-1",
    "zero": "0",
    "nan": "nan",
    "inf": "inf",
    "minus-inf": "-inf",
    "huge": "1" + "0" * 30,
    "huge-float": "1e309",
    "too-many-digits": "9" * 5000,  # beyond int()'s digit limit
    "fraction": "2.5",
    "hex": "0x10",
    "full-width-digits": "１２",
    "unicode": "ünïcødé ☃",
    "right-to-left": "\u202egnp.exe",
    "escapes": "\x1b[2J\x1b]0;title\x07",
}


def state(session) -> tuple:
    """Everything a command could change, in comparable form."""
    return (
        dataclasses.asdict(session.settings),
        list(session.conversation.ids),
        session.turn,
        session.chat,
        session.corpus,
        id(session.ckpt),
        session.ckpt.path,
        session.tokenizer.spec(),
        session.steps_trained,
        session.engine.cache.pos,
        {k: v.clone() for k, v in session.ckpt.model.state_dict().items()},
    )


def same(a: tuple, b: tuple) -> bool:
    *rest_a, weights_a = a
    *rest_b, weights_b = b
    return (
        rest_a == rest_b
        and weights_a.keys() == weights_b.keys()
        and all(weights_a[k].equal(weights_b[k]) for k in weights_a)
    )


@pytest.fixture
def repl(drive, monkeypatch, tmp_path):
    """A REPL whose console output is `repl.out` and whose error lines are `repl.errors`."""
    monkeypatch.chdir(tmp_path)  # /save with a bad name writes here
    driven = drive("\x04")  # the banner, then Ctrl-D: a ready Repl
    driven.buffer.truncate(0)
    driven.buffer.seek(0)
    driven.errors = []
    error = driven.repl.error
    monkeypatch.setattr(driven.repl, "error", lambda text: (driven.errors.append(text), error(text)))
    return driven


@pytest.mark.parametrize("argument", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_every_command_with_any_argument_answers_and_the_session_carries_on(repl, tmp_path, command, argument):
    session = repl.session
    before, files = state(session), sorted(p.name for p in tmp_path.iterdir())
    try:
        repl.repl.handle(f"/{command.name} {argument}")
        ended = False
    except Exit:
        ended = True
    assert ended == (command.name == "bye" and argument == "")
    out = repl.out
    assert "internal error" not in out and "Traceback" not in out
    assert "\x1b" not in out and "\x07" not in out
    if repl.errors:  # refused: one line, and nothing changed
        assert len(repl.errors) == 1 and out.count("\n") == 1
        assert same(state(session), before)
        assert sorted(p.name for p in tmp_path.iterdir()) == files
    repl.repl.handle("/len 3")  # the session goes on
    assert session.settings.max_new_tokens == 3


@pytest.mark.parametrize(
    "line, suggestion",
    [
        ("/tmep 1", "/temp"),
        ("/TEMPP", "/temp"),
        ("/témp", "/temp"),
        ("/trian 5", "/train"),
        ("/☃", None),
        ("/", None),
        ("/\x1b[2J", None),
        ("/" + "x" * 10_000, None),
    ],
)
def test_an_unknown_command_is_one_line_naming_the_closest(repl, line, suggestion):
    repl.repl.handle(line)
    (error,) = repl.errors
    assert error.startswith("Unknown command '/") and repl.out.count("\n") == 1 and "\x1b" not in repl.out
    assert (f"Did you mean {suggestion}?" in error) if suggestion else "Did you mean" not in error
    assert len(error) < 120


def test_train_0_and_a_billion_token_len_are_refused_and_temp_minus_1_too(repl):
    for line in ("/train 0", "/len 1000000000", "/temp -1"):
        repl.repl.handle(line)
    assert [e.split(" ")[0] for e in repl.errors] == ["/train", "/len", "/temp"]
    assert repl.session.steps_trained == 0 and repl.session.settings.max_new_tokens == 20
    assert repl.session.settings.temperature == 0.8


# --- flags of scratchgpt-repl ---------------------------------------------------------------------


def value_flags() -> list[argparse.Action]:
    """The parser's options that take a value (not --help or on/off switches)."""
    return [a for a in app.build_parser()._actions if a.option_strings and a.nargs is None and a.const is None]


FLAGS = {a.option_strings[-1]: a for a in value_flags()}


@pytest.fixture
def run_main(monkeypatch, capsys, tiny_checkpoint):
    """main(args) with "ROMEO:" piped in, seed 1 unless args set one; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # what a one-shot run sets by default: undone afterwards

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ROMEO:"), encoding="utf-8"))
        try:
            code = app.main(["--checkpoint", str(tiny_checkpoint), "--len", "2", "--seed", "1", *args])
        except SystemExit as e:  # argparse's way out
            code = e.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_flags_under_test_are_the_parsers():
    assert {"--temp", "--len", "--top-k", "--top-p", "--seed", "--stop", "--tokenizer", "--checkpoint"} <= set(FLAGS)


@pytest.mark.parametrize("value", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
@pytest.mark.parametrize("flag", FLAGS, ids=FLAGS)
def test_every_flag_with_any_value_exits_cleanly_with_one_line(run_main, tiny_checkpoint, flag, value):
    code, out, err = run_main(flag, value)
    assert "Traceback" not in err and "\x1b" not in err and "\x07" not in err
    if code == 0:  # accepted (a path that reads, text to continue): the continuation, no noise
        # but the one line saying what a prompt lost: characters the vocabulary lacks
        chars = checkpoint_metadata(tiny_checkpoint)["tokenizer"]["chars"]
        lost = flag == "--prompt" and any(c not in chars for c in value)
        assert (
            err == ""
            if not lost
            else (err.startswith("note: not in this model's char vocabulary") and err.count("\n") == 1)
        )
        assert out.endswith("\n")
        if flag == "--stop":  # sampling may reach the stop string: the reply ends just before it
            assert len(out) <= 3 and (value == "" or value not in out[:-1])
        else:
            assert len(out) == 3
        return
    assert err.count("\n") == 1 and out == ""
    if FLAGS[flag].type is not None:  # a checked value: a usage error, exit 2
        assert code == 2 and err.startswith(f"scratchgpt-repl: error: argument {flag}")
    else:  # a path or a device that is not there: a user error, exit 1
        assert code in (1, 2) and "error: " in err


@pytest.mark.parametrize("flag", FLAGS, ids=FLAGS)
def test_every_flag_without_its_value_is_a_usage_error(run_main, flag):
    code, out, err = run_main(flag)
    assert code == 2 and out == "" and err.count("\n") == 1 and "expected one argument" in err


def test_checked_flags_refuse_every_bad_number(run_main):
    for flag in ("--len", "--top-k", "--seed", "--temp", "--top-p"):
        for value in ("abc", "nan", "inf", "1" + "0" * 30, "１２", "9" * 5000):
            assert run_main(flag, value)[0] == 2, (flag, value)
    for value in ("0", "-1"):
        assert run_main("--len", value)[0] == run_main("--top-k", value)[0] == 2
    assert run_main("--temp", "-1")[0] == run_main("--top-p", "0")[0] == run_main("--seed", "-1")[0] == 2
