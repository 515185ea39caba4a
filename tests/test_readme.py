"""Every command in README.md and docs/GUIDE.md runs as written, in their order, as a new user in a fresh
clone runs it.

The `bash` blocks are read from the documents themselves, so a command changed there is the command tested. Each
runs through bash in a folder laid out like a clone (checkpoints/, recipes/) with an empty home holding the
placeholder inputs the README names (~/books/*.txt, ~/models/gpt2, a nanoGPT out-shakespeare-char/).
Only what would take long is changed, by appending flags (later flags win in argparse):
  - a training command gets `--max-iters 2 --eval-iters 2 --no-compile`: two steps and a short evaluation run
    the whole pipeline (set-up, steps, evaluation, saves) that the full count only repeats;
  - `scratchgpt ladder` gets `--rungs bigram multi-head --steps 10`: two rungs of ten steps climb the ladder's
    whole pipeline (a rung after another, the table, the checkpoints the commands after it read);
  - an interactive command (scratchgpt-repl) gets "ROMEO:" on a pipe for its standard input;
  - `scratchgpt serve` runs in the background (on another free port, said in its flags, when 8000 is taken)
    until the commands after it have run, and is then stopped as Ctrl-C would.
Left out, each for its reason in SKIPPED: the `git clone` and `pip install` lines, set-up and the serve extra
(the test runs in that clone and installation), `python -m pytest` (this suite), and the two-machine torchrun
(it needs a second machine).
Each REPL transcript (```text) is typed into the real prompt_toolkit application first, as the README's order
has it, and its lines that do not depend on sampling must appear as printed.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from scratchgpt.core.paths import PACKAGE_DIR
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.repl.session import Session, Settings

README = PACKAGE_DIR / "README.md"
DOCUMENTS = (README, PACKAGE_DIR / "docs" / "GUIDE.md")  # the guide's commands run after the README's
SKIPPED = {
    "pip install": "set-up: the test runs inside that installation",
    "git clone": "set-up: the test runs in a clone already",
    "python -m pytest": "the suite this test belongs to",
    "--nnodes=2": "two machines",
}
TRAINING = re.compile(r"^(scratchgpt train|torchrun .*-m scratchgpt\.train)\b")
SHORT = " --max-iters 2 --eval-iters 2 --no-compile"
LADDER = re.compile(r"^scratchgpt ladder\b")
SHORT_LADDER = " --rungs bigram multi-head --steps 10"
INTERACTIVE = re.compile(r"^scratchgpt-repl\b")
# commands that write no file: they may run beside the others (see reads_only_what_exists)
READ_ONLY = re.compile(r"^(scratchgpt (sample|eval|score)\b|scratchgpt-repl\b|echo \S+ \| scratchgpt-repl\b)")
SERVER = re.compile(r"^scratchgpt serve\b")
README_PORT = 8000
COMMAND_TIMEOUT = 600  # seconds; a command that hangs fails the test rather than the whole suite


def readme_blocks(language: str) -> list[str]:
    """The fenced code blocks in the given language of the README, then of the guide it links to, in order."""
    text = "".join(doc.read_text(encoding="utf-8") for doc in DOCUMENTS)
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def readme_commands() -> list[str]:
    """Each command of the README's bash blocks, continuation lines joined and comments dropped, in order."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            code = re.sub(r"(^|\s+)#(\s.*)?$", "", line)  # a trailing comment would swallow appended flags
            if code.strip():
                commands.append(" ".join(code.split()))
    return commands


def as_run(command: str) -> str | None:
    """The command as the test runs it (shortened where it would train long), or None when it is skipped."""
    if any(marker in command for marker in SKIPPED):
        return None
    if LADDER.match(command):
        return command + SHORT_LADDER
    return command + SHORT if TRAINING.match(command) else command


def test_the_readme_commands_are_found_and_each_training_one_is_shortened():
    commands = readme_commands()
    assert len(commands) >= 20  # the blocks were found
    run = [as_run(c) for c in commands]
    assert sum(r is None for r in run) == 7  # git clone, four pip lines (serve extra too), pytest, 2-machine torchrun
    assert all(r.endswith(SHORT) for r in run if r and ("scratchgpt train" in r or "scratchgpt.train" in r))
    assert all(r.endswith(SHORT_LADDER) for r in run if r and r.startswith("scratchgpt ladder"))


@pytest.fixture
def clone(tmp_path, nanogpt_char_run, make_hf_gpt2, shakespeare_text, monkeypatch):
    """A folder laid out like a fresh clone, an empty home with the README's placeholder inputs, and a PATH
    with the installed commands and torchrun (`python -m torch.distributed.run`, which torchrun is)."""
    root = tmp_path / "clone"
    root.mkdir()
    for name in ("checkpoints", "recipes"):
        (root / name).symlink_to(PACKAGE_DIR / name)
    home = tmp_path / "home"
    (home / "books").mkdir(parents=True)
    (home / "books" / "notre-dame.txt").write_text(shakespeare_text[:60_000], encoding="utf-8")
    faust = shakespeare_text[60_000:120_000].replace("ss", "ß").replace("e", "é", 50)  # new characters
    (home / "books" / "faust.txt").write_text(faust, encoding="utf-8")
    (root / "my.txt").write_text(shakespeare_text[200_000:202_000], encoding="utf-8")  # `scratchgpt score my.txt`
    (home / "models").mkdir()
    shutil.copytree(make_hf_gpt2("gpt2")[1], home / "models" / "gpt2")
    shutil.copytree(nanogpt_char_run[1], root / "out-shakespeare-char")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    torchrun = bin_dir / "torchrun"
    torchrun.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m torch.distributed.run "$@"\n')
    torchrun.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny steps on shared cores: threads would only spin
    monkeypatch.chdir(root)
    return root


def run_transcripts() -> list[str]:
    """Types the `>>>` lines of each of the README's REPL transcripts into the REPL, with the transcript's
    seed; the transcripts' lines it did not print."""
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from scratchgpt.cli.console import make_console
    from scratchgpt.repl.app import Repl

    transcripts = [b for b in readme_blocks("text") if "$ scratchgpt-repl" in b]
    assert transcripts, "the README's REPL transcripts were not found"
    # what does not depend on sampling or timing: settings, saves and refusals
    fixed = ("temperature set", "length set", "saved ", "error: ", "the weights changed", "probabilities on")
    missing = []
    for transcript in transcripts:
        typed = [line[4:] for line in transcript.splitlines() if line.startswith(">>> ")]
        seed = int(re.search(r"--seed (\d+)", transcript).group(1))
        expected = [line for line in transcript.splitlines() if line.startswith(fixed)]
        session = Session(load_checkpoint(shipped_checkpoint("char")), settings=Settings(seed=seed))
        printed = io.StringIO()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with create_pipe_input() as pipe:
                repl = Repl(
                    session, input=pipe, output=DummyOutput(), console=make_console(printed), history=InMemoryHistory()
                )
                for line in typed:
                    pipe.send_text(line + "\r")
                pipe.send_text("/bye\r")
                assert repl.run() == 0
        finally:
            torch.set_num_threads(threads)
        out = re.sub(r"\(step \d+\)", "", printed.getvalue())
        missing += [line for line in expected if re.sub(r"\(step \d+\)", "", line) not in out]
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Server:
    """`scratchgpt serve` as the README starts it, in the background, until `stop`."""

    def __init__(self, command: str):
        self.port = README_PORT if port_is_free(README_PORT) else free_port()
        if self.port != README_PORT:
            command += f" --port {self.port}"
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"{command} did not come up: {self.proc.stderr.read()[-400:]}")

    def rewrite(self, command: str) -> str:
        """command, pointed at the port the server listens on."""
        return command.replace(f"localhost:{README_PORT}", f"localhost:{self.port}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def reads_only_what_exists(run: str) -> bool:
    """Whether run only reads files that exist before any README command has run (the shipped models, the
    placeholder inputs, what the transcripts saved) and writes nothing another command reads: it may then
    run beside the others, on the other core, without changing what any command sees."""
    if not READ_ONLY.match(run):
        return False
    paths = [w for w in shlex.split(run)[1:] if "/" in w or re.search(r"\.(safetensors|txt)$", w)]
    return all(Path(os.path.expanduser(w)).exists() for w in paths)


def run_one(run: str) -> str | None:
    """run through bash as a user types it; what went wrong, or None."""
    stdin = "ROMEO:\n" if INTERACTIVE.match(run) else ""
    done = subprocess.run(["bash", "-c", run], input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if run.startswith("curl") and '"error"' in done.stdout:  # curl -s exits 0 on an HTTP error
        return f"{run}\n  answered: {done.stdout[-400:]}"
    if done.returncode != 0:
        return f"{run}\n  exit {done.returncode}: {done.stderr.strip()[-400:]}"
    return None


def test_a_command_runs_beside_the_others_only_when_it_reads_what_exists_and_writes_nothing_read(clone):
    assert reads_only_what_exists("scratchgpt eval checkpoints/shakespeare-char.safetensors")
    assert reads_only_what_exists("scratchgpt score my.txt")
    assert not reads_only_what_exists("scratchgpt-repl out/faust.safetensors")  # a later command trains it
    assert not reads_only_what_exists("scratchgpt export out/mine.safetensors out/avg.safetensors")
    assert not reads_only_what_exists("scratchgpt train --max-iters 2")


@pytest.mark.slow
def test_every_readme_command_runs_as_written(clone):
    missing = run_transcripts()
    assert not missing, f"the README's transcripts printed lines the REPL did not: {missing}"
    runs = [r for r in map(as_run, readme_commands()) if r is not None]
    beside = [r for r in runs if reads_only_what_exists(r)]  # in README order, on a second lane
    failures, server = [], None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as lane:
        besides = [lane.submit(run_one, r) for r in beside]
        try:
            for run in (r for r in runs if r not in beside):
                if SERVER.match(run):
                    server = Server(run)
                    continue
                failures.append(run_one(server.rewrite(run) if server is not None else run))
        finally:
            if server is not None:
                server.stop()
        failures += [f.result() for f in besides]
    failures = [f for f in failures if f is not None]
    assert not failures, "README commands that fail as written:\n" + "\n".join(failures)
