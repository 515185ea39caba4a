"""Faults: nothing saved is lost. kill -9 mid-run and mid-write, two writers on one path, a disk that
is full or read-only under training and under the REPL's /save, and a model too large for memory."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.progress import TrainProgress
from scratchgpt.cli.train import cli as train_cli
from scratchgpt.model.checkpoint import load_checkpoint, load_train_state, save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.tokenizers import fit_tokenizer
from scratchgpt.training.loop import make_optimizer
from scratchgpt.training.run_files import RunPaths, resume_state_path

FORKSERVER = Path(__file__).with_name("forkserver.py")
TINY = (
    "--n-layer 1 --n-head 2 --n-embd 32 --block-size 32 --batch-size 8 --eval-iters 1 --log-interval 1 --device cpu"
).split()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The same thread count as the forked trainers, and no OpenMP threads fighting over 2 shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ForkServer:
    """Client of tests/forkserver.py: start jobs (each a fresh process), poll, wait, kill -9."""

    def __init__(self, logs: Path):
        self.logs = logs
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(FORKSERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.running: set[int] = set()
        self.log_of: dict[int, Path] = {}
        self._ask(None)

    def _ask(self, request: dict | None) -> dict:
        if request is not None:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the fork server died (exit {self.proc.poll()})"
        return json.loads(line)

    def start(self, job: str, **options) -> int:
        log = self.logs / f"{job}-{len(list(self.logs.iterdir()))}.log"
        pid = self._ask({"op": "start", "job": job, "log": str(log), **options})["pid"]
        self.running.add(pid)
        self.log_of[pid] = log
        return pid

    def poll(self, pid: int) -> int | None:
        status = self._ask({"op": "poll", "pid": pid})["status"]
        if status is not None:
            self.running.discard(pid)
        return status

    def wait(self, pid: int) -> int:
        self.running.discard(pid)
        return self._ask({"op": "wait", "pid": pid})["status"]

    def kill(self, pid: int) -> int:
        os.kill(pid, signal.SIGKILL)
        return self.wait(pid)

    def run(self, job: str, **options) -> tuple[int, str]:
        """Start a job, wait for it; its exit code and everything it printed."""
        pid = self.start(job, **options)
        return self.wait(pid), self.log_of[pid].read_text()

    def close(self) -> None:
        for pid in list(self.running):
            self.kill(pid)
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def forks(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("fork-logs"))
    yield server
    server.close()


def _until(condition: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.0005)


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _comparable(entry: dict) -> tuple:
    """A metrics entry without its wall-clock field."""
    return tuple(sorted((k, v) for k, v in entry.items() if k != "tok_per_s"))


# --- kill -9 -----------------------------------------------------------------------------------


def _temp_files(directory: Path, name: str = "") -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(f".{name}") and n.endswith(".tmp")]


def _assert_resumable(paths: RunPaths) -> int:
    """What a kill left loads: X.last with the train state resume picks for it (one step), and X."""
    last = load_checkpoint(paths.last)
    load_checkpoint(paths.best)
    _, state = load_train_state(resume_state_path(paths), make_optimizer(last.model, lr=1e-3))
    assert state["step"] == last.provenance["step"]
    return state["step"]


def test_kill_9_at_any_moment_keeps_the_last_checkpoint_and_resume_matches_an_uninterrupted_run(forks, tmp_path):
    flags = [*TINY, "--max-iters", "40", "--eval-interval", "1", "--warmup-iters", "5", "--dropout", "0.1"]
    straight = RunPaths.from_out(tmp_path / "straight" / "run.safetensors")
    assert forks.run("train", argv=[*flags, "--out", str(straight.best)])[0] == 0
    paths = RunPaths.from_out(tmp_path / "killed" / "run.safetensors")
    resume = ["--resume", "--out", str(paths.best)]
    rng = random.Random(5)

    def lines() -> int:
        return len(paths.metrics.read_text().splitlines()) if paths.metrics.exists() else 0

    def random_kill(argv: list[str]) -> None:
        """Kill at a random moment once the run has trained a step (and has a checkpoint to resume)."""
        before = lines()
        pid = forks.start("train", argv=argv)
        _until(lambda: lines() > before and paths.train_state.exists(), what="a trained step")
        time.sleep(rng.uniform(0, 0.1))
        assert forks.kill(pid) == -signal.SIGKILL

    def last_temps() -> set:
        return set(_temp_files(paths.best.parent, paths.last.name + "."))

    def kill_writing_last(*, after_rename: bool) -> bool:
        """Kill while X.last is written, or just after it is renamed into place but before its train
        state is (each fsync slowed to 50 ms); True if the kill landed there."""
        older = last_temps()
        pid = forks.start("train", argv=resume, slow_fsync=0.05)
        _until(lambda: last_temps() - older, what="a write of X.last")
        writing = last_temps() - older
        if after_rename:
            _until(lambda: not last_temps() & writing, what="X.last renamed into place")
        assert forks.kill(pid) == -signal.SIGKILL
        if after_rename:
            return resume_state_path(paths) == paths.pending_train_state
        return bool(last_temps() & writing)

    random_kill([*flags, "--out", str(paths.best)])
    steps = [_assert_resumable(paths)]
    for after_rename in (False, True):
        for _attempt in range(4):  # on a busy machine a kill can miss a 50 ms window; the run goes on
            hit = kill_writing_last(after_rename=after_rename)
            steps.append(_assert_resumable(paths))
            if hit:
                break
        assert hit, f"no kill landed {'between the renames' if after_rename else 'inside the write'}"
    random_kill(resume)
    steps.append(_assert_resumable(paths))
    code, log = forks.run("train", argv=resume)
    assert code == 0, log

    assert steps[-1] < 39 and "Traceback" not in log
    assert sorted(os.listdir(paths.best.parent)) == sorted(os.listdir(straight.best.parent))  # no temp, no pending

    def key(entry: dict) -> tuple:  # a step's training line, or its evaluation
        return entry["step"], "val_loss" in entry

    reference = {key(e): _comparable(e) for e in _metrics(straight.metrics)}
    entries = _metrics(paths.metrics)  # every step logged by any of the runs, some more than once
    assert {key(e) for e in entries} == set(reference) and len(reference) == 80
    for entry in entries:
        assert _comparable(entry) == reference[key(entry)]
    ours, theirs = load_checkpoint(paths.last).model.state_dict(), load_checkpoint(straight.last).model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_save(forks, tmp_path):
    path = tmp_path / "m.safetensors"
    pid = forks.start("save_loop", path=str(path), writer=1, count=10**6, slow_fsync=0.05)
    _until(path.exists, what="a first save")
    _until(lambda: bool(_temp_files(tmp_path, path.name + ".")), what="a write in progress")
    assert forks.kill(pid) == -signal.SIGKILL
    left = _temp_files(tmp_path, path.name + ".")
    assert left and str(pid) in left[0]
    assert load_checkpoint(path).provenance["writer"] == 1  # the kill cost the write in progress only
    live = tmp_path / f".{path.name}.{os.getpid()}@{socket.gethostname()}.abcdefgh.tmp"  # a live writer's
    live.write_bytes(b"partial")
    tokenizer = fit_tokenizer("char", ["abc"])
    save_checkpoint(
        path,
        build_model(GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=1, n_embd=8, block_size=8)),
        tokenizer,
    )
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, live.name])


# --- two writers -------------------------------------------------------------------------------


def test_two_processes_saving_to_one_path_always_leave_one_whole_checkpoint(forks, tmp_path):
    path = tmp_path / "shared.safetensors"
    writers = [forks.start("save_loop", path=str(path), writer=w, count=120) for w in (1, 2)]
    exits: dict[int, int] = {}
    seen: set[int] = set()
    reads = 0
    while len(exits) < len(writers):
        exits |= {pid: code for pid in writers if pid not in exits and (code := forks.poll(pid)) is not None}
        if not path.exists():
            continue
        ckpt = load_checkpoint(path)  # never a part of a file, never a mix of two
        value = ckpt.provenance["writer"] * 1000 + ckpt.provenance["version"]
        bad = [(n, p.flatten()[:2].tolist()) for n, p in ckpt.model.named_parameters() if not torch.all(p == value)]
        assert not bad, f"weights of another save than its metadata (version {value}): {bad}"
        seen.add(ckpt.provenance["writer"])
        reads += 1
    assert list(exits.values()) == [0, 0] and reads > 10 and seen == {1, 2}
    final = load_checkpoint(path)
    assert final.provenance["version"] == 119 and all(
        torch.all(p == final.provenance["writer"] * 1000 + 119) for p in final.model.parameters()
    )
    assert os.listdir(tmp_path) == [path.name]


# --- disk full, read-only ----------------------------------------------------------------------

RUNS_AS_ROOT = os.geteuid() == 0  # root writes into a chmod 0555 directory anyway: simulate it there


def _make_read_only(directory: Path, monkeypatch) -> None:
    """New files in directory fail as on a read-only disk: chmod 0555, or for root EROFS from open()."""
    if not RUNS_AS_ROOT:
        directory.chmod(0o555)
        return
    real_open, creating = os.open, os.O_CREAT | getattr(os, "O_TMPFILE", 0)

    def read_only_open(path, flags, *args, **kwargs):
        if flags & creating and Path(os.path.abspath(path)).parent == directory.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)


def _fill_disk(directory: Path, monkeypatch, *, only: str = "") -> list[str]:
    """fsync of a temp file in directory (whose name starts with `.only`) fails with ENOSPC, as on a
    full disk; returns the list the names of failed files go into."""
    real_fsync, failed = os.fsync, []

    def full_fsync(fd: int) -> None:
        name = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if name.parent == directory.resolve() and name.name.startswith(f".{only}"):
            failed.append(name.name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_fsync)
    return failed


@pytest.fixture
def writable_again():
    made: list[Path] = []
    yield made
    for directory in made:
        directory.chmod(0o755)


@pytest.mark.parametrize(
    "fault, target",
    [
        ("disk full", "run.safetensors"),
        ("disk full", "run.last.optim.pending.safetensors"),
        ("disk full", "run.last.safetensors"),
        ("read-only", ""),
    ],
)
def test_a_save_failing_mid_run_is_one_error_line_and_leaves_the_previous_checkpoint_alone(
    tmp_path, monkeypatch, capsys, writable_again, fault, target
):
    out = tmp_path / "run.safetensors"
    before: dict[str, bytes] = {}
    failed: list[list[str]] = []
    real_step = TrainProgress.step

    def step(self, step, loss, tokens):  # after the save at step 2: the disk fills up, or turns read-only
        real_step(self, step, loss, tokens)
        if step + 1 == 3:
            before.update({p.name: p.read_bytes() for p in tmp_path.iterdir()})
            if fault == "disk full":
                failed.append(_fill_disk(tmp_path, monkeypatch, only=target))
            else:
                writable_again.append(tmp_path)
                _make_read_only(tmp_path, monkeypatch)

    monkeypatch.setattr(TrainProgress, "step", step)
    code = train_cli(
        [*TINY, "--max-iters", "4", "--eval-interval", "2", "--lr", "1e-2", "--warmup-iters", "1", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"error: could not write {tmp_path}")
    expected = "No space left on device" if fault == "disk full" else "Read-only" if RUNS_AS_ROOT else "Permission"
    assert expected in err
    if fault == "disk full":
        assert failed[0] and failed[0][0].startswith(f".{target}.")  # the write meant to fail did
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(set(before) - {"run.lock"})  # no temp or pending file left, and the lock released
    paths = RunPaths.from_out(out)
    kept = [paths.last, paths.train_state] + ([paths.best] if target in ("", paths.best.name) else [])
    assert all((tmp_path / p.name).read_bytes() == before[p.name] for p in kept)  # the writes before the failing
    assert _assert_resumable(paths) == 1  # one may have replaced X.safetensors (a better model) completely


def test_training_into_a_read_only_directory_fails_at_once_in_one_line(tmp_path, monkeypatch, capsys, writable_again):
    writable_again.append(tmp_path)
    _make_read_only(tmp_path, monkeypatch)
    code = train_cli([*TINY, "--max-iters", "4", "--out", str(tmp_path / "run.safetensors")])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == "" and os.listdir(tmp_path) == []
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: cannot write to {tmp_path}")


def _repl(session, *lines: str) -> tuple[int, str]:
    """Type lines into a REPL over session, then Ctrl-D; its exit code and what it printed."""
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from scratchgpt.cli.console import make_console
    from scratchgpt.repl.app import Repl

    buffer = io.StringIO()
    with create_pipe_input() as pipe:
        repl = Repl(session, input=pipe, output=DummyOutput(), console=make_console(buffer), history=InMemoryHistory())
        for line in lines:
            pipe.send_text(line + "\r")
        pipe.close()
        code = repl.run()
    return code, buffer.getvalue()


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_repl_save_onto_a_full_or_read_only_disk_is_an_error_line_and_the_session_goes_on(
    tmp_path, monkeypatch, writable_again, fault
):
    from scratchgpt.repl.session import Session, Settings

    tokenizer = fit_tokenizer("char", ["ROMEO: hello there\n"])
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    target = save_checkpoint(tmp_path / "saves" / "mine.safetensors", model, tokenizer)
    before = target.read_bytes()
    session = Session(load_checkpoint(target), settings=Settings(seed=1, max_new_tokens=5))
    with torch.no_grad():
        next(session.ckpt.model.parameters()).add_(1.0)  # what /save would write differs from the file
    if fault == "disk full":
        _fill_disk(target.parent, monkeypatch)
    else:
        writable_again.append(target.parent)
        _make_read_only(target.parent, monkeypatch)
    elsewhere = tmp_path / "elsewhere.safetensors"
    code, out = _repl(session, f"/save {target} --force", "ROMEO:", f"/save {elsewhere}")
    assert code == 0 and "Traceback" not in out
    errors = [line for line in out.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: could not write {target}")
    assert target.read_bytes() == before and os.listdir(target.parent) == [target.name]
    assert f"saved {elsewhere}" in out and load_checkpoint(elsewhere).provenance == {}


# --- out of memory -----------------------------------------------------------------------------

MEMORY = 768 * 2**20  # address space a trainer may add to the imports' in the tests below


def _one_error_line(log: str) -> str:
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error")]
    assert len(errors) == 1, log
    return errors[0]


def test_a_model_too_large_for_memory_names_its_width_and_depth(forks, tmp_path):
    # 315M parameters, 1.26 GB in fp32: well past the limit. A 0.8 GB model, 36 MB past it, was
    # sometimes built out of heap the imports had mapped and freed, and failed later instead.
    big = ["--n-layer", "16", "--n-head", "8", "--n-embd", "1280"]
    code, log = forks.run("train", argv=[*TINY, *big, "--out", str(tmp_path / "x.safetensors")], memory_limit=MEMORY)
    assert code == 1
    assert _one_error_line(log) == (
        "error: out of memory building the model (1.3 GB of fp32 weights); reduce --n-embd or --n-layer"
    )


def test_a_batch_too_large_for_memory_names_batch_and_block_size(forks, tmp_path):
    big = ["--batch-size", "4096", "--block-size", "256", "--max-iters", "2"]  # ~1 GB of activations a step
    code, log = forks.run("train", argv=[*TINY, *big, "--out", str(tmp_path / "x.safetensors")], memory_limit=MEMORY)
    assert code == 1
    error = _one_error_line(log)
    assert error.startswith("error: out of memory training on 4096 sequences of 256 tokens at a time; reduce")
    assert "--batch-size" in error and "--block-size" in error


def test_one_matrix_larger_than_memory_is_refused_in_one_line(forks, tmp_path):
    huge = ["--n-embd", "65536", "--n-head", "1024"]  # its first attention matrix alone is 51.5 GB
    code, log = forks.run("train", argv=[*TINY, *huge, "--out", str(tmp_path / "x.safetensors")], memory_limit=MEMORY)
    assert code == 1
    assert _one_error_line(log) == (
        "error: out of memory building the model (206.2 GB of fp32 weights); reduce --n-embd or --n-layer"
    )


def test_an_mmap_or_thread_out_of_memory_is_one_line_too(capsys):
    def main(argv):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    assert run_entry_point(main, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: out of memory; reduce --batch-size")
    with pytest.raises(FileNotFoundError):  # any other OSError is not memory
        run_entry_point(lambda argv: (_ for _ in ()).throw(FileNotFoundError(errno.ENOENT, "gone")), [])


def test_cuda_out_of_memory_is_one_line_too(capsys):
    def main(argv):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)")

    assert run_entry_point(main, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: out of memory; reduce --batch-size")
    with pytest.raises(torch.OutOfMemoryError):
        run_entry_point(main, ["--debug"])
    with pytest.raises(RuntimeError, match="unrelated"):
        run_entry_point(lambda argv: (_ for _ in ()).throw(RuntimeError("unrelated bug")), [])


# --- what a run may replace ----------------------------------------------------------------------


def _assert_one_line(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_out_onto_a_file_that_is_not_a_checkpoint_is_refused_and_the_file_untouched(tmp_path, capsys):
    for name in ("notes.safetensors", "run.last.safetensors"):  # the checkpoint's place, or its resume state's
        directory = tmp_path / name.replace(".", "-")
        directory.mkdir()
        notes = directory / name
        notes.write_text("my notes, not a model\n")
        for extra in ([], ["--overwrite"]):  # no flag replaces what is not a checkpoint
            out = directory / ("notes.safetensors" if name.startswith("notes") else "run.safetensors")
            code = train_cli([*TINY, "--max-iters", "2", "--out", str(out), *extra])
            captured = capsys.readouterr()
            assert code == 1 and captured.out == ""
            _assert_one_line(captured.err, str(notes), "is not a ScratchGPT checkpoint", "choose another --out")
            assert notes.read_text() == "my notes, not a model\n"
            assert sorted(os.listdir(directory)) == [name]


def test_a_second_run_onto_an_existing_run_is_refused_naming_it_and_overwrite_starts_afresh(tmp_path, capsys):
    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    first = [*TINY, "--max-iters", "3", "--eval-interval", "3", "--out", str(paths.best)]
    assert train_cli(first) == 0
    before = {p: p.read_bytes() for p in (paths.best, paths.last, paths.train_state, paths.metrics)}
    val = load_checkpoint(paths.best).provenance["val_loss"]
    capsys.readouterr()

    second = [*TINY, "--max-iters", "2", "--eval-interval", "2", "--lr", "3e-3", "--out", str(paths.best)]
    assert train_cli(second) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_line(
        captured.err, f"{paths.best} already holds a run (step 3, val {val:.4f})", "--resume", "--overwrite"
    )
    assert {p: p.read_bytes() for p in before} == before  # nothing of the first run changed, metrics included

    assert train_cli([*second, "--overwrite"]) == 0
    assert load_checkpoint(paths.best).provenance["step"] == 1
    steps = [e["step"] for e in _metrics(paths.metrics) if "loss" in e]
    assert steps == [1, 2]  # the second run's lines alone: one metrics file never mixes two runs


def test_an_out_holding_a_model_without_train_state_is_called_a_model_naming_init_from_and_overwrite(tmp_path, capsys):
    """A /save or an export is a model, not a run: neither a fresh run nor --resume may send the user in a loop."""
    run = RunPaths.from_out(tmp_path / "run.safetensors")
    assert train_cli([*TINY, "--max-iters", "1", "--out", str(run.best)]) == 0
    model = tmp_path / "mine.safetensors"
    model.write_bytes(run.best.read_bytes())  # what /save writes: weights and config, no optimizer state
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert train_cli([*TINY, "--max-iters", "1", "--out", str(model), *extra]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        _assert_one_line(
            captured.err, f"{model} holds a model", "no run to resume", f"--init-from {model}", "--overwrite"
        )
    assert train_cli([*TINY, "--max-iters", "1", "--out", str(model), "--overwrite"]) == 0


def test_init_from_a_checkpoint_onto_itself_is_refused_even_with_overwrite(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    assert train_cli([*TINY, "--max-iters", "1", "--out", str(base)]) == 0
    kept = base.read_bytes()
    capsys.readouterr()
    assert train_cli(["--init-from", str(base), "--max-iters", "1", "--out", str(base), "--overwrite"]) == 1
    _assert_one_line(capsys.readouterr().err, "would replace the checkpoint --init-from starts from")
    assert base.read_bytes() == kept


def test_export_onto_a_text_file_is_refused_and_onto_a_checkpoint_needs_force(tmp_path, capsys):
    from scratchgpt.cli.main import main as scratchgpt_main

    source = save_checkpoint(tmp_path / "a.safetensors", *_tiny_model())
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert run_entry_point(scratchgpt_main, ["export", str(source), str(notes), "--force"]) == 1
    _assert_one_line(capsys.readouterr().err, "is not a ScratchGPT checkpoint")
    assert notes.read_text() == "keep me"
    other = save_checkpoint(tmp_path / "b.safetensors", *_tiny_model())
    kept = other.read_bytes()
    assert run_entry_point(scratchgpt_main, ["export", str(source), str(other)]) == 1
    _assert_one_line(capsys.readouterr().err, "already holds a checkpoint", "--force")
    assert other.read_bytes() == kept
    assert run_entry_point(scratchgpt_main, ["export", str(source), str(other), "--force"]) == 0


def _tiny_model():
    tokenizer = fit_tokenizer("char", ["ROMEO: hello there\n"])
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    return build_model(config), tokenizer


def test_repl_save_never_replaces_a_text_file_and_replaces_a_checkpoint_only_with_force(tmp_path):
    from scratchgpt.repl.session import Session, Settings

    model, tokenizer = _tiny_model()
    mine = save_checkpoint(tmp_path / "mine.safetensors", model, tokenizer)
    session = Session(load_checkpoint(mine), settings=Settings(seed=1, max_new_tokens=5))
    with torch.no_grad():
        next(session.ckpt.model.parameters()).add_(1.0)
    notes, kept = tmp_path / "notes.txt", mine.read_bytes()
    notes.write_text("keep me")
    code, out = _repl(session, f"/save {notes}", f"/save {notes} --force", f"/save {mine}", "ROMEO:")
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 0 and "Traceback" not in out and len(errors) == 3, out
    assert all("is not a ScratchGPT checkpoint" in e for e in errors[:2]) and "--force replaces it" in errors[2]
    assert notes.read_text() == "keep me" and mine.read_bytes() == kept
    code, out = _repl(session, f"/save {mine} --force")
    assert code == 0 and f"saved {mine}" in out and mine.read_bytes() != kept


# --- signals and timed saves -------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_a_signal_mid_run_saves_it_exits_with_its_status_and_resume_matches_an_uninterrupted_run(forks, tmp_path, sig):
    flags = [*TINY, "--max-iters", "24", "--eval-interval", "1000", "--warmup-iters", "5", "--dropout", "0.1"]
    straight = RunPaths.from_out(tmp_path / "straight" / "run.safetensors")
    assert forks.run("train", argv=[*flags, "--out", str(straight.best)])[0] == 0
    paths = RunPaths.from_out(tmp_path / "signalled" / "run.safetensors")
    pid = forks.start("train", argv=[*flags, "--out", str(paths.best)])
    _until(lambda: paths.metrics.exists() and len(paths.metrics.read_text().splitlines()) >= 3, what="3 steps")
    os.kill(pid, sig)
    assert forks.wait(pid) == 128 + sig  # the shell's convention: 143 for TERM, 129 for HUP, 130 for Ctrl-C
    log = forks.log_of[pid].read_text()
    step = _assert_resumable(paths)
    assert f"interrupted after step {step + 1}; continue with --resume" in log and step < 23, log
    code, log = forks.run("train", argv=["--resume", "--out", str(paths.best)])
    assert code == 0 and "Traceback" not in log, log

    def steps(run) -> dict:
        return {e["step"]: _comparable(e) for e in _metrics(run.metrics) if "loss" in e}

    assert steps(paths) == steps(straight) and len(steps(straight)) == 24  # every step's loss as if never stopped


def test_a_second_run_onto_the_same_out_is_refused_in_one_line_naming_the_first_which_goes_on_untouched(
    forks, tmp_path
):
    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    flags = [*TINY, "--max-iters", "100000", "--eval-interval", "100000", "--out", str(paths.best)]
    first = forks.start("train", argv=flags)
    _until(lambda: paths.metrics.exists() and len(paths.metrics.read_text().splitlines()) >= 3, what="3 steps")
    for extra in ([], ["--overwrite"]):  # --overwrite does not take a running run's files either
        code, log = forks.run("train", argv=[*flags, *extra])
        assert code == 1 and log.count("\n") == 1 and "Traceback" not in log, log
        assert log.startswith(f"error: {paths.best} is being trained by another run (pid {first})"), log
    assert forks.poll(first) is None  # still training
    seen = len(paths.metrics.read_text().splitlines())
    _until(lambda: len(paths.metrics.read_text().splitlines()) >= seen + 3, what="3 more steps")
    os.kill(first, signal.SIGINT)
    assert forks.wait(first) == 130
    assert "Traceback" not in forks.log_of[first].read_text()
    steps = [e["step"] for e in _metrics(paths.metrics) if "loss" in e]
    assert steps == list(range(1, len(steps) + 1))  # one run's steps in order, none from another
    step = _assert_resumable(paths)
    assert not paths.lock.exists()  # released: the run can go on
    code, log = forks.run("train", argv=["--resume", "--max-iters", str(step + 3), "--out", str(paths.best)])
    assert code == 0 and "Traceback" not in log, log


def test_the_lock_of_a_run_killed_with_kill_9_does_not_block_its_resume(forks, tmp_path):
    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    pid = forks.start("train", argv=[*TINY, "--max-iters", "100000", "--eval-interval", "2", "--out", str(paths.best)])
    _until(lambda: paths.train_state.exists(), what="a first save")
    forks.kill(pid)
    assert paths.lock.read_text() == f"{pid}\n"  # left behind, but no process holds it
    step = _assert_resumable(paths)
    code, log = forks.run("train", argv=["--resume", "--max-iters", str(step + 3), "--out", str(paths.best)])
    assert code == 0 and "Traceback" not in log and not paths.lock.exists(), log


def test_a_long_run_saves_on_a_timer_whatever_its_eval_interval_so_kill_9_loses_little(forks, tmp_path):
    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    flags = [*TINY, "--max-iters", "100000", "--eval-interval", "100000", "--save-every", "0.002"]  # 0.12 s
    pid = forks.start("train", argv=[*flags, "--out", str(paths.best)])
    log = forks.log_of[pid]
    _until(lambda: log.exists() and log.read_text().count("0.002-minute save") >= 2, what="two timed saves")
    assert forks.kill(pid) == -signal.SIGKILL
    assert not paths.best.exists()  # no evaluation ran: the timed saves keep the latest state, not a "best"
    last = load_checkpoint(paths.last)
    _, state = load_train_state(resume_state_path(paths), make_optimizer(last.model, lr=1e-3))
    assert state["step"] == last.provenance["step"] >= 1
    code, log = forks.run("train", argv=["--resume", "--max-iters", str(state["step"] + 3), "--out", str(paths.best)])
    assert code == 0 and load_checkpoint(paths.best).provenance["step"] == state["step"] + 2, log
