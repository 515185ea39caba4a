"""End to end through a real pseudo-terminal: the installed `scratchgpt-repl` under pexpect."""

from __future__ import annotations

import os
import shutil

import pexpect
import pytest

from scratchgpt.repl.app import make_history

REPL = shutil.which("scratchgpt-repl")
UP = "\x1b[A"
PROMPT = ">>>"  # its trailing space comes after a style reset


def spawn(checkpoint, state_dir) -> pexpect.spawn:
    env = {**os.environ, "XDG_STATE_HOME": str(state_dir), "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    env.pop("SCRATCHGPT_NOHISTORY", None)
    child = pexpect.spawn(
        REPL,
        ["--checkpoint", str(checkpoint), "--seed", "1"],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(30, 120),
    )
    child.expect_exact("/? lists the commands")
    child.expect_exact(PROMPT)
    return child


@pytest.mark.slow
def test_a_session_in_a_real_terminal(tiny_checkpoint, tmp_path):
    child = spawn(tiny_checkpoint, tmp_path)
    child.send("\x03")  # Ctrl-C at an empty prompt
    child.expect_exact("Use Ctrl-D or /bye to exit.")
    child.send("/len 100000\r")
    child.expect_exact("length set to 100000 tokens")
    child.send("ROMEO:\r")
    child.expect(pexpect.TIMEOUT, timeout=1.5)  # let it stream for a moment
    streamed = child.before
    assert len(streamed) > 200 and "tokens/s" not in streamed  # text arrives while the reply goes on
    child.sendintr()  # Ctrl-C mid-reply
    child.expect_exact("stopped")
    child.expect_exact(PROMPT)
    child.send("/len 5\r")
    child.expect_exact("length set to 5 tokens")
    child.send(UP + UP)  # history: past "/len 5" to "ROMEO:"
    child.expect_exact("ROMEO:")
    child.send("\r")
    child.expect_exact("5 tokens · ")
    child.send("/bye\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (tmp_path / "scratchgpt" / "history").read_text()
    assert "ROMEO:" in history and "/len 5" in history

    again = spawn(tiny_checkpoint, tmp_path)  # the history outlives the session
    again.send(UP)
    again.expect_exact("/bye")
    again.send("\x15\x04")  # Ctrl-U empties the line, Ctrl-D exits
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0


def test_history_is_kept_in_the_state_dir_unless_turned_off(monkeypatch, tmp_path):
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    history = make_history()
    assert isinstance(history, FileHistory) and history.filename == str(tmp_path / "scratchgpt" / "history")
    monkeypatch.setenv("SCRATCHGPT_NOHISTORY", "1")
    assert isinstance(make_history(), InMemoryHistory)
