"""Non-interactive use: stdin not a terminal. The real `scratchgpt-repl` console script for what a
shell sees (bytes, exit codes, stderr); `main()` in-process for the finer points of the prompt."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys

import pytest

from scratchgpt.repl import app
from scratchgpt.repl import piped as piped_mode

REPL = shutil.which("scratchgpt-repl")


def start(*args: str, stdin: bytes = b"ROMEO:\n") -> subprocess.Popen:
    assert REPL, "scratchgpt-repl is not installed (pip install -e .)"
    proc = subprocess.Popen([REPL, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen) -> tuple[int, bytes, bytes]:
    out, err = proc.stdout.read(), proc.stderr.read()
    return proc.wait(timeout=60), out, err


def test_piped_prompt_twice_with_one_seed_gives_the_same_bytes_without_ansi(tiny_checkpoint):
    runs = [start("--checkpoint", str(tiny_checkpoint), "--len", "50", "--seed", "1") for _ in range(2)]
    (code1, out1, err1), (code2, out2, err2) = map(finish, runs)
    assert code1 == code2 == 0
    assert out1 == out2 and len(out1.decode()) == 51 and out1.endswith(b"\n")  # 50 tokens are 50 characters
    assert b"\x1b" not in out1 + err1 and err1 == err2 == b""  # no banner, prompt, spinner or stats


def test_piped_prompt_at_temperature_zero_is_the_same_for_any_seed(tiny_checkpoint):
    runs = [start("--checkpoint", str(tiny_checkpoint), "--len", "30", "--temp", "0", "--seed", s) for s in "12"]
    (code1, out1, _), (code2, out2, _) = map(finish, runs)
    assert code1 == code2 == 0 and out1 == out2 and out1


def test_the_checkpoint_may_be_named_without_its_flag(tiny_checkpoint):
    runs = [start(*flag, str(tiny_checkpoint), "--len", "20", "--seed", "2") for flag in (["--checkpoint"], [])]
    (code1, flagged, _), (code2, bare, err) = map(finish, runs)
    assert code1 == code2 == 0, err
    assert bare == flagged and len(bare.decode()) == 21  # the tiny model's reply both times, not the shipped one's


def test_unreadable_checkpoint_exits_1_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    code, out, err = finish(start("--checkpoint", str(bad)))
    assert code == 1 and out == b""
    assert err.decode().count("\n") == 1 and err.startswith(b"error: ") and b"Traceback" not in err


def test_bad_flag_exits_2_with_one_line():
    for flags in (["--len", "0"], ["--temp", "nan"], ["--no-such-flag"]):
        code, out, err = finish(start(*flags))
        assert code == 2 and out == b"", flags
        assert err.decode().count("\n") == 1 and b"Traceback" not in err, flags


@pytest.fixture
def piped(monkeypatch, capsys, tiny_checkpoint):
    """Run main() in-process with stdin bytes piped in; returns (exit code, stdout, stderr)."""

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # what a one-shot run sets by default: undone afterwards

    def run(stdin: bytes, *args: str) -> tuple[int, str, str]:
        fake = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", fake)
        code = app.main(["--checkpoint", str(tiny_checkpoint), "--seed", "3", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_echo_writes_stdin_then_the_prompt_flag_then_the_continuation(piped):
    code, out, err = piped(b"ROMEO:\n", "-p", "Ay", "--echo", "--len", "10")
    assert code == 0 and out.startswith("ROMEO:\nAy") and len(out) == len("ROMEO:\nAy") + 10 + 1
    code, plain, _ = piped(b"ROMEO:\n", "-p", "Ay", "--len", "10")
    assert plain == out[len("ROMEO:\nAy") :]  # without --echo: only the continuation


def test_invalid_utf8_and_nul_bytes_in_stdin_are_survived(piped, monkeypatch):
    seen = []
    original = piped_mode.run_once

    def run_once(session, prompt, **kw):
        seen.append(prompt)
        return original(session, prompt, **kw)

    monkeypatch.setattr(piped_mode, "run_once", run_once)
    code, out, _ = piped(b"RO\xffME\x00O:\n", "--len", "5")
    assert code == 0 and len(out) == 6 and out.endswith("\n")
    assert seen == ["RO\ufffdMEO:\n"]


def test_empty_stdin_still_generates(piped):
    code, out, _ = piped(b"", "--len", "5")
    assert code == 0 and len(out) == 6 and out.endswith("\n")


def test_verbose_puts_stats_and_notes_on_stderr_only(piped):
    code, out, err = piped("é ☃".encode(), "--len", "5", "--verbose")
    assert code == 0 and len(out) == 6 and out.endswith("\n")
    assert "5 tokens · " in err and "prompt 2 tokens" in err  # é became e, ☃ was dropped and "'☃'" in err
    code, out, err = piped(b"ROMEO:", "--len", "5")
    assert err == ""


def test_prompt_file_is_read(piped, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("JULIET:\n", encoding="utf-8")
    code, out, _ = piped(b"", "--prompt-file", str(prompt), "--echo", "--len", "4")
    assert code == 0 and out.startswith("JULIET:\n") and len(out) == len("JULIET:\n") + 4 + 1
    code, _, err = piped(b"", "--prompt-file", str(tmp_path / "missing.txt"))
    assert code == 1 and err.startswith("error: cannot read --prompt-file")


def test_stop_flag_ends_the_continuation_before_it(piped):
    _, greedy, _ = piped(b"ROMEO:", "--temp", "0", "--len", "20")
    stop = greedy[4:6]
    _, stopped, _ = piped(b"ROMEO:", "--temp", "0", "--len", "20", "--stop", stop)
    assert stopped == greedy[: greedy.index(stop)] + "\n"


def test_tokenizer_flag_without_a_checkpoint_switches_to_that_vocabulary(monkeypatch, capsys, tiny_checkpoint):
    from scratchgpt.model import checkpoint
    from scratchgpt.repl import session

    for module in (checkpoint, session):  # no shipped word model, whatever checkpoints/ holds
        monkeypatch.setattr(module, "shipped_checkpoint", lambda name: None)
    monkeypatch.setattr(checkpoint, "resolve_checkpoint", lambda path: path or tiny_checkpoint)  # as if shipped
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"First Citizen:"), encoding="utf-8"))
    code = app.main(["--tokenizer", "word", "--len", "3", "--verbose", "--seed", "3"])
    err = capsys.readouterr().err
    assert code == 0 and "word vocabulary: a fresh model" in err and "untrained" in err
    assert "3 tokens · " in err and "prompt 4 tokens" in err  # "First", " ", "Citizen", ":": words, not characters


def test_a_named_checkpoint_is_the_one_used_and_a_tokenizer_beside_it_must_agree(piped):
    code, out, err = piped(b"ROMEO:", "--tokenizer", "word", "--len", "3")  # the tiny checkpoint is a char model
    assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "has a char vocabulary, not word; drop --tokenizer" in err
    code, agreeing, _ = piped(b"ROMEO:", "--tokenizer", "char", "--len", "3")
    assert code == 0 and agreeing == piped(b"ROMEO:", "--len", "3")[1]  # the named model's reply either way


def test_piped_use_never_imports_the_terminal_libraries(tiny_checkpoint):
    code = (
        "import sys; from scratchgpt.repl.app import main; "
        f"rc = main(['--checkpoint', {str(tiny_checkpoint)!r}, '--len', '3']); "
        "sys.stderr.write(' '.join(m for m in ('prompt_toolkit', 'rich') if m in sys.modules)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], input=b"ROMEO:", capture_output=True, timeout=60)
    assert proc.returncode == 0 and len(proc.stdout) == 4 and proc.stdout.endswith(b"\n")
    assert proc.stderr == b""  # start-up pays for neither prompt_toolkit nor rich


def test_one_shot_runs_let_idle_openmp_threads_sleep_unless_told_otherwise(piped, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert piped(b"ROMEO:", "--len", "2")[0] == 0
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert piped(b"ROMEO:", "--len", "2")[0] == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_engine_flags_reach_every_engine_the_session_makes(piped, monkeypatch):
    from scratchgpt.repl import session as session_module

    made, engine = [], session_module.Engine

    def spy(model, **options):
        made.append(options)
        return engine(model, **options)

    monkeypatch.setattr(session_module, "Engine", spy)
    code, out, _ = piped(b"ROMEO:", "--len", "6", "--quantize", "int8")
    assert code == 0 and len(out) == 7
    assert made == [{"compile": False, "quantize": "int8"}]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _FailingSession:
    """A session whose reply streams one piece and then fails, as a failed compile does after the
    eager prefill's first token."""

    def take_notices(self, *, unknown_only=False):
        return []

    def reply(self, prompt):
        yield "T"
        raise RuntimeError("compile failed")


def test_an_error_mid_reply_on_a_terminal_leaves_the_error_a_line_of_its_own(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    with pytest.raises(RuntimeError):
        piped_mode.run_once(_FailingSession(), "ROMEO:")
    assert terminal.getvalue() == "T\n"  # not "T" followed directly by "error: ..." on stderr

    pipe = io.StringIO()  # a file or a pipe gets the bytes as generated, nothing added
    monkeypatch.setattr(sys, "stdout", pipe)
    with pytest.raises(RuntimeError):
        piped_mode.run_once(_FailingSession(), "ROMEO:")
    assert pipe.getvalue() == "T"


class _SwallowingSession:
    """A session whose reply loses the KeyboardInterrupt of a Ctrl-C pressed mid-reply, as a call
    into torch.compile'd code sometimes does, and would then run on for 1,000 pieces."""

    def take_notices(self, *, unknown_only=False):
        return []

    def reply(self, prompt):
        for i in range(1000):
            if i == 3:
                with contextlib.suppress(KeyboardInterrupt):  # the exception is lost here...
                    signal.raise_signal(signal.SIGINT)
            yield "x"


def test_ctrl_c_stops_a_reply_even_when_its_keyboard_interrupt_got_lost(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # ...and raised again before the next piece is written
        piped_mode.run_once(_SwallowingSession(), "ROMEO:")
    assert pipe.getvalue() == "xxx"
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C behaves as before afterwards


def test_characters_the_vocabulary_lacks_are_said_on_stderr_without_verbose(piped):
    code, out, err = piped("ROMEO: é ☃".encode(), "--len", "5")
    assert code == 0 and len(out) == 6
    assert err.startswith("note: ") and "'☃'" in err and len(err.splitlines()) == 1
